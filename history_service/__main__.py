"""`python -m history_service` serves; `migrate` upgrades its schema; `rebuild` refills
the history store from the event stream."""

import sys

from common.db import migrate, migrations_dir_of

if __name__ == "__main__":
    command = sys.argv[1:]
    if command == ["migrate"]:
        from common.config import CommonSettings

        migrate(migrations_dir_of(__file__), CommonSettings().database_url)
    elif command == ["rebuild"]:
        from history_service.rebuild import main as rebuild

        rebuild()
    elif not command:
        from history_service.main import main

        main()
    else:
        sys.exit("usage: python -m history_service [migrate | rebuild]")
