"""the exceptions of a recurring series, stored with it

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

`overrides` maps each exception's recurrence id (the occurrence's original start,
UTC) to what differs from the series there, or to a cancellation; see
`event_service.domain.exceptions`.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "events"


def upgrade() -> None:
    op.add_column(
        "events",
        sa.Column("overrides", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("events", "overrides", schema=SCHEMA)
