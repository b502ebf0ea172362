"""When users are busy with their own events, for free/busy (the sharing service
decides whose free/busy a caller may see; this answers only to it).

As much as possible happens in PostgreSQL: the events a user owns that can overlap
the window come from the span index, and the one-off ones are clipped and merged
there (`range_agg`), arriving as merged intervals in microseconds. Only series are
expanded here (exceptions applied, cancelled occurrences left out), then merged with
them, and written as the REST API's JSON in the asked zone's offsets.

A year of a busy calendar is thousands of intervals and megabytes of JSON for fifty
users, so each user's answer is cached per window and zone like a listing page
(`common.event_cache.PageCache`): under the user's view token, which every write to
an event they hold a role on replaces, so a cached answer is never older than the
user's calendar. The sharing service and the gateway relay it as it is.
"""

import logging
import uuid
from datetime import UTC, datetime, timedelta
from heapq import merge
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import autocommit
from common.errors import InvalidArgument
from common.event_cache import CachedPage, CacheReads, PageCache, ReaderTrust
from common.roles import Role
from event_service.domain.events import make_schedule
from event_service.domain.exceptions import ExceptionIndex, instances, overrides_from_json
from event_service.models import SCHEMA

log = logging.getLogger(__name__)

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
    def __init__(self, engine: AsyncEngine, pages: PageCache, cache_ttl: float) -> None:
        self._engine = autocommit(engine)
        self._pages = pages
        self._trust = ReaderTrust(cache_ttl)
        self._reads = CacheReads("busy")

    async def of(
        self, user_ids: list[str], start: datetime | None, end: datetime | None, timezone: str
    ) -> list[bytes]:
        """For each user, their busy intervals in [start, end) as a JSON array of
        {"start","end"} in the zone's offsets: merged (touching ones too), sorted."""
        users, zone = _validated(user_ids, start, end, timezone)
        assert start is not None and end is not None
        query = f"busy:{micros(start)}:{micros(end)}:{timezone or 'UTC'}"
        distinct = list(dict.fromkeys(users))
        cached = await self._cached(distinct, query)
        missing = [user for user in distinct if cached.get(user) is None or not cached[user].body]
        self._reads.count_many(hits=len(distinct) - len(missing), misses=len(missing))
        computed = {
            user: _busy_json(intervals, zone)
            for user, intervals in (await self._compute(missing, start, end)).items()
        }
        await self._store(missing, cached, computed, query)
        found = {user: page.body for user, page in cached.items() if page.body}
        return [computed.get(user) or found[user] for user in users]

    async def _cached(self, users: list[uuid.UUID], query: str) -> dict[uuid.UUID, CachedPage]:
        if not users or not self._trust.trusted():
            return {}
        try:
            pages = await self._pages.read_many([str(user) for user in users], query)
        except RedisError as error:
            self._redis_failed(error)
            return {}
        return dict(zip(users, pages, strict=True))

    async def _store(
        self,
        users: list[uuid.UUID],
        cached: dict[uuid.UUID, CachedPage],
        computed: dict[uuid.UUID, bytes],
        query: str,
    ) -> None:
        """Store what was computed under the tokens read before computing it: a write
        since has replaced them, and then what is stored is never read."""
        pages = [(str(user), cached[user], computed[user]) for user in users if user in cached]
        if not pages:
            return
        try:
            await self._pages.store_many(pages, query)
        except RedisError as error:
            self._redis_failed(error)

    def _redis_failed(self, error: RedisError) -> None:
        log.warning("busy-time cache unavailable", extra={"error": repr(error)})
        self._trust.redis_failed()

    async def _compute(
        self, users: list[uuid.UUID], start: datetime, end: datetime
    ) -> dict[uuid.UUID, list[Interval]]:
        if not users:
            return {}
        params = {"users": users, "start": start, "end": end}
        async with self._engine.connect() as conn:
            one_offs = (await conn.exec_driver_sql(_ONE_OFFS, params)).all()
            series = (await conn.exec_driver_sql(_SERIES, params)).all()
        busy: dict[uuid.UUID, list[list[Interval]]] = {user: [] for user in users}
        for user, starts, ends in one_offs:
            busy[user].append(list(zip(starts, ends, strict=True)))
        window = (micros(start), micros(end))
        for user, *fields in series:
            busy[user].append(_occurrences(*fields, start, end, window))
        return {user: _merged(merge(*parts)) for user, parts in busy.items()}


def _validated(
    user_ids: list[str], start: datetime | None, end: datetime | None, timezone: str
) -> tuple[list[uuid.UUID], ZoneInfo]:
    errors = []
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        errors.append({"field": "timezone", "message": "is not an IANA time zone"})
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
    return users, zone


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


def _busy_json(intervals: list[Interval], zone: ZoneInfo) -> bytes:
    """The REST API's busy intervals: [{"start","end"}, ...] with the zone's offsets."""
    return orjson.dumps(
        [{"start": _in_zone(low, zone), "end": _in_zone(high, zone)} for low, high in intervals],
        option=orjson.OPT_UTC_Z,
    )


def _in_zone(moment: int, zone: ZoneInfo) -> datetime:
    """`datetime.fromtimestamp` is several times faster than epoch + timedelta; the
    seconds and microseconds are given apart so that no float rounds them."""
    seconds, fraction = divmod(moment, 1_000_000)
    local = datetime.fromtimestamp(seconds, zone)
    return local.replace(microsecond=fraction) if fraction else local
