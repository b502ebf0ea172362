"""event access lists move in beside the events

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

The event service becomes the system of record for who holds which role on each
event. Grants made before this release live in the sharing service's schema
(`sharing.grants`, numbered by `sharing.event_acls.last_sequence`); they are
copied here, and each event's access version continues that numbering so the
permission audit trail (keyed by event and number) carries on without a gap.
Migrate the event service before the sharing service: the sharing service's
next migration drops those tables once they are copied.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "events"


def upgrade() -> None:
    op.add_column(
        "events",
        sa.Column("access_version", sa.BigInteger(), nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.alter_column("events", "access_version", server_default=None, schema=SCHEMA)
    op.create_table(
        "event_access",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.Uuid(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "user_id", name="pk_event_access"),
        sa.ForeignKeyConstraint(
            ["event_id"], [f"{SCHEMA}.events.id"], name="fk_event_access_event_id_events"
        ),
        sa.CheckConstraint("role IN ('owner', 'editor', 'viewer')", name="ck_event_access_role"),
        schema=SCHEMA,
    )
    op.execute(
        f"CREATE INDEX ix_event_access_user_listing ON {SCHEMA}.event_access "
        "(user_id, event_created_at DESC, event_id DESC) INCLUDE (role)"
    )
    # Listings now walk a user's access rows in order (ix_event_access_user_listing).
    op.execute(f"DROP INDEX {SCHEMA}.ix_events_created_at_id")
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT to_regclass('sharing.grants')")).scalar() is not None:
        op.execute(
            f"""
            INSERT INTO {SCHEMA}.event_access
                (event_id, user_id, role, username, granted_by, granted_at, event_created_at)
            SELECT g.event_id, g.user_id, g.role, g.username, g.granted_by, g.granted_at,
                   e.created_at
            FROM sharing.grants AS g JOIN {SCHEMA}.events AS e ON e.id = g.event_id
            """
        )
        op.execute(
            f"""
            UPDATE {SCHEMA}.events AS e SET access_version = a.last_sequence
            FROM sharing.event_acls AS a WHERE a.event_id = e.id
            """
        )


def downgrade() -> None:
    op.execute(
        f"CREATE INDEX ix_events_created_at_id ON {SCHEMA}.events (created_at DESC, id DESC) "
        "WHERE deleted_at IS NULL"
    )
    op.drop_table("event_access", schema=SCHEMA)
    op.drop_column("events", "access_version", schema=SCHEMA)
