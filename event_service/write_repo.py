"""SQL of event writes (create, change, delete) and of conflict candidates.

They run in a pipelined psycopg transaction (`common.db.pipelined_transaction`):
a statement is sent without waiting for the one before, so what needs no result in
between (BEGIN, the owner's lock, the insert, COMMIT) costs one round trip, and the
owner's lock is held for no round trip at all. The SQL is fixed text, prepared by
psycopg after a few uses; rows travel as one JSON parameter (orjson), which costs a
fraction of adapting a parameter per column.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, NamedTuple

import orjson
import psycopg

from common import outbox
from common.notifications import EDITABLE_FIELDS, FeedNotice, feed_subject
from common.roles import Role
from common.tracing import trace_headers
from event_service.models import SCHEMA, StoredEvent
from event_service.models import outbox as outbox_table
from event_service.repo import role_or_none

_LOCK_OWNER = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


async def lock_owner_calendar(conn: psycopg.AsyncConnection, owner_id: uuid.UUID) -> None:
    """Serialise, until commit, every change to one owner's calendar (conflict checks).
    A statement of its own: each later statement takes its snapshot once the lock is
    held, so it sees every change committed before."""
    await conn.execute(_LOCK_OWNER, (f"events.owner:{owner_id}",))


EVENT_FIELDS = ", ".join(
    f"e.{field.name}" for field in fields(StoredEvent) if field.name != "deleted"
)
_LOCK_LIVE_EVENT = f"""
    SELECT {EVENT_FIELDS}, e.deleted_at IS NOT NULL,
           (SELECT role FROM {SCHEMA}.event_access
            WHERE event_id = e.id AND user_id = %(user_id)s),
           ARRAY(SELECT user_id FROM {SCHEMA}.event_access WHERE event_id = e.id)
    FROM {SCHEMA}.events AS e
    WHERE e.id = %(id)s AND e.deleted_at IS NULL
    FOR UPDATE OF e
"""


class LockedEvent(NamedTuple):
    event: StoredEvent
    role: Role | None  # the user's
    holders: list[uuid.UUID]  # every user with a role on it: whose listings show it


async def lock_live_event(
    conn: psycopg.AsyncConnection, event_id: uuid.UUID, user_id: uuid.UUID
) -> LockedEvent | None:
    """The live event, locked until commit, the user's role on it and its role holders."""
    cursor = await conn.execute(_LOCK_LIVE_EVENT, {"id": event_id, "user_id": user_id})
    row = await cursor.fetchone()
    return LockedEvent(StoredEvent(*row[:-2]), role_or_none(row[-2]), row[-1]) if row else None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an event's occurrences can fall, stored beside it for conflict checks and
    windowed reads: from `span_start` (its start, or earlier for an occurrence moved
    before it) to `span_end` (None: endless), in the minutes of the week of `footprint`."""

    span_start: datetime
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
        SELECT id, start_time, end_time, timezone, recurrence_rule, overrides, span, footprint
        FROM {SCHEMA}.events
        WHERE owner_id = %(owner)s AND deleted_at IS NULL
          AND id <> ALL(%(exclude)s::uuid[])
          AND span && (SELECT range_agg(tstzrange(low, high)) FROM checked)
          AND footprint && (SELECT range_agg(footprint) FROM checked)
    ), clash AS (
        SELECT checked.item, c.id, c.start_time, c.end_time, c.timezone, c.recurrence_rule,
            c.overrides,
            EXISTS (SELECT FROM {SCHEMA}.event_access AS a
                    WHERE a.event_id = c.id AND a.user_id = %(reader)s) AS visible
        FROM checked JOIN candidate AS c
          ON c.span && tstzrange(checked.low, checked.high)
         AND c.footprint && checked.footprint
    )
"""

# (item, id, start_time, end_time, timezone, recurrence_rule, overrides, whether the one
# making the change has a role on the event: if not, a conflict answer does not name it)
Candidate = tuple[
    int, uuid.UUID, datetime, datetime, str, str | None, dict[str, dict[str, Any]], bool
]


def _check_params(
    owner_id: uuid.UUID, checks: Sequence[Check], exclude: Sequence[uuid.UUID], reader: uuid.UUID
) -> dict[str, Any]:
    rows = [
        {"item": item, "low": low, "high": high, "footprint": _multirange_literal(footprint)}
        for item, (low, high, footprint) in enumerate(checks)
    ]
    return {"owner": owner_id, "exclude": list(exclude), "reader": reader, "checks": _json(rows)}


async def clash_candidates(
    conn: psycopg.AsyncConnection,
    owner_id: uuid.UUID,
    checks: Sequence[Check],
    exclude: Sequence[uuid.UUID] = (),
    reader: uuid.UUID | None = None,
) -> list[Candidate]:
    """For each check, the owner's live events but `exclude` that can clash with it
    (see `_CLASHES`); `reader` (the owner if None) is the user the answer is for."""
    params = _check_params(owner_id, checks, exclude, reader or owner_id)
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
            start_time, end_time, timezone, is_recurring, recurrence_rule, overrides, span,
            footprint, version, created_at, updated_at, access_version)
        SELECT id, %(owner)s, title, description, location, start_time, end_time, timezone,
            is_recurring, recurrence_rule, overrides, tstzrange(span_start, span_end),
            footprint, %(version)s, created_at, created_at, %(access_version)s
        FROM json_to_recordset(%(events)s::json)
            AS given(id uuid, title text, description text, location text,
                     start_time timestamptz, end_time timestamptz, timezone text,
                     is_recurring bool, recurrence_rule text, overrides jsonb,
                     span_start timestamptz, span_end timestamptz,
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
    """Insert new events of one owner (all at the same version, with their exceptions),
    the owner's access row of each and `messages`, unless an event of the owner can
    clash with one of `unless_clashing`: the cursor's rows are those candidates (as
    `clash_candidates`), and nothing was written if there are any. Sent, not awaited:
    read the cursor once the transaction is over."""
    first = events[0][0]
    rows = [
        {
            "id": event.id,
            **_editable(event),
            "overrides": event.overrides,
            "span_start": placement.span_start,
            "span_end": placement.span_end,
            "footprint": _multirange_literal(placement.footprint),
            "created_at": event.created_at,
        }
        for event, placement in events
    ]
    params = {
        **_check_params(first.owner_id, unless_clashing, (), first.owner_id),
        **outbox.message_params(messages),
        "events": _json(rows),
        "username": username,
        "role": Role.OWNER.value,
        "version": first.version,
        "access_version": access_version,
    }
    return await conn.execute(_INSERT_EVENTS, params)


def _editable(event: StoredEvent, prefix: str = "") -> dict[str, Any]:
    """The event's editable fields as statement parameters, named `prefix` + field."""
    return {prefix + name: getattr(event, name) for name in EDITABLE_FIELDS}


_UPDATE_EVENT = f"""
    UPDATE {SCHEMA}.events
    SET {", ".join(f"{name} = %({name})s" for name in EDITABLE_FIELDS)},
        overrides = %(overrides)s::jsonb,
        span = tstzrange(%(span_start)s, %(span_end)s),
        footprint = %(footprint)s::int4multirange,
        version = %(version)s, updated_at = %(updated_at)s
    WHERE id = %(id)s
"""


async def update_event(
    conn: psycopg.AsyncConnection, event: StoredEvent, placement: Placement
) -> None:
    """Store the event's editable fields, exceptions, version and update time."""
    await conn.execute(
        _UPDATE_EVENT,
        {
            **_editable(event),
            "overrides": _json(event.overrides),
            "span_start": placement.span_start,
            "span_end": placement.span_end,
            "footprint": _multirange_literal(placement.footprint),
            "version": event.version,
            "updated_at": event.updated_at,
            "id": event.id,
        },
    )


_UPDATE_IF_UNCHANGED = f"""
    WITH updated AS (
        UPDATE {SCHEMA}.events
        SET {", ".join(f"{name} = %({name})s" for name in EDITABLE_FIELDS)},
            version = %(version)s, updated_at = %(updated_at)s
        WHERE id = %(id)s AND version = %(seen_version)s AND deleted_at IS NULL
          AND ({", ".join(EDITABLE_FIELDS)})
              IS NOT DISTINCT FROM ({", ".join(f"%(seen_{name})s" for name in EDITABLE_FIELDS)})
          AND EXISTS (SELECT 1 FROM {SCHEMA}.event_access
                      WHERE event_id = %(id)s AND user_id = %(user_id)s
                        AND role IN ('{Role.OWNER}', '{Role.EDITOR}'))
        RETURNING id
    ), queued AS (
        {outbox.insert_sql(outbox_table)}, updated
    ), readers AS (
        UPDATE {SCHEMA}.event_access SET changed_in = pg_current_xact_id()
        WHERE event_id IN (SELECT id FROM updated)
        RETURNING user_id, role
    ), feed AS (
        INSERT INTO {SCHEMA}.outbox (subject, msg_id, payload, trace_context)
        SELECT %(feed_subject)s || user_id, user_id || %(feed_key)s,
            convert_to(%(feed_payload)s, 'UTF8'), %(feed_trace)s::json
        FROM readers
    )
    SELECT (SELECT role FROM readers WHERE user_id = %(user_id)s),
           ARRAY(SELECT user_id FROM readers)
    FROM updated
"""


async def update_if_unchanged(
    conn: psycopg.AsyncConnection,
    event: StoredEvent,
    seen: StoredEvent,
    user_id: uuid.UUID,
    messages: Sequence[outbox.Message],
    feed: "FeedToReaders",
) -> tuple[Role, list[uuid.UUID]] | None:
    """Store the event's editable fields, version and update time, and queue its
    notifications, in one statement, if the event is still stored live as `seen`
    (version and editable fields) and the user may edit it: the user's role and the
    event's role holders, or None (nothing written). For changes that keep the
    schedule, so that the stored span and footprint stay right.

    The change-stream messages go to every reader, as `feed` (the same for each but
    the user): built in the statement, since the readers are known only there."""
    cursor = await conn.execute(
        _UPDATE_IF_UNCHANGED,
        {
            **_editable(event),
            **_editable(seen, prefix="seen_"),
            "version": event.version,
            "updated_at": event.updated_at,
            "id": event.id,
            "seen_version": seen.version,
            "user_id": user_id,
            **outbox.message_params(messages),
            "feed_subject": feed_subject(feed.namespace, ""),
            "feed_key": f":{feed.notice.event_id}:{feed.key}",
            "feed_payload": orjson.dumps(feed.notice.model_dump()).decode(),
            "feed_trace": outbox.trace_param(trace_headers()),
        },
    )
    row = await cursor.fetchone()
    return (Role(row[0]), row[1]) if row else None


@dataclass(frozen=True, slots=True)
class FeedToReaders:
    """A change-stream notice for every reader of the event, whoever they are then
    (see `event_service.notices.feed_messages`)."""

    namespace: str
    notice: FeedNotice
    key: str


_TOUCH_READERS = f"""
    UPDATE {SCHEMA}.event_access SET changed_in = pg_current_xact_id() WHERE event_id = %s
"""


async def touch_readers(conn: psycopg.AsyncConnection, event_id: uuid.UUID) -> None:
    """Mark the event changed for everyone with a role on it: their next sync has it."""
    await conn.execute(_TOUCH_READERS, (event_id,))


_ROLE_IF_STORED = f"""
    SELECT a.role FROM {SCHEMA}.events AS e
    JOIN {SCHEMA}.event_access AS a ON a.event_id = e.id AND a.user_id = %(user_id)s
    WHERE e.id = %(id)s AND e.version = %(version)s AND e.deleted_at IS NULL
      AND ({", ".join(f"e.{name}" for name in EDITABLE_FIELDS)})
          IS NOT DISTINCT FROM ({", ".join(f"%({name})s" for name in EDITABLE_FIELDS)})
"""


async def role_if_stored(
    conn: psycopg.AsyncConnection, event: StoredEvent, user_id: uuid.UUID
) -> Role | None:
    """The user's role on the event if it is stored live as it is (version and
    editable fields), else None."""
    params = {**_editable(event), "id": event.id, "version": event.version, "user_id": user_id}
    cursor = await conn.execute(_ROLE_IF_STORED, params)
    row = await cursor.fetchone()
    return Role(row[0]) if row else None


_DELETE_EVENT = f"""
    UPDATE {SCHEMA}.events SET version = %(version)s, updated_at = %(at)s, deleted_at = %(at)s
    WHERE id = %(id)s
"""


async def delete_event(conn: psycopg.AsyncConnection, event: StoredEvent) -> None:
    """Leave the event as a tombstone at its (new) version, deleted at `updated_at`."""
    await conn.execute(
        _DELETE_EVENT, {"version": event.version, "at": event.updated_at, "id": event.id}
    )


_ACCESS_ROWS = f"""
    SELECT user_id, role FROM {SCHEMA}.event_access WHERE event_id = %s ORDER BY granted_at, user_id
"""


async def access_roles(
    conn: psycopg.AsyncConnection, event_id: uuid.UUID
) -> list[tuple[uuid.UUID, Role]]:
    """Who holds which role on the event, oldest grant first."""
    cursor = await conn.execute(_ACCESS_ROWS, (event_id,))
    return [(user_id, Role(role)) for user_id, role in await cursor.fetchall()]


# A series split off another: the new event and a copy of the other's access rows.
_INSERT_SPLIT = f"""
    WITH new_event AS (
        INSERT INTO {SCHEMA}.events (id, owner_id, title, description, location,
            start_time, end_time, timezone, is_recurring, recurrence_rule, overrides, span,
            footprint, version, created_at, updated_at, access_version)
        VALUES (%(id)s, %(owner_id)s, %(title)s, %(description)s, %(location)s,
            %(start_time)s, %(end_time)s, %(timezone)s, %(is_recurring)s, %(recurrence_rule)s,
            %(overrides)s::jsonb, tstzrange(%(span_start)s, %(span_end)s),
            %(footprint)s::int4multirange, %(version)s, %(created_at)s, %(created_at)s,
            %(access_version)s)
        RETURNING id
    )
    INSERT INTO {SCHEMA}.event_access (event_id, user_id, role, username, granted_by,
        granted_at, event_created_at)
    SELECT new_event.id, a.user_id, a.role, a.username, a.granted_by, a.granted_at,
        %(created_at)s
    FROM new_event, {SCHEMA}.event_access AS a WHERE a.event_id = %(split_from)s
"""


async def insert_split(
    conn: psycopg.AsyncConnection,
    event: StoredEvent,
    placement: Placement,
    split_from: uuid.UUID,
    access_version: int,
) -> None:
    """Insert `event`, split off `split_from`, with a copy of that event's access rows."""
    await conn.execute(
        _INSERT_SPLIT,
        {
            **_editable(event),
            "id": event.id,
            "owner_id": event.owner_id,
            "overrides": _json(event.overrides),
            "span_start": placement.span_start,
            "span_end": placement.span_end,
            "footprint": _multirange_literal(placement.footprint),
            "version": event.version,
            "created_at": event.created_at,
            "access_version": access_version,
            "split_from": split_from,
        },
    )
