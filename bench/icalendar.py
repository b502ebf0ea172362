"""Exporting a calendar of 10,000 events as iCalendar against reading the same events as
JSON pages (issue 16), on a system of its own (one gateway worker).

A user owns 10,000 one-off events in three zones (created in batches of 500). Timed,
alternately, `rounds` times each after a first time (printed too: nothing cached yet):
reading every JSON page of `GET /api/events` (limit 200, one page after another; the
gateway caches pages) and `GET /api/calendar.ics` (streamed, read as it comes; the
event service keeps each event version's VEVENTs). The gateway's and the event
service's resident memory is sampled throughout; the export must not grow them by the
size of the calendar. Target: the export takes
at most 3 × the JSON pages' time (medians, same run).

    python -m bench.icalendar [--smoke]
"""

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import psutil

from bench.common import ONE_WORKER, User, isolated_stack, register_async
from bench.load_seed import create_batches, one_off

MAX_RATIO = 3.0
ZONES = ("UTC", "Europe/Paris", "America/New_York")


async def seed(url: str, events: int) -> User:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        user = await register_async(client, "exporter")
        start = datetime(2037, 1, 1, 8, tzinfo=UTC)
        items = [
            {**one_off(f"export {n}", start + timedelta(hours=3 * n)), "timezone": ZONES[n % 3]}
            for n in range(events)
        ]
        await create_batches(client, user, items, allow_conflicts=True)
        return user


def json_pages(client: httpx.Client, user: User) -> int:
    """Seconds aside, how many events the pages held."""
    count, cursor = 0, None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/events", headers=user.headers, params=params)
        page.raise_for_status()
        body = page.json()
        count += len(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return count


def calendar(client: httpx.Client, user: User) -> int:
    """The export's size in bytes, read as it streams."""
    size = 0
    with client.stream("GET", "/api/calendar.ics", headers=user.headers) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            size += len(chunk)
    return size


class MemoryPeaks:
    """The largest resident size of each process, sampled every 50 ms."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peaks = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            for name, process in self._processes.items():
                self.peaks[name] = max(self.peaks[name], process.memory_info().rss / 2**20)

    def __enter__(self) -> "MemoryPeaks":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="1,000 events, 1 round")
    parser.add_argument("--rounds", type=int, default=3)
    args, _ = parser.parse_known_args()  # `make bench` passes bench.load's options too
    events, rounds = (1_000, 1) if args.smoke else (10_000, args.rounds)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with isolated_stack("eventhub-icalendar-bench-", **ONE_WORKER) as (stack, _):
        user = asyncio.run(seed(stack.gateway_url, events))
        pids = {name: stack.procs[name].pid for name in ("gateway", "event_service")}
        before = {name: psutil.Process(pid).memory_info().rss / 2**20 for name, pid in pids.items()}
        json_s, ics_s = [], []
        with httpx.Client(base_url=stack.gateway_url, timeout=120) as client:
            with MemoryPeaks(pids) as memory:
                started = time.perf_counter()
                json_pages(client, user)
                first_json = time.perf_counter() - started
                started = time.perf_counter()
                calendar(client, user)
                first_ics = time.perf_counter() - started
                for _ in range(rounds):
                    started = time.perf_counter()
                    listed = json_pages(client, user)
                    json_s.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    size = calendar(client, user)
                    ics_s.append(time.perf_counter() - started)
    print(f"load average at end: {os.getloadavg()}\n")
    ratio = statistics.median(ics_s) / statistics.median(json_s)
    print(
        f"JSON pages: {listed} events in {statistics.median(json_s) * 1000:.0f} ms (median; "
        f"the first time, before the page cache held them: {first_json * 1000:.0f} ms)"
    )
    print(
        f"iCalendar:  {size / 2**20:.1f} MiB in {statistics.median(ics_s) * 1000:.0f} ms "
        f"(median; the first time, each event written: {first_ics * 1000:.0f} ms, "
        f"{first_ics / first_json:.2f} x the first JSON pages)"
    )
    print(
        f"export / JSON pages: {ratio:.2f}  target <= {MAX_RATIO}  "
        f"{'PASS' if ratio <= MAX_RATIO and listed == events else 'MISS'}"
    )
    for name in pids:
        print(f"{name}: {before[name]:.0f} MiB before, peak {memory.peaks[name]:.0f} MiB")
    sys.exit(0 if listed == events else 1)


if __name__ == "__main__":
    main()
