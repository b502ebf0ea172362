"""All SQL of the sharing service: the permission audit trail."""

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service.models import PermissionChange

# Fixed SQL with the rows as one JSON parameter: prepared once, not compiled per batch.
_ADD_PERMISSION_CHANGES = text(f"""
    INSERT INTO {PermissionChange.__table__.fullname}
        (event_id, sequence, user_id, role, previous_role, actor_id, occurred_at)
    SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS given(event_id uuid,
        sequence bigint, user_id uuid, role text, previous_role text, actor_id uuid,
        occurred_at timestamptz)
    ON CONFLICT (event_id, sequence) DO NOTHING
""")


async def add_permission_changes(session: AsyncSession, rows: list[dict]) -> None:
    """Store audit records; one already stored (same event and sequence) is kept as is."""
    if rows:
        await session.execute(_ADD_PERMISSION_CHANGES, {"rows": orjson.dumps(rows).decode()})
