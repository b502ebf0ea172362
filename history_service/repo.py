"""All SQL of the history service."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from psycopg import AsyncConnection
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from history_service.models import DeadLetter, EventVersion

_VERSIONS = EventVersion.__table__.fullname
_DEAD_LETTERS = DeadLetter.__table__.fullname

# Fixed SQL, one JSON parameter for any number of rows: prepared once, where an
# insert built per batch was compiled afresh each time (a quarter of the consumer's CPU).
_ADD_VERSIONS = text(f"""
    INSERT INTO {_VERSIONS}
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


# History reads: plain statements on the driver's pool (see `common.db.make_driver_pool`),
# one round trip each that both checks that versions 1..`through` are settled and reads.
# A version is settled when it is stored, or dead-lettered (a gap that reads show
# instead of waiting for it for good).
_SETTLED = f"""
    SELECT count(*) AS settled FROM (
        SELECT version FROM {_VERSIONS} WHERE event_id = %(event)s AND version <= %(through)s
        UNION
        SELECT version FROM {_DEAD_LETTERS}
        WHERE event_id = %(event)s AND version <= %(through)s
    ) AS known
"""
_PAGE = """
    SELECT settled, version, change_type, changed_by, changed_at, NULL::jsonb, {changes}
    FROM ({settled}) AS s LEFT JOIN LATERAL (
        SELECT version, change_type, changed_by, changed_at, {changes} FROM {versions}
        WHERE event_id = %(event)s AND version > %(after)s ORDER BY version LIMIT %(limit)s
    ) AS page ON true
    ORDER BY version
"""
_PAGE_OF_SUMMARIES = _PAGE.format(settled=_SETTLED, versions=_VERSIONS, changes="NULL::jsonb")
_PAGE_OF_CHANGES = _PAGE.format(settled=_SETTLED, versions=_VERSIONS, changes="changes")
_VERSIONS_GIVEN = f"""
    SELECT settled, version, change_type, changed_by, changed_at, snapshot, changes
    FROM ({_SETTLED}) AS s LEFT JOIN LATERAL (
        SELECT version, change_type, changed_by, changed_at, snapshot, changes FROM {_VERSIONS}
        WHERE event_id = %(event)s AND version = ANY(%(versions)s)
    ) AS given ON true
"""


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """A stored version as reads use it; `snapshot` and `changes` are None where the
    read did not ask for them."""

    version: int
    change_type: str
    changed_by: str
    changed_at: datetime
    snapshot: dict[str, Any] | None
    changes: dict[str, Any] | None


async def page_if_settled(
    conn: AsyncConnection,
    event_id: uuid.UUID,
    through: int,
    after: int,
    limit: int,
    *,
    with_changes: bool = False,
) -> list[StoredVersion] | None:
    """Versions after `after`, oldest first, at most `limit`, without their snapshots;
    None while any of versions 1..`through` is not settled yet."""
    statement = _PAGE_OF_CHANGES if with_changes else _PAGE_OF_SUMMARIES
    cursor = await conn.execute(
        statement, {"event": event_id, "through": through, "after": after, "limit": limit}
    )
    return _if_settled(await cursor.fetchall(), through)


async def versions_if_settled(
    conn: AsyncConnection, event_id: uuid.UUID, through: int, versions: Sequence[int]
) -> dict[int, StoredVersion] | None:
    """The given versions that are stored, by number; None while any of versions
    1..`through` is not settled yet."""
    cursor = await conn.execute(
        _VERSIONS_GIVEN, {"event": event_id, "through": through, "versions": list(versions)}
    )
    rows = _if_settled(await cursor.fetchall(), through)
    return None if rows is None else {row.version: row for row in rows}


def _if_settled(rows: list[tuple[Any, ...]], through: int) -> list[StoredVersion] | None:
    if rows[0][0] < through:
        return None
    return [StoredVersion(*row[1:]) for row in rows if row[1] is not None]
