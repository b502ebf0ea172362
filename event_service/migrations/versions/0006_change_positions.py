"""where each user's view of an event last changed, for incremental sync

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

`changed_in` is the id of the transaction (xid8) that last changed what a user sees
of an event: the event itself, or the user's role on it. A sync asks for the rows
changed in transactions at or after the oldest one still running when the previous
sync read (see `event_service.sync`). `access_lost` keeps, for a while, the users
whose role was taken away, so that their next sync learns it.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "events"


def upgrade() -> None:
    op.execute(
        f"ALTER TABLE {SCHEMA}.event_access"
        " ADD COLUMN changed_in xid8 NOT NULL DEFAULT pg_current_xact_id()"
    )
    op.create_index(
        "ix_event_access_user_changes",
        "event_access",
        ["user_id", "changed_in", "event_id"],
        schema=SCHEMA,
    )
    op.create_table(
        "access_lost",
        sa.Column("user_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("lost_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.execute(
        f"ALTER TABLE {SCHEMA}.access_lost"
        " ADD COLUMN changed_in xid8 NOT NULL DEFAULT pg_current_xact_id()"
    )
    op.create_index(
        "ix_access_lost_user_changes",
        "access_lost",
        ["user_id", "changed_in", "event_id"],
        schema=SCHEMA,
    )
    op.create_index("ix_access_lost_lost_at", "access_lost", ["lost_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("access_lost", schema=SCHEMA)
    op.drop_index("ix_event_access_user_changes", "event_access", schema=SCHEMA)
    op.drop_column("event_access", "changed_in", schema=SCHEMA)
