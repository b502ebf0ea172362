"""event versions and dead letters

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "history"


def upgrade() -> None:
    op.create_table(
        "event_versions",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("change_type", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("snapshot", JSONB(), nullable=False),
        sa.Column("changes", JSONB(), nullable=False),
        sa.Column(
            "stored_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("event_id", "version", name="pk_event_versions"),
        sa.CheckConstraint(
            "change_type IN ('created', 'updated', 'rolled_back', 'deleted')",
            name="ck_event_versions_change_type",
        ),
        sa.CheckConstraint("version > 0", name="ck_event_versions_version_positive"),
        schema=SCHEMA,
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("stream_sequence", sa.BigInteger()),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("msg_id", sa.Text()),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.UniqueConstraint("stream_sequence", name="uq_dead_letters_stream_sequence"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("dead_letters", schema=SCHEMA)
    op.drop_table("event_versions", schema=SCHEMA)
