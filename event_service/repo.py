"""The event service's reads and its access-list SQL (writes of events: `write_repo`)."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

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

from common.roles import Role
from event_service.models import AccessLost, Event, EventAccess, StoredEvent

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
    Event.overrides,
    Event.deleted_at.is_not(None).label("deleted"),
)
_LIVE = Event.deleted_at.is_(None)


_FIELD_COUNT = len(_EVENT_COLUMNS)


def _stored(row: Row[Any]) -> StoredEvent:
    return StoredEvent(*row[:_FIELD_COUNT])


def role_or_none(value: str | None) -> Role | None:
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
    return (_stored(row), role_or_none(row[-1])) if row else None


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
    event_version: int

    def role_of(self, user_id: uuid.UUID) -> Role | None:
        return next((e.role for e in self.entries if e.user_id == user_id), None)


async def get_access(
    conn: AsyncConnection, event_id: uuid.UUID, *, lock: bool = False
) -> EventAccessRows | None:
    """A live event's access list; with `lock`, the event row stays locked until
    commit, which serialises changes of its access list."""
    query = select(Event.access_version, Event.created_at, Event.version).where(
        Event.id == event_id, _LIVE
    )
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
    return EventAccessRows(event_id, head.access_version, head.created_at, entries, head.version)


async def save_access(
    conn: AsyncConnection,
    event_id: uuid.UUID,
    version: int,
    granted: list[dict[str, Any]],
    revoked: list[uuid.UUID],
    event_version: int,
    now: datetime,
) -> None:
    """Write granted roles (insert or replace), remove revoked ones (remembered in
    `access_lost` for the users' syncs), set the version."""
    if granted:
        statement = upsert(EventAccess).values(granted)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[EventAccess.event_id, EventAccess.user_id],
                set_={
                    "role": statement.excluded.role,
                    "granted_by": statement.excluded.granted_by,
                    "granted_at": statement.excluded.granted_at,
                    "changed_in": func.pg_current_xact_id(),
                },
            )
        )
        await conn.execute(
            delete(AccessLost).where(
                AccessLost.event_id == event_id,
                AccessLost.user_id.in_([row["user_id"] for row in granted]),
            )
        )
    if revoked:
        await conn.execute(
            delete(EventAccess).where(
                EventAccess.event_id == event_id, EventAccess.user_id.in_(revoked)
            )
        )
        lost = upsert(AccessLost).values(
            [
                {"user_id": user, "event_id": event_id, "version": event_version, "lost_at": now}
                for user in revoked
            ]
        )
        await conn.execute(
            lost.on_conflict_do_update(
                index_elements=[AccessLost.user_id, AccessLost.event_id],
                set_={
                    "version": lost.excluded.version,
                    "lost_at": lost.excluded.lost_at,
                    "changed_in": func.pg_current_xact_id(),
                },
            )
        )
    await conn.execute(update(Event).where(Event.id == event_id).values(access_version=version))


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
        Event.description,
        Event.location,
        Event.start_time,
        Event.end_time,
        Event.timezone,
        Event.recurrence_rule,
        (Event.overrides != literal_column("'{}'::jsonb")).label("has_exceptions"),
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
    """(id, version, title, description, location, start_time, end_time, timezone,
    recurrence_rule, has_exceptions) of the live events the user holds a role on whose
    span overlaps the window."""
    params: dict[str, Any] = {"user_id": user_id, "window": span_range(*window)}
    if role is not None:
        params["role"] = role.value
    if text_filter:
        params["pattern"] = _text_pattern(text_filter)
    statement = _schedules_statement(role is not None, bool(text_filter))
    return (await conn.execute(statement, params)).all()


async def exceptions_of(
    conn: AsyncConnection, versions: list[tuple[uuid.UUID, int]]
) -> dict[tuple[uuid.UUID, int], dict[str, Any]]:
    """The exceptions of the given event versions still stored, by (id, version)."""
    ids = [event_id for event_id, _ in versions]
    rows = await conn.execute(
        select(Event.id, Event.version, Event.overrides).where(Event.id.in_(ids))
    )
    wanted = set(versions)
    return {(row.id, row.version): row.overrides for row in rows if (row.id, row.version) in wanted}


async def sync_horizon(conn: AsyncConnection) -> int:
    """A sync horizon (`event_service.sync`) for a listing read after this: taken
    before it, it is no later than the listing's own, so a sync from it misses
    nothing the listing missed."""
    result = await conn.exec_driver_sql("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
    return int(result.scalar_one())
