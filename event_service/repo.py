"""All SQL of the event service."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any

import orjson
import psycopg
from sqlalchemy import (
    DateTime,
    Row,
    Text,
    Uuid,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import TSTZRANGE, Range
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncConnection

from common import outbox
from common.notifications import EDITABLE_FIELDS
from common.roles import Role
from event_service.models import SCHEMA, Event, EventAccess, StoredEvent
from event_service.models import outbox as outbox_table

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


_EVENT_AND_ACCESS = select(*_EVENT_COLUMNS, Event.access_version, _ACCESS_MAP).where(
    Event.id == bindparam("event_id", type_=Uuid)
)


async def get_event_and_access(
    conn: AsyncConnection, event_id: uuid.UUID
) -> tuple[StoredEvent, AccessList] | None:
    """The event (also a deleted one, `deleted` set) with its whole access list: what
    the read cache holds, in one query."""
    row = (await conn.execute(_EVENT_AND_ACCESS, {"event_id": event_id})).first()
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


# Writes. They run in a pipelined psycopg transaction (`common.db.pipelined_transaction`):
# a statement is sent without waiting for the one before, so what needs no result in
# between (BEGIN, the owner's lock, the insert, COMMIT) costs one round trip, and the
# owner's lock is held for no round trip at all. The SQL is fixed text, prepared by
# psycopg after a few uses; rows travel as one JSON parameter (orjson), which costs a
# fraction of adapting a parameter per column.

_LOCK_OWNER = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


async def lock_owner_calendar(conn: psycopg.AsyncConnection, owner_id: uuid.UUID) -> None:
    """Serialise, until commit, every change to one owner's calendar (conflict checks).
    A statement of its own: each later statement takes its snapshot once the lock is
    held, so it sees every change committed before."""
    await conn.execute(_LOCK_OWNER, (f"events.owner:{owner_id}",))


_EVENT_FIELDS = ", ".join(
    f"e.{field.name}" for field in fields(StoredEvent) if field.name != "deleted"
)
_LOCK_LIVE_EVENT = f"""
    SELECT {_EVENT_FIELDS}, e.deleted_at IS NOT NULL,
           (SELECT role FROM {SCHEMA}.event_access
            WHERE event_id = e.id AND user_id = %(user_id)s)
    FROM {SCHEMA}.events AS e
    WHERE e.id = %(id)s AND e.deleted_at IS NULL
    FOR UPDATE OF e
"""


async def lock_live_event(
    conn: psycopg.AsyncConnection, event_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[StoredEvent, Role | None] | None:
    """The live event, locked until commit, and the user's role on it."""
    cursor = await conn.execute(_LOCK_LIVE_EVENT, {"id": event_id, "user_id": user_id})
    row = await cursor.fetchone()
    return (StoredEvent(*row[:-1]), _role(row[-1])) if row else None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an event's occurrences can fall, stored beside it for conflict checks:
    its span starts at its start; `span_end` None is endless."""

    span_end: datetime | None
    footprint: list[tuple[int, int]]  # minute-of-week ranges, see domain.recurrence


# (window start, window end, week footprint) of a schedule to check for clashes.
Check = tuple[datetime, datetime, list[tuple[int, int]]]

# `clash`: for each check (`item` indexing the checks), the owner's live events whose
# span overlaps the window and whose footprint overlaps the footprint: the only ones
# that can clash. The candidates are fetched first, with the union of all windows and
# of all footprints as constants (MATERIALIZED), so that the owner's GiST index narrows
# them by span and footprint whatever the planner's statistics say.
_CLASHES = f"""
    checked AS (
        SELECT * FROM json_to_recordset(%(checks)s::json)
            AS checked(item int, low timestamptz, high timestamptz, footprint int4multirange)
    ), candidate AS MATERIALIZED (
        SELECT id, start_time, end_time, timezone, recurrence_rule, span, footprint
        FROM {SCHEMA}.events
        WHERE owner_id = %(owner)s AND deleted_at IS NULL
          AND id IS DISTINCT FROM %(exclude)s::uuid
          AND span && (SELECT range_agg(tstzrange(low, high)) FROM checked)
          AND footprint && (SELECT range_agg(footprint) FROM checked)
    ), clash AS (
        SELECT checked.item, c.id, c.start_time, c.end_time, c.timezone, c.recurrence_rule
        FROM checked JOIN candidate AS c
          ON c.span && tstzrange(checked.low, checked.high)
         AND c.footprint && checked.footprint
    )
"""

# (item, id, start_time, end_time, timezone, recurrence_rule)
Candidate = tuple[int, uuid.UUID, datetime, datetime, str, str | None]


def _check_params(
    owner_id: uuid.UUID, checks: Sequence[Check], exclude: uuid.UUID | None
) -> dict[str, Any]:
    rows = [
        {"item": item, "low": low, "high": high, "footprint": _multirange_literal(footprint)}
        for item, (low, high, footprint) in enumerate(checks)
    ]
    return {"owner": owner_id, "exclude": exclude, "checks": _json(rows)}


async def clash_candidates(
    conn: psycopg.AsyncConnection,
    owner_id: uuid.UUID,
    checks: Sequence[Check],
    exclude: uuid.UUID | None = None,
) -> list[Candidate]:
    """For each check, the owner's live events that can clash with it (see `_CLASHES`)."""
    params = _check_params(owner_id, checks, exclude)
    return await (await conn.execute(f"WITH {_CLASHES} SELECT * FROM clash", params)).fetchall()


def _multirange_literal(ranges: list[tuple[int, int]]) -> str:
    return "{" + ",".join(f"[{low},{high})" for low, high in ranges) + "}"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# New events, each with its owner's access row and, in the same statement, their
# notifications; all of it only if no event of the owner can clash (`_CLASHES`).
_INSERT_EVENTS = f"""
    WITH {_CLASHES}, new_event AS (
        INSERT INTO {SCHEMA}.events (id, owner_id, title, description, location,
            start_time, end_time, timezone, is_recurring, recurrence_rule, span, footprint,
            version, created_at, updated_at, access_version)
        SELECT id, %(owner)s, title, description, location, start_time, end_time, timezone,
            is_recurring, recurrence_rule, tstzrange(start_time, span_end), footprint,
            %(version)s, created_at, created_at, %(access_version)s
        FROM json_to_recordset(%(events)s::json)
            AS given(id uuid, title text, description text, location text,
                     start_time timestamptz, end_time timestamptz, timezone text,
                     is_recurring bool, recurrence_rule text, span_end timestamptz,
                     footprint int4multirange, created_at timestamptz)
        WHERE NOT EXISTS (SELECT FROM clash)
        RETURNING id, created_at
    ), owner_access AS (
        INSERT INTO {SCHEMA}.event_access (event_id, user_id, role, username, granted_by,
            granted_at, event_created_at)
        SELECT id, %(owner)s, %(role)s, %(username)s, %(owner)s, created_at, created_at
        FROM new_event
    ), notice AS (
        {outbox.insert_sql(outbox_table)} WHERE EXISTS (SELECT FROM new_event)
    )
    SELECT * FROM clash
"""


async def insert_events(
    conn: psycopg.AsyncConnection,
    username: str,
    events: Sequence[tuple[StoredEvent, Placement]],
    access_version: int,
    messages: Sequence[outbox.Message],
    unless_clashing: Sequence[Check],
) -> psycopg.AsyncCursor[Any]:
    """Insert new events of one owner (all at the same version), the owner's access
    row of each and `messages`, unless an event of the owner can clash with one of
    `unless_clashing`: the cursor's rows are those candidates (as `clash_candidates`),
    and nothing was written if there are any. Sent, not awaited: read the cursor once
    the transaction is over."""
    first = events[0][0]
    rows = [
        {
            "id": event.id,
            **{name: getattr(event, name) for name in EDITABLE_FIELDS},
            "span_end": placement.span_end,
            "footprint": _multirange_literal(placement.footprint),
            "created_at": event.created_at,
        }
        for event, placement in events
    ]
    params = {
        **_check_params(first.owner_id, unless_clashing, None),
        **outbox.message_params(messages),
        "events": _json(rows),
        "username": username,
        "role": Role.OWNER.value,
        "version": first.version,
        "access_version": access_version,
    }
    return await conn.execute(_INSERT_EVENTS, params)


_UPDATE_EVENT = f"""
    UPDATE {SCHEMA}.events
    SET {", ".join(f"{name} = %({name})s" for name in EDITABLE_FIELDS)},
        span = tstzrange(%(start_time)s, %(span_end)s),
        footprint = %(footprint)s::int4multirange,
        version = %(version)s, updated_at = %(updated_at)s
    WHERE id = %(id)s
"""


async def update_event(
    conn: psycopg.AsyncConnection, event: StoredEvent, placement: Placement
) -> None:
    """Store the event's editable fields, version and update time."""
    params = {name: getattr(event, name) for name in EDITABLE_FIELDS}
    await conn.execute(
        _UPDATE_EVENT,
        {
            **params,
            "span_end": placement.span_end,
            "footprint": _multirange_literal(placement.footprint),
            "version": event.version,
            "updated_at": event.updated_at,
            "id": event.id,
        },
    )


_DELETE_EVENT = f"""
    UPDATE {SCHEMA}.events SET version = %(version)s, updated_at = %(at)s, deleted_at = %(at)s
    WHERE id = %(id)s
"""


async def delete_event(conn: psycopg.AsyncConnection, event: StoredEvent) -> None:
    """Leave the event as a tombstone at its (new) version, deleted at `updated_at`."""
    await conn.execute(
        _DELETE_EVENT, {"version": event.version, "at": event.updated_at, "id": event.id}
    )


def _visible(query, by_role: bool):  # type: ignore[no-untyped-def]
    """Join the access rows of the user `:user_id`: only live events the user holds a
    role on (the role `:role` if `by_role`)."""
    query = query.join(EventAccess, EventAccess.event_id == Event.id).where(
        EventAccess.user_id == bindparam("user_id", type_=Uuid), _LIVE
    )
    return query.where(EventAccess.role == bindparam("role")) if by_role else query


def _in_window(query):  # type: ignore[no-untyped-def]
    return query.where(Event.span.op("&&")(bindparam("window", type_=TSTZRANGE)))


def _text_pattern(text_filter: str) -> str:
    escaped = text_filter.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _matching(query):  # type: ignore[no-untyped-def]
    """Only events with the text `:pattern` (see `_text_pattern`) in a text field."""
    pattern = bindparam("pattern")
    return query.where(
        or_(
            Event.title.ilike(pattern, escape="\\"),
            Event.description.ilike(pattern, escape="\\"),
            Event.location.ilike(pattern, escape="\\"),
        )
    )


# The statements of the hot reads are built once per shape and reused: building and
# hashing a statement cost more than PostgreSQL takes to run it.
@cache
def _list_statement(by_role: bool, in_window: bool, matching: bool, after: bool):  # type: ignore[no-untyped-def]
    query = _visible(select(*_EVENT_COLUMNS, EventAccess.role), by_role)
    if in_window:
        query = _in_window(query)
    if after:
        after_key = tuple_(
            bindparam("after_created", type_=DateTime(timezone=True)),
            bindparam("after_id", type_=Uuid),
        )
        query = query.where(tuple_(EventAccess.event_created_at, EventAccess.event_id) < after_key)
    if matching:
        query = _matching(query)
    order = (EventAccess.event_created_at.desc(), EventAccess.event_id.desc())
    return query.order_by(*order).limit(bindparam("limit"))


@cache
def _schedules_statement(by_role: bool, matching: bool):  # type: ignore[no-untyped-def]
    query = select(
        Event.id,
        Event.version,
        Event.title,
        Event.start_time,
        Event.end_time,
        Event.timezone,
        Event.recurrence_rule,
    )
    query = _in_window(_visible(query, by_role))
    return _matching(query) if matching else query


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
    statement = _list_statement(
        role is not None, window is not None, bool(text_filter), bool(after)
    )
    params: dict[str, Any] = {"user_id": user_id, "limit": limit}
    if role is not None:
        params["role"] = role.value
    if window is not None:
        params["window"] = Range(*window, bounds="[)")
    if after is not None:
        params["after_created"], params["after_id"] = after
    if text_filter:
        params["pattern"] = _text_pattern(text_filter)
    rows = (await conn.execute(statement, params)).all()
    return [(_stored(row), Role(row[-1])) for row in rows]


async def schedules_in_window(
    conn: AsyncConnection,
    user_id: uuid.UUID,
    role: Role | None,
    window: tuple[datetime, datetime],
    text_filter: str,
) -> Sequence[Row[Any]]:
    """(id, version, title, start_time, end_time, timezone, recurrence_rule) of the
    live events the user holds a role on whose span overlaps the window."""
    params: dict[str, Any] = {"user_id": user_id, "window": span_range(*window)}
    if role is not None:
        params["role"] = role.value
    if text_filter:
        params["pattern"] = _text_pattern(text_filter)
    statement = _schedules_statement(role is not None, bool(text_filter))
    return (await conn.execute(statement, params)).all()
