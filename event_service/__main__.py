"""`python -m event_service` serves; `python -m event_service migrate` upgrades its schema."""

import sys

from common.db import migrate, migrations_dir_of

if __name__ == "__main__":
    if sys.argv[1:] == ["migrate"]:
        from common.config import CommonSettings

        migrate(migrations_dir_of(__file__), CommonSettings().database_url)
    else:
        from event_service.main import main

        main()
