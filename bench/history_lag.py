"""History lag: how long after a write's answer its version is readable in the history.

Writes (PATCH of the title) run at the planned rate in two parts. wrk makes most of
them (paced: each connection pauses between its writes); a Python client makes
SAMPLED_RATE of them itself, open loop (one every 1/rate seconds whatever the
answers do, at most IN_FLIGHT at a time), and after each answer reads
GET /api/events/{id}/history?after=<version - 1>&limit=1 until the new version is
listed. The API promises read-your-writes, so the first read should already have
it; the lag is the time from the write's answer to the read that lists it, i.e. what
a client waits to see its change in the history. (An httpx client making every write
itself took most of a core of this two-core machine, away from the system measured.)
"""

import asyncio
import itertools
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import User
from bench.wrk import run_wrk

IN_FLIGHT = 64
SAMPLED_RATE = 10.0  # writes per second the measuring client makes (and reads back)
SAMPLED_EVENTS = 50  # of the events given, written only by the measuring client
# Each connection pauses between its writes for about its share of the interval, and
# what a write takes under load comes on top of that: with many connections the
# pause is long beside it, so the rate holds the plan (with 16, a write taking 28 ms
# under load left 94 % of the planned 202 writes/s).
BACKGROUND_CONNECTIONS = 64
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
    url: str, user: User, event_ids: list[str], rate: float, seconds: float, workdir: Path
) -> LagResult:
    """Write to `event_ids` at `rate` per second in all for `seconds`, measuring the
    lag of SAMPLED_RATE of those writes per second."""
    result = LagResult(planned_rate=rate)
    sampled_rate = min(SAMPLED_RATE, rate)
    background_rate = rate - sampled_rate
    sampled_ids, background_ids = event_ids[:SAMPLED_EVENTS], event_ids[SAMPLED_EVENTS:]
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        latency = await _write_latency(client, user, sampled_ids[0])
        sampler = _sample(client, user, sampled_ids, sampled_rate, seconds, result)
        if background_rate <= 0:
            await sampler
            return result
        script = paced_patch_script(user.token, background_ids, background_rate, latency)
        background, _ = await asyncio.gather(
            asyncio.to_thread(
                run_wrk,
                f"{url}/api/events",
                script,
                seconds=seconds,
                connections=BACKGROUND_CONNECTIONS,
                threads=2,
                workdir=workdir,
            ),
            sampler,
        )
    result.sent_rate += background.requests_per_s
    if background.errors:
        result.failures["background writes failed"] += background.errors
    return result


async def _write_latency(client: httpx.AsyncClient, user: User, event_id: str) -> float:
    """Median seconds of a PATCH on the idle system, to pace wrk's connections by."""
    took = []
    for attempt in range(10):
        started = time.perf_counter()
        written = await client.patch(
            f"/api/events/{event_id}", json={"title": f"probe {attempt}"}, headers=user.headers
        )
        written.raise_for_status()
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def paced_patch_script(token: str, event_ids: list[str], rate: float, latency: float) -> str:
    """wrk Lua: PATCHes of the events in turn, each connection pausing so that all of
    them together write about `rate` per second."""
    interval_ms = BACKGROUND_CONNECTIONS / rate * 1000
    # Writes take longer under load than the idle probe: aim a little above the rate.
    pause_ms = max(0, round(0.9 * interval_ms - 2 * latency * 1000))
    ids = "{" + ",".join(f'"{event_id}"' for event_id in event_ids) + "}"
    return f"""
local ids = {ids}
local n = 0
delay = function() return {pause_ms} end
request = function()
  n = n + 1
  return wrk.format("PATCH", "/api/events/" .. ids[(n % #ids) + 1],
    {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {token}"}},
    '{{"title":"background ' .. n .. '"}}')
end
"""


async def _sample(
    client: httpx.AsyncClient,
    user: User,
    event_ids: list[str],
    rate: float,
    seconds: float,
    result: LagResult,
) -> None:
    slots = asyncio.Semaphore(IN_FLIGHT)

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
    result.sent_rate += len(tasks) / (loop.time() - started)
    await asyncio.gather(*tasks)
