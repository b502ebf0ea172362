"""the event each iCalendar UID a user imported became

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

A re-import of a file updates the events its UIDs became instead of making copies.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = "events"


def upgrade() -> None:
    op.create_table(
        "imported_uids",
        sa.Column("user_id", sa.Uuid(), primary_key=True),
        sa.Column("uid", sa.Text(), primary_key=True),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("imported_uids", schema=SCHEMA)
