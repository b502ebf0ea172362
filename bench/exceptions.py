"""Expanding series with exceptions against the same series without (issue 14).

Two users each own `series` weekly series (52 weeks of 2040, created through the API).
The second user's series each get `EXCEPTIONS` exceptions: a third cancelled, a third
retitled, a third moved by two hours. They are written straight to PostgreSQL as the
event service stores them (the exceptions' JSON, the version, the widened span and
week footprint), since 50,000 exception writes through the API would take minutes of
this machine; the read caches are then emptied so that every read sees them.

Measured: `GET /api/events?expand=true` over one-month windows, each window asked
once per user (a window not asked before misses the gateway's page cache and the
event service's expansion cache, so each request expands every series in it), the
two users alternating; the ratio of their median latencies is the figure. The same
expansion without I/O (the domain code alone, cold) is reported beside it.
"""

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import psycopg
from redis import Redis

from bench.common import User, register_async
from bench.load_seed import SERIES_FROM, create_batches, weekly_series
from common.timeutil import rfc3339
from event_service.domain.events import make_schedule
from event_service.domain.exceptions import (
    ExceptionIndex,
    Override,
    instances,
    overrides_to_json,
)
from event_service.edits import placement_of
from event_service.models import StoredEvent

EXCEPTIONS = 50
TARGET_RATIO = 1.5
WINDOW = timedelta(days=30)


@dataclass
class ExceptionsResult:
    series: int
    windows: int
    plain_ms: list[float]
    excepted_ms: list[float]
    occurrences: tuple[int, int]  # in the first window: without, with exceptions
    domain_ratio: float
    errors: int = 0

    @property
    def ratio(self) -> float:
        return statistics.median(self.excepted_ms) / statistics.median(self.plain_ms)

    @property
    def passed(self) -> bool:
        return self.errors == 0 and self.ratio <= TARGET_RATIO


def exceptions_of(schedule: Any) -> dict[datetime, Override]:
    """`EXCEPTIONS` exceptions over the series' first occurrences."""
    found = schedule.occurrences(schedule.start, schedule.start + timedelta(weeks=EXCEPTIONS))
    overrides = {}
    for index, occurrence in enumerate(found[:EXCEPTIONS]):
        if index % 3 == 0:
            overrides[occurrence.start] = Override(cancelled=True)
        elif index % 3 == 1:
            overrides[occurrence.start] = Override(title=f"changed {index}")
        else:
            moved = timedelta(hours=2)
            overrides[occurrence.start] = Override(
                start_time=occurrence.start + moved, end_time=occurrence.end + moved
            )
    return overrides


_SELECT = """
    SELECT id, owner_id, title, description, location, start_time, end_time, timezone,
        is_recurring, recurrence_rule, version, created_at, updated_at, overrides
    FROM events.events WHERE id = ANY(%s)
"""
_UPDATE = """
    UPDATE events.events SET overrides = %s::jsonb, version = version + 1,
        span = tstzrange(%s, %s), footprint = %s::int4multirange
    WHERE id = %s
"""


def write_exceptions(database_url: str, event_ids: list[str]) -> None:
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=False) as conn:
        rows = conn.execute(_SELECT, ([uuid.UUID(i) for i in event_ids],)).fetchall()
        for row in rows:
            event = StoredEvent(*row)
            schedule = event.schedule()
            excepted = replace(event, overrides=overrides_to_json(exceptions_of(schedule)))
            placement = placement_of(excepted, schedule)
            footprint = "{" + ",".join(f"[{lo},{hi})" for lo, hi in placement.footprint) + "}"
            conn.execute(
                _UPDATE,
                (
                    orjson.dumps(excepted.overrides).decode(),
                    placement.span_start,
                    placement.span_end,
                    footprint,
                    event.id,
                ),
            )
        conn.commit()


def empty_caches(redis_url: str, namespace: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        keys = list(redis.scan_iter(match=f"{namespace}:*", count=1000))
        for first in range(0, len(keys), 1000):
            redis.delete(*keys[first : first + 1000])
    finally:
        redis.close()


def domain_ratio(series: int, windows: list[datetime]) -> float:
    """CPU of expanding every series in each window, with and without exceptions,
    no I/O and no caches: the expansion's own cost."""
    schedules = [
        make_schedule(
            datetime.fromisoformat(body["start_time"]),
            datetime.fromisoformat(body["end_time"]),
            body["timezone"],
            body["recurrence_rule"],
        )
        for body in (weekly_series(index) for index in range(series))
    ]
    # The event service keeps each series version's exceptions arranged for expanding.
    excepted = [
        ExceptionIndex(exceptions_of(schedule), schedule.duration) for schedule in schedules
    ]
    took = []
    for overrides in ([{}] * len(schedules), excepted):
        started = time.process_time()
        for start in windows:
            for schedule, own in zip(schedules, overrides, strict=True):
                instances(schedule, own, start, start + WINDOW)
        took.append(time.process_time() - started)
    return took[1] / took[0]


async def measure_exceptions(
    url: str, database_url: str, redis_url: str, namespace: str, series: int, windows: int
) -> ExceptionsResult:
    starts = [SERIES_FROM + timedelta(days=31 + day) for day in range(windows)]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        plain, excepted = await asyncio.gather(
            register_async(client, "plainseries"), register_async(client, "exceptseries")
        )
        bodies = [weekly_series(index) for index in range(series)]
        await create_batches(client, plain, bodies, allow_conflicts=True)
        ids = await create_batches(client, excepted, bodies, allow_conflicts=True)
        write_exceptions(database_url, ids)
        empty_caches(redis_url, namespace)
        result = ExceptionsResult(series, windows, [], [], (0, 0), domain_ratio(series, starts))
        counts = []
        for start in starts:
            for user, samples in ((plain, result.plain_ms), (excepted, result.excepted_ms)):
                took, count = await _expand(client, user, start)
                if count is None:
                    result.errors += 1
                    continue
                samples.append(took)
                counts.append(count)
        result.occurrences = (counts[0], counts[1]) if len(counts) > 1 else (0, 0)
    return result


async def _expand(
    client: httpx.AsyncClient, user: User, start: datetime
) -> tuple[float, int | None]:
    params = {"expand": "true", "start": rfc3339(start), "end": rfc3339(start + WINDOW)}
    started = time.perf_counter()
    response = await client.get("/api/events", params=params, headers=user.headers)
    took = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        return took, None
    return took, len(response.json()["items"])


def report(result: ExceptionsResult) -> None:
    plain, excepted = result.occurrences
    verdict = "PASS" if result.passed else "MISS"
    print(
        f"\nexceptions: one-month expand=true over {result.series} weekly series, "
        f"{result.windows} windows, each asked once per user"
    )
    print(
        f"  without exceptions: median {statistics.median(result.plain_ms):.1f} ms "
        f"({plain} occurrences in the first window)"
    )
    print(
        f"  {EXCEPTIONS} exceptions per series: median "
        f"{statistics.median(result.excepted_ms):.1f} ms ({excepted} occurrences)"
    )
    print(
        f"  ratio {result.ratio:.2f} (target <= {TARGET_RATIO:g}) {verdict}; "
        f"the expansion alone, without I/O: {result.domain_ratio:.2f}; errors {result.errors}"
    )
