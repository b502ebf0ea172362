"""All SQL of the sharing service: the permission audit trail."""

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service.models import PermissionChange


async def add_permission_changes(session: AsyncSession, rows: list[dict]) -> None:
    """Store audit records; one already stored (same event and sequence) is kept as is."""
    if rows:
        await session.execute(
            insert(PermissionChange)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["event_id", "sequence"])
        )
