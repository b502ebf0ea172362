"""free/busy grants

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08

Who lets whom see their free/busy. The primary key (owner, grantee) serves both
an owner's listing and the check of a grantee's request.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "sharing"


def upgrade() -> None:
    op.create_table(
        "freebusy_grants",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("grantee_id", sa.Uuid(), nullable=False),
        sa.Column("grantee_username", sa.Text(), nullable=False),
        sa.Column(
            "granted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("owner_id", "grantee_id", name="pk_freebusy_grants"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("freebusy_grants", schema=SCHEMA)
