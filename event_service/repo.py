"""All SQL of the event service."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Row,
    Text,
    Uuid,
    any_,
    bindparam,
    cast,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import TSTZRANGE, Range
from sqlalchemy.ext.asyncio import AsyncConnection

from event_service.models import SCHEMA, Event, StoredEvent

_EVENT_COLUMNS = (
    Event.id,
    Event.owner_id,
    Event.title,
    Event.description,
    Event.location,
    Event.start_time,
    Event.end_time,
    Event.timezone,
    Event.is_recurring,
    Event.recurrence_rule,
    Event.version,
    Event.created_at,
    Event.updated_at,
    Event.deleted_at.is_not(None).label("deleted"),
)
_LIVE = Event.deleted_at.is_(None)


def _stored(row: Row[Any]) -> StoredEvent:
    return StoredEvent(*row)


def span_range(start: datetime, end: datetime | None) -> Range[datetime]:
    return Range(start, end, bounds="[)")


def footprint_ranges(ranges: list[tuple[int, int]]) -> list[Range[int]]:
    return [Range(low, high, bounds="[)") for low, high in ranges]


async def lock_owner_calendar(conn: AsyncConnection, owner_id: uuid.UUID) -> None:
    """Serialise, until commit, every change to one owner's calendar (conflict checks)."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"events.owner:{owner_id}"},
    )


async def get_event(conn: AsyncConnection, event_id: uuid.UUID) -> StoredEvent | None:
    """The event, also a deleted one (`deleted` set)."""
    row = (await conn.execute(select(*_EVENT_COLUMNS).where(Event.id == event_id))).first()
    return _stored(row) if row else None


async def lock_live_event(conn: AsyncConnection, event_id: uuid.UUID) -> StoredEvent | None:
    row = (
        await conn.execute(
            select(*_EVENT_COLUMNS).where(Event.id == event_id, _LIVE).with_for_update()
        )
    ).first()
    return _stored(row) if row else None


async def owner_of(conn: AsyncConnection, event_id: uuid.UUID) -> uuid.UUID | None:
    return await conn.scalar(select(Event.owner_id).where(Event.id == event_id, _LIVE))


_CLASH_CANDIDATES = text(
    f"""
    SELECT w.item - 1 AS item, e.id, e.start_time, e.end_time, e.timezone, e.recurrence_rule
    FROM unnest(CAST(:lows AS timestamptz[]), CAST(:highs AS timestamptz[]),
                CAST(:footprints AS text[])) WITH ORDINALITY AS w(low, high, footprint, item)
    JOIN {SCHEMA}.events AS e
      ON e.owner_id = :owner
     AND e.deleted_at IS NULL
     AND e.span && tstzrange(w.low, w.high)
     AND e.footprint && CAST(w.footprint AS int4multirange)
    WHERE e.id IS DISTINCT FROM CAST(:exclude AS uuid)
    """
)


async def clash_candidates(
    conn: AsyncConnection,
    owner_id: uuid.UUID,
    checks: list[tuple[datetime, datetime, list[tuple[int, int]]]],
    exclude: uuid.UUID | None = None,
) -> Sequence[Row[Any]]:
    """For each (window start, window end, week footprint) to check, the owner's live
    events whose span overlaps the window and whose footprint overlaps the footprint:
    the only ones that can clash. Rows are (item, id, start_time, end_time, timezone,
    recurrence_rule), `item` indexing `checks`."""
    result = await conn.execute(
        _CLASH_CANDIDATES,
        {
            "owner": owner_id,
            "exclude": exclude,
            "lows": [low for low, _, _ in checks],
            "highs": [high for _, high, _ in checks],
            "footprints": [_multirange_literal(footprint) for _, _, footprint in checks],
        },
    )
    return result.all()


def _multirange_literal(ranges: list[tuple[int, int]]) -> str:
    return "{" + ",".join(f"[{low},{high})" for low, high in ranges) + "}"


async def insert_events(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await conn.execute(insert(Event), rows)


async def update_event(conn: AsyncConnection, event_id: uuid.UUID, values: dict[str, Any]) -> None:
    await conn.execute(update(Event).where(Event.id == event_id).values(**values))


def _visible(ids: Sequence[str]):  # type: ignore[no-untyped-def]
    return Event.id == any_(cast(bindparam("ids", list(ids), type_=ARRAY(Text)), ARRAY(Uuid)))


def _matching(query, text_filter: str):  # type: ignore[no-untyped-def]
    if not text_filter:
        return query
    escaped = text_filter.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    return query.where(
        or_(
            Event.title.ilike(pattern, escape="\\"),
            Event.description.ilike(pattern, escape="\\"),
            Event.location.ilike(pattern, escape="\\"),
        )
    )


async def list_page(
    conn: AsyncConnection,
    ids: Sequence[str],
    *,
    window: tuple[datetime | None, datetime | None] | None,
    text_filter: str,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[StoredEvent]:
    """Live events among `ids`, newest first (created_at, id descending), after a key."""
    query = select(*_EVENT_COLUMNS).where(_visible(ids), _LIVE)
    if window is not None:
        query = query.where(
            Event.span.op("&&")(bindparam("window", Range(*window, bounds="[)"), type_=TSTZRANGE))
        )
    if after is not None:
        query = query.where(tuple_(Event.created_at, Event.id) < tuple_(*after))
    query = _matching(query, text_filter)
    query = query.order_by(Event.created_at.desc(), Event.id.desc()).limit(limit)
    return [_stored(row) for row in (await conn.execute(query)).all()]


async def schedules_in_window(
    conn: AsyncConnection,
    ids: Sequence[str],
    window: tuple[datetime, datetime],
    text_filter: str,
) -> Sequence[Row[Any]]:
    """(id, title, start_time, end_time, timezone, recurrence_rule) of the live events
    among `ids` whose span overlaps the window."""
    query = select(
        Event.id,
        Event.title,
        Event.start_time,
        Event.end_time,
        Event.timezone,
        Event.recurrence_rule,
    ).where(
        _visible(ids),
        _LIVE,
        Event.span.op("&&")(bindparam("window", span_range(*window), type_=TSTZRANGE)),
    )
    return (await conn.execute(_matching(query, text_filter))).all()
