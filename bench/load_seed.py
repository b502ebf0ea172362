"""Seeding `make bench`'s data through the public API.

Who owns what (every time chosen so that the benchmark's creates cannot clash):

- the heavy user owns `owned` one-off events (2030-2032) and `series` weekly series
  (52 weeks of 2040, so they end long before the creates' slots from 2100 on), and
  has `shared` events of the sharer shared with them as viewer;
- the sharer owns those `shared` one-off events (2030-2032);
- a crowd of `users` users owns 10 events each (2030) and shares 3 of them with
  the next user as editor.
"""

import asyncio
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from bench.common import User, register_async
from common.timeutil import rfc3339

ONE_OFFS_FROM = datetime(2030, 1, 7, 9, tzinfo=UTC)
SERIES_FROM = datetime(2040, 1, 2, tzinfo=UTC)  # a Monday
SERIES_WEEKS = 52
SERIES_ZONES = ("UTC", "Europe/Berlin", "America/New_York")
BATCH = 500  # the API's largest batch
CROWD_EVENTS = 10
CROWD_SHARED = 3
# Requests in flight while seeding: enough to keep the system busy, few enough that
# nothing queues into a deadline.
CONCURRENCY = 16
# How long the history may take to catch up with the seeded writes.
SETTLE_TIMEOUT = 300.0

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    owned: int
    shared: int
    series: int
    users: int


@dataclass
class CrowdUser:
    user: User
    own: list[str]
    shared: list[str] = field(default_factory=list)  # others' events shared as editor


@dataclass
class Seeded:
    heavy: User
    heavy_events: list[str]  # the heavy user's one-off events
    crowd: list[CrowdUser]
    seconds: float


async def bounded(calls: Iterable[Awaitable[T]], limit: int = CONCURRENCY) -> list[T]:
    """Await `calls` with at most `limit` in flight, results in order."""
    slots = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with slots:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


def one_off(title: str, start: datetime, minutes: int = 30) -> dict[str, Any]:
    return {
        "title": title,
        "start_time": rfc3339(start),
        "end_time": rfc3339(start + timedelta(minutes=minutes)),
    }


def weekly_series(index: int) -> dict[str, Any]:
    """Series `index` takes its own 10 minutes of the week, so no two overlap in UTC
    (local time zones move some by an hour in summer; the batch allows conflicts)."""
    start = SERIES_FROM + timedelta(minutes=10 * index)
    return {
        **one_off(f"weekly {index}", start, minutes=5),
        "timezone": SERIES_ZONES[index % len(SERIES_ZONES)],
        "is_recurring": True,
        "recurrence_rule": f"FREQ=WEEKLY;COUNT={SERIES_WEEKS}",
    }


async def create_batches(
    client: httpx.AsyncClient, user: User, events: list[dict[str, Any]], **options: Any
) -> list[str]:
    """Create `events` in batches of 500, one batch after another (one calendar)."""
    ids: list[str] = []
    for first in range(0, len(events), BATCH):
        body = {"events": events[first : first + BATCH], **options}
        created = await client.post("/api/events/batch", json=body, headers=user.headers)
        created.raise_for_status()
        ids += [event["id"] for event in created.json()["items"]]
    return ids


async def create_one_offs(client: httpx.AsyncClient, user: User, count: int) -> list[str]:
    """`count` half-hour events two hours apart: no two overlap."""
    events = [one_off(f"seeded {i}", ONE_OFFS_FROM + timedelta(hours=2 * i)) for i in range(count)]
    return await create_batches(client, user, events)


async def share(
    client: httpx.AsyncClient, owner: User, event_id: str, user: User, role: str
) -> None:
    body = {"users": [{"user_id": user.id, "role": role}]}
    shared = await client.post(f"/api/events/{event_id}/share", json=body, headers=owner.headers)
    shared.raise_for_status()


async def seed_crowd(client: httpx.AsyncClient, count: int) -> list[CrowdUser]:
    """`count` users with 10 events each; each shares 3 with the next as editor."""
    users = await bounded(register_async(client, f"crowd{n}") for n in range(count))

    async def own_events(n: int, user: User) -> CrowdUser:
        events = [
            one_off(f"crowd {n}-{i}", ONE_OFFS_FROM + timedelta(days=i, hours=n % 12))
            for i in range(CROWD_EVENTS)
        ]
        return CrowdUser(user, await create_batches(client, user, events))

    crowd = await bounded(own_events(n, user) for n, user in enumerate(users))
    shares = []
    for n, member in enumerate(crowd):
        neighbour = crowd[(n + 1) % len(crowd)]
        for event_id in member.own[:CROWD_SHARED]:
            shares.append(share(client, member.user, event_id, neighbour.user, "editor"))
            neighbour.shared.append(event_id)
    await bounded(shares)
    return crowd


async def timed(label: str, call: Awaitable[T]) -> T:
    started = time.perf_counter()
    result = await call
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)
    return result


async def seed(url: str, sizes: Sizes) -> Seeded:
    started = time.perf_counter()
    print(
        f"Seeding through the API: {sizes.owned} owned + {sizes.series} weekly series,"
        f" {sizes.shared} shared, {sizes.users} crowd users...",
        flush=True,
    )
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        heavy, sharer = await bounded(register_async(client, p) for p in ("heavy", "sharer"))
        series = [weekly_series(i) for i in range(sizes.series)]
        heavy_events, shared_events, _ = await timed(
            "events (batches of 500)",
            asyncio.gather(
                create_one_offs(client, heavy, sizes.owned),
                create_one_offs(client, sharer, sizes.shared),
                create_batches(client, heavy, series, allow_conflicts=True),
            ),
        )
        await timed(
            f"{len(shared_events)} shares, one request each, {CONCURRENCY} in flight",
            bounded(share(client, sharer, e, heavy, "viewer") for e in shared_events),
        )
        crowd = await timed(f"{sizes.users} crowd users", seed_crowd(client, sizes.users))
        await timed("history caught up", settle(client, heavy, heavy_events[-1]))
    return Seeded(heavy, heavy_events, crowd, time.perf_counter() - started)


async def settle(client: httpx.AsyncClient, user: User, event_id: str) -> None:
    """Make a write and wait until its version is in the history: the history service
    consumes changes in order, so by then it has worked through everything before, and
    the next measurement does not compete with a backlog."""
    patched = await client.patch(
        f"/api/events/{event_id}", json={"title": "settled"}, headers=user.headers
    )
    patched.raise_for_status()
    version = patched.json()["version"]
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        if await has_version(client, user, event_id, version):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the history did not catch up within {SETTLE_TIMEOUT:g} s")


async def has_version(client: httpx.AsyncClient, user: User, event_id: str, version: int) -> bool:
    """Whether GET /api/events/{id}/history lists `version` (asks for just that one).
    Raises on any answer but 200 and 503 (the history is catching up)."""
    response = await client.get(
        f"/api/events/{event_id}/history",
        params={"after": version - 1, "limit": 1},
        headers=user.headers,
    )
    if response.status_code == 503:
        return False
    response.raise_for_status()
    return any(item["version"] == version for item in response.json()["items"])
