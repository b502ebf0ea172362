"""events and outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import INT4MULTIRANGE, TSTZRANGE

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "events"


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("is_recurring", sa.Boolean(), nullable=False),
        sa.Column("recurrence_rule", sa.Text()),
        sa.Column("span", TSTZRANGE(), nullable=False),
        sa.Column("footprint", INT4MULTIRANGE(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        schema=SCHEMA,
    )
    # Conflict checks look up one owner's live events by time span and minutes of the
    # week. With btree_gist one GiST index covers all three; without it, the owner
    # has an index of its own.
    bind = op.get_bind()
    has_btree_gist = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'btree_gist'")
    ).scalar()
    if has_btree_gist:
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            f"CREATE INDEX ix_events_owner_span_footprint ON {SCHEMA}.events "
            "USING gist (owner_id, span, footprint) WHERE deleted_at IS NULL"
        )
    else:
        op.execute(
            f"CREATE INDEX ix_events_span_footprint ON {SCHEMA}.events "
            "USING gist (span, footprint) WHERE deleted_at IS NULL"
        )
        op.create_index("ix_events_owner_id", "events", ["owner_id"], schema=SCHEMA)
    op.execute(
        f"CREATE INDEX ix_events_created_at_id ON {SCHEMA}.events (created_at DESC, id DESC) "
        "WHERE deleted_at IS NULL"
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("msg_id", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["id"],
        schema=SCHEMA,
        postgresql_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("events", schema=SCHEMA)
