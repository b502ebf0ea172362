"""All SQL of the event service."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
    Text,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import TSTZRANGE, Range
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncConnection

from common.roles import Role
from event_service.models import SCHEMA, Event, EventAccess, StoredEvent

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


_FIELD_COUNT = len(_EVENT_COLUMNS)


def _stored(row: Row[Any]) -> StoredEvent:
    return StoredEvent(*row[:_FIELD_COUNT])


def _role(value: str | None) -> Role | None:
    return Role(value) if value is not None else None


def _role_of(user_id: uuid.UUID):  # type: ignore[no-untyped-def]
    """The user's role on the event of the enclosing query (NULL for none)."""
    return (
        select(EventAccess.role)
        .where(EventAccess.event_id == Event.id, EventAccess.user_id == user_id)
        .scalar_subquery()
    )


_ACCESS_MAP = (
    select(
        func.coalesce(
            func.json_object_agg(cast(EventAccess.user_id, Text), EventAccess.role),
            literal_column("'{}'::json"),
        )
    )
    .where(EventAccess.event_id == Event.id)
    .scalar_subquery()
)


@dataclass(frozen=True, slots=True)
class AccessList:
    """Who holds which role on an event, at one access version."""

    version: int
    roles: dict[str, Role]

    def role_of(self, user_id: str) -> Role | None:
        return self.roles.get(user_id)


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


async def get_event_and_access(
    conn: AsyncConnection, event_id: uuid.UUID
) -> tuple[StoredEvent, AccessList] | None:
    """The event (also a deleted one, `deleted` set) with its whole access list: what
    the read cache holds, in one query."""
    query = select(*_EVENT_COLUMNS, Event.access_version, _ACCESS_MAP).where(Event.id == event_id)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    version, roles = row[_FIELD_COUNT:]
    return _stored(row), AccessList(version, {user: Role(role) for user, role in roles.items()})


async def get_event_and_role(
    conn: AsyncConnection, event_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[StoredEvent, Role | None] | None:
    """The event (also a deleted one) and the user's role on it, from PostgreSQL."""
    query = select(*_EVENT_COLUMNS, _role_of(user_id)).where(Event.id == event_id)
    row = (await conn.execute(query)).first()
    return (_stored(row), _role(row[-1])) if row else None


async def lock_live_event(
    conn: AsyncConnection, event_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[StoredEvent, Role | None] | None:
    """The live event, locked until commit, and the user's role on it."""
    query = (
        select(*_EVENT_COLUMNS, _role_of(user_id))
        .where(Event.id == event_id, _LIVE)
        .with_for_update(of=Event)
    )
    row = (await conn.execute(query)).first()
    return (_stored(row), _role(row[-1])) if row else None


@dataclass(frozen=True, slots=True)
class AccessEntry:
    user_id: uuid.UUID
    username: str
    role: Role
    granted_by: uuid.UUID
    granted_at: datetime


@dataclass(frozen=True, slots=True)
class EventAccessRows:
    """A live event's access list with the details the permissions list shows."""

    event_id: uuid.UUID
    version: int
    created_at: datetime
    entries: list[AccessEntry]

    def role_of(self, user_id: uuid.UUID) -> Role | None:
        return next((e.role for e in self.entries if e.user_id == user_id), None)


async def get_access(
    conn: AsyncConnection, event_id: uuid.UUID, *, lock: bool = False
) -> EventAccessRows | None:
    """A live event's access list; with `lock`, the event row stays locked until
    commit, which serialises changes of its access list."""
    query = select(Event.access_version, Event.created_at).where(Event.id == event_id, _LIVE)
    head = (await conn.execute(query.with_for_update() if lock else query)).first()
    if head is None:
        return None
    rows = await conn.execute(
        select(
            EventAccess.user_id,
            EventAccess.username,
            EventAccess.role,
            EventAccess.granted_by,
            EventAccess.granted_at,
        ).where(EventAccess.event_id == event_id)
    )
    entries = [AccessEntry(u, name, Role(role), by, at) for u, name, role, by, at in rows]
    return EventAccessRows(event_id, head.access_version, head.created_at, entries)


async def insert_access(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await conn.execute(insert(EventAccess), rows)


async def save_access(
    conn: AsyncConnection,
    event_id: uuid.UUID,
    version: int,
    granted: list[dict[str, Any]],
    revoked: list[uuid.UUID],
) -> None:
    """Write granted roles (insert or replace), remove revoked ones, set the version."""
    if granted:
        statement = upsert(EventAccess).values(granted)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[EventAccess.event_id, EventAccess.user_id],
                set_={
                    "role": statement.excluded.role,
                    "granted_by": statement.excluded.granted_by,
                    "granted_at": statement.excluded.granted_at,
                },
            )
        )
    if revoked:
        await conn.execute(
            delete(EventAccess).where(
                EventAccess.event_id == event_id, EventAccess.user_id.in_(revoked)
            )
        )
    await conn.execute(update(Event).where(Event.id == event_id).values(access_version=version))


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


def _visible_to(query, user_id: uuid.UUID, role: Role | None):  # type: ignore[no-untyped-def]
    """Join the user's access rows: only live events the user holds a role on."""
    query = query.join(EventAccess, EventAccess.event_id == Event.id).where(
        EventAccess.user_id == user_id, _LIVE
    )
    return query.where(EventAccess.role == role.value) if role else query


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
    user_id: uuid.UUID,
    *,
    role: Role | None,
    window: tuple[datetime | None, datetime | None] | None,
    text_filter: str,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[tuple[StoredEvent, Role]]:
    """Live events the user holds a role on, newest first (created_at, id descending),
    after a key, with the user's role. Walks the user's access index in that order,
    so a page costs the same however many events the user can see."""
    query = _visible_to(select(*_EVENT_COLUMNS, EventAccess.role), user_id, role)
    if window is not None:
        query = query.where(
            Event.span.op("&&")(bindparam("window", Range(*window, bounds="[)"), type_=TSTZRANGE))
        )
    if after is not None:
        query = query.where(
            tuple_(EventAccess.event_created_at, EventAccess.event_id) < tuple_(*after)
        )
    query = _matching(query, text_filter)
    query = query.order_by(EventAccess.event_created_at.desc(), EventAccess.event_id.desc()).limit(
        limit
    )
    return [(_stored(row), Role(row[-1])) for row in (await conn.execute(query)).all()]


async def schedules_in_window(
    conn: AsyncConnection,
    user_id: uuid.UUID,
    role: Role | None,
    window: tuple[datetime, datetime],
    text_filter: str,
) -> Sequence[Row[Any]]:
    """(id, title, start_time, end_time, timezone, recurrence_rule) of the live events
    the user holds a role on whose span overlaps the window."""
    query = select(
        Event.id,
        Event.title,
        Event.start_time,
        Event.end_time,
        Event.timezone,
        Event.recurrence_rule,
    ).where(Event.span.op("&&")(bindparam("window", span_range(*window), type_=TSTZRANGE)))
    query = _visible_to(query, user_id, role)
    return (await conn.execute(_matching(query, text_filter))).all()
