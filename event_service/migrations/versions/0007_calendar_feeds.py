"""each user's secret calendar feed, kept as a hash of its secret

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

The feed URL's secret is shown once, when made; only its SHA-256 is stored (the
secret holds 192 random bits, so a fast hash does), unique, for the lookup.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "events"


def upgrade() -> None:
    op.create_table(
        "calendar_feeds",
        sa.Column("user_id", sa.Uuid(), primary_key=True),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("calendar_feeds", schema=SCHEMA)
