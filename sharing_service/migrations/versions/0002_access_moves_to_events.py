"""access lists move to the event service; the audit trail stays

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

The event service's migration 0002 copies `grants` and `event_acls` into its own
schema; afterwards they (and this service's outbox: the event service now
announces access changes) are dropped. Refuses to run before that copy exists,
so no grant is ever lost to the order migrations run in.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "sharing"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT to_regclass('events.event_access')")).scalar() is None:
        raise RuntimeError(
            "migrate the event service first: it takes over the grants this migration drops"
        )
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("grants", schema=SCHEMA)
    op.drop_table("event_acls", schema=SCHEMA)


def downgrade() -> None:
    raise RuntimeError("the grants now live in the event service; restore from a backup")
