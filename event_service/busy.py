"""When users are busy with their own events, for free/busy (the sharing service
decides whose free/busy a caller may see; this answers only to it).

As much as possible happens in PostgreSQL: the events a user owns that can overlap
the window come from the span index, and the one-off ones are clipped and merged
there (`range_agg`), arriving as a few merged intervals. Only series are expanded
here (exceptions applied, cancelled occurrences left out), then merged with them.
Times travel as microseconds since the epoch (UTC): a year of a busy calendar is
thousands of intervals, which need no datetime objects until the gateway writes them.
"""

import uuid
from datetime import UTC, datetime, timedelta
from heapq import merge
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import autocommit
from common.errors import InvalidArgument
from common.roles import Role
from event_service.domain.events import make_schedule
from event_service.domain.exceptions import ExceptionIndex, instances, overrides_from_json
from event_service.models import SCHEMA

MAX_WINDOW = timedelta(days=366)
MAX_USERS = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

Interval = tuple[int, int]  # [start, end) in microseconds since the epoch

# Each user's one-off events in the window, clipped and merged: one row per user.
_ONE_OFFS = f"""
    SELECT user_id,
        array_agg((extract(epoch FROM lower(busy)) * 1000000)::bigint ORDER BY busy),
        array_agg((extract(epoch FROM upper(busy)) * 1000000)::bigint ORDER BY busy)
    FROM (
        SELECT a.user_id, unnest(range_agg(tstzrange(e.start_time, e.end_time) * w.bounds))
            AS busy
        FROM {SCHEMA}.event_access AS a
        JOIN {SCHEMA}.events AS e ON e.id = a.event_id,
        (SELECT tstzrange(%(start)s, %(end)s) AS bounds) AS w
        WHERE a.user_id = ANY(%(users)s) AND a.role = '{Role.OWNER}'
          AND e.deleted_at IS NULL AND NOT e.is_recurring AND e.span && w.bounds
        GROUP BY a.user_id
    ) AS merged
    WHERE NOT isempty(busy)
    GROUP BY user_id
"""

# Each user's series that can have an occurrence in the window.
_SERIES = f"""
    SELECT a.user_id, e.start_time, e.end_time, e.timezone, e.recurrence_rule, e.overrides
    FROM {SCHEMA}.event_access AS a
    JOIN {SCHEMA}.events AS e ON e.id = a.event_id
    WHERE a.user_id = ANY(%(users)s) AND a.role = '{Role.OWNER}'
      AND e.deleted_at IS NULL AND e.is_recurring
      AND e.span && tstzrange(%(start)s, %(end)s)
"""


def micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICRO


class BusyTimes:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = autocommit(engine)

    async def of(
        self, user_ids: list[str], start: datetime | None, end: datetime | None
    ) -> list[list[int]]:
        """For each user, their busy intervals in [start, end) as flat [start, end, ...]
        microseconds: merged (touching ones too) and sorted."""
        users = _validated(user_ids, start, end)
        assert start is not None and end is not None
        params = {"users": list(set(users)), "start": start, "end": end}
        async with self._engine.connect() as conn:
            one_offs = (await conn.exec_driver_sql(_ONE_OFFS, params)).all()
            series = (await conn.exec_driver_sql(_SERIES, params)).all()
        busy: dict[uuid.UUID, list[list[Interval]]] = {user: [] for user in users}
        for user, starts, ends in one_offs:
            busy[user].append(list(zip(starts, ends, strict=True)))
        window = (micros(start), micros(end))
        for user, *fields in series:
            busy[user].append(_occurrences(*fields, start, end, window))
        return [_flat(_merged(merge(*busy[user]))) for user in users]


def _validated(
    user_ids: list[str], start: datetime | None, end: datetime | None
) -> list[uuid.UUID]:
    errors = []
    if start is None or end is None:
        errors.append({"field": "start" if start is None else "end", "message": "is required"})
    elif not start < end:
        errors.append({"field": "end", "message": "must be after start"})
    elif end - start > MAX_WINDOW:
        errors.append({"field": "end", "message": "the window is at most 366 days"})
    if not 1 <= len(user_ids) <= MAX_USERS:
        errors.append({"field": "user_ids", "message": f"must hold 1 to {MAX_USERS} users"})
    users = []
    for index, text in enumerate(user_ids):
        try:
            users.append(uuid.UUID(text))
        except ValueError:
            errors.append({"field": f"user_ids.{index}", "message": "must be a UUID"})
    if errors:
        raise InvalidArgument(errors)
    return users


def _occurrences(
    first_start: datetime,
    first_end: datetime,
    timezone: str,
    rule: str,
    overrides: dict[str, Any],
    start: datetime,
    end: datetime,
    window: Interval,
) -> list[Interval]:
    """A series' occurrences as they happen in the window, clipped to it, by start."""
    schedule = make_schedule(first_start, first_end, timezone, rule)
    index = ExceptionIndex(overrides_from_json(overrides), schedule.duration)
    low, high = window
    return [
        (max(micros(instance.start), low), min(micros(instance.end), high))
        for instance in instances(schedule, index, start, end)
    ]


def _merged(intervals: Any) -> list[Interval]:
    """Sorted intervals with the overlapping and touching ones joined."""
    joined: list[list[int]] = []
    for low, high in intervals:
        if joined and low <= joined[-1][1]:
            if high > joined[-1][1]:
                joined[-1][1] = high
        else:
            joined.append([low, high])
    return [(low, high) for low, high in joined]


def _flat(intervals: list[Interval]) -> list[int]:
    return [moment for interval in intervals for moment in interval]
