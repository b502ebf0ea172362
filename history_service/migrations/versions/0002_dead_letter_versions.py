"""dead letters name the version they stand for

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "history"


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("event_id", sa.Uuid()), schema=SCHEMA)
    op.add_column("dead_letters", sa.Column("version", sa.BigInteger()), schema=SCHEMA)
    # Message ids of event changes are `<event id>:<version>`.
    op.execute(
        f"UPDATE {SCHEMA}.dead_letters"
        " SET event_id = split_part(msg_id, ':', 1)::uuid,"
        " version = split_part(msg_id, ':', 2)::bigint"
        " WHERE msg_id ~ '^[0-9a-f-]{36}:[0-9]{1,18}$'"
    )
    op.create_index(
        "ix_dead_letters_event_version", "dead_letters", ["event_id", "version"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_dead_letters_event_version", "dead_letters", schema=SCHEMA)
    op.drop_column("dead_letters", "version", schema=SCHEMA)
    op.drop_column("dead_letters", "event_id", schema=SCHEMA)
