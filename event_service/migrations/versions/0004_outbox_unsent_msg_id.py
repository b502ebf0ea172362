"""outbox rows are marked sent by message id

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

The relay publishes a write's notifications from memory once the write commits and
then marks their rows sent by message id (`common.outbox`); this index holds only
the rows not yet sent, so it stays small.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "events"


def upgrade() -> None:
    op.create_index(
        "ix_outbox_unsent_msg_id",
        "outbox",
        ["msg_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_unsent_msg_id", table_name="outbox", schema=SCHEMA)
