"""History lag: how long after a write's answer its version is readable in the history.

Writes (PATCH of the title) go out at a paced rate, open loop: one every 1/rate
seconds whatever the answers do, at most IN_FLIGHT at a time. After each answer the
writer reads GET /api/events/{id}/history?after=<version - 1>&limit=1 until the new
version is listed. The API promises read-your-writes, so the first read should
already have it; the lag is the time from the write's answer to the read that lists
it, i.e. what a client waits to see its change in the history.
"""

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench.common import User

IN_FLIGHT = 64
# A version not listed this long after its write counts as an error.
GIVE_UP_AFTER = 10.0
POLL_INTERVAL = 0.005


@dataclass
class LagResult:
    planned_rate: float
    sent_rate: float = 0.0  # writes sent per second: below plan when IN_FLIGHT was reached
    lags_ms: list[float] = field(default_factory=list)
    first_read_had_it: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return sum(self.failures.values())


async def _write_then_read(
    client: httpx.AsyncClient, user: User, event_id: str, title: str, result: LagResult
) -> None:
    try:
        written = await client.patch(
            f"/api/events/{event_id}", json={"title": title}, headers=user.headers
        )
        answered = time.perf_counter()
        if written.status_code != 200:
            result.failures[f"PATCH {written.status_code}"] += 1
            return
        version = written.json()["version"]
        for reads in itertools.count(1):
            listed = await client.get(
                f"/api/events/{event_id}/history",
                params={"after": version - 1, "limit": 1},
                headers=user.headers,
            )
            if listed.status_code != 200:
                result.failures[f"history {listed.status_code}"] += 1
                return
            if any(item["version"] == version for item in listed.json()["items"]):
                result.lags_ms.append((time.perf_counter() - answered) * 1000)
                result.first_read_had_it += reads == 1
                return
            if time.perf_counter() - answered > GIVE_UP_AFTER:
                result.failures[f"version not listed after {GIVE_UP_AFTER:g} s"] += 1
                return
            await asyncio.sleep(POLL_INTERVAL)
    except httpx.HTTPError as error:
        result.failures[type(error).__name__] += 1


async def measure_history_lag(
    url: str, user: User, event_ids: list[str], rate: float, seconds: float
) -> LagResult:
    """Write to `event_ids` in turn at `rate` per second for `seconds`."""
    result = LagResult(planned_rate=rate)
    slots = asyncio.Semaphore(IN_FLIGHT)
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one(index: int) -> None:
            try:
                event_id = event_ids[index % len(event_ids)]
                await _write_then_read(client, user, event_id, f"lag {index}", result)
            finally:
                slots.release()

        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks = []
        while (due := started + len(tasks) / rate) < started + seconds:
            await asyncio.sleep(max(0.0, due - loop.time()))
            await slots.acquire()
            tasks.append(asyncio.create_task(one(len(tasks))))
        result.sent_rate = len(tasks) / (loop.time() - started)
        await asyncio.gather(*tasks)
    return result
