"""All SQL of the history service."""

import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import func, select, text, union
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only

from history_service.models import DeadLetter, EventVersion

_SUMMARY_COLUMNS = (
    EventVersion.event_id,
    EventVersion.version,
    EventVersion.change_type,
    EventVersion.changed_by,
    EventVersion.changed_at,
)


# Fixed SQL, one JSON parameter for any number of rows: prepared once, where an
# insert built per batch was compiled afresh each time (a quarter of the consumer's CPU).
_ADD_VERSIONS = text(f"""
    INSERT INTO {EventVersion.__table__.fullname}
        (event_id, version, change_type, changed_by, changed_at, snapshot, changes)
    SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS given(event_id uuid,
        version bigint, change_type text, changed_by text, changed_at timestamptz,
        snapshot jsonb, changes jsonb)
    ON CONFLICT (event_id, version) DO NOTHING
    RETURNING event_id, version
""")


async def add_versions(session: AsyncSession, rows: list[dict[str, Any]]) -> set[tuple[str, int]]:
    """Insert versions not stored yet; returns the (event_id, version) pairs that were new."""
    if not rows:
        return set()
    result = await session.execute(_ADD_VERSIONS, {"rows": orjson.dumps(rows).decode()})
    return {(str(event_id), version) for event_id, version in result.all()}


async def add_dead_letters(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(
            insert(DeadLetter)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["stream_sequence"])
        )


async def count_versions_through(session: AsyncSession, event_id: uuid.UUID, version: int) -> int:
    """How many of versions 1..`version` of an event are settled: stored, or
    dead-lettered (a gap that reads show instead of waiting for it for good)."""
    settled = union(
        select(EventVersion.version).where(
            EventVersion.event_id == event_id, EventVersion.version <= version
        ),
        select(DeadLetter.version).where(
            DeadLetter.event_id == event_id, DeadLetter.version <= version
        ),
    ).subquery()
    count = await session.scalar(select(func.count()).select_from(settled))
    return int(count or 0)


async def list_versions(
    session: AsyncSession,
    event_id: uuid.UUID,
    after: int,
    limit: int,
    *,
    with_changes: bool = False,
) -> Sequence[EventVersion]:
    """Versions after `after`, oldest first, without their snapshots."""
    columns = (*_SUMMARY_COLUMNS, EventVersion.changes) if with_changes else _SUMMARY_COLUMNS
    result = await session.scalars(
        select(EventVersion)
        .options(load_only(*columns))
        .where(EventVersion.event_id == event_id, EventVersion.version > after)
        .order_by(EventVersion.version)
        .limit(limit)
    )
    return result.all()


async def get_versions(
    session: AsyncSession, event_id: uuid.UUID, versions: Sequence[int]
) -> dict[int, EventVersion]:
    result = await session.scalars(
        select(EventVersion).where(
            EventVersion.event_id == event_id, EventVersion.version.in_(versions)
        )
    )
    return {row.version: row for row in result.all()}
