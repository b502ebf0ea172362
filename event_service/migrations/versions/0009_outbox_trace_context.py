"""outbox rows carry the trace context of the request that queued them

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10

With tracing on (`common.tracing`), a write stores the W3C context of its request's
span with each notification; the relay sends it as message headers, so that the
consumers' work joins the request's trace. Rows queued before, or by a request that is
not traced, have none. A nullable column without a default: adding it rewrites nothing.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SCHEMA = "events"


def upgrade() -> None:
    op.add_column("outbox", sa.Column("trace_context", postgresql.JSON()), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("outbox", "trace_context", schema=SCHEMA)
