"""The change stream's fan-out and the sync's paging (issue 15), on a system of their own
with two gateway replicas (one worker each).

Fan-out: 200 users hold 5 open streams each (the most a user may), 1,000 streams spread
over the two replicas. One event, owned by the first user and shared with the other 199,
is renamed `changes` times, one change after the last reached every stream. Each
stream's delay is from before the PATCH was sent to its frame's arrival (the write's own
time included). Each replica's resident memory (process and children) is sampled
throughout. Targets: p99 <= 2 s, each replica < 300 MiB.

Sync: a user's sync token is taken from an empty listing, then 10,000 events are created
(batches of 500); the sync pages through them (limit 200), and wrk asks for those pages
(their URLs, cursors included, taken in a first pass) for `--seconds`. Target: pages/s
>= 0.02 x the ceiling: a bare FastAPI app served as the gateways are (one uvicorn
worker, uvloop, httptools), measured in the same run.

    python -m bench.stream [--smoke]
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import httpx
import orjson
import psutil

from bench.common import ONE_WORKER, User, answers, isolated_stack, measure_ceiling, register_async
from bench.load_seed import bounded, create_batches, one_off
from bench.wrk import Figures, run_wrk
from scripts.stack import wait_until

MAX_DELAY_P99_S = 2.0
MAX_MEMORY_MIB = 300
MIN_PAGE_RATIO = 0.02
STREAMS_PER_USER = 5
ARRIVAL_TIMEOUT = 30.0


@dataclass
class Listener:
    """One open stream read by hand (HTTP/1.1, chunked): when each version arrived."""

    user: User
    base_url: str
    arrived: dict[int, float] = field(default_factory=dict)
    writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        parts = urlsplit(self.base_url)
        reader, self.writer = await asyncio.open_connection(parts.hostname, parts.port)
        request = (
            f"GET /api/events/stream HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {self.user.token}\r\nAccept: text/event-stream\r\n\r\n"
        )
        self.writer.write(request.encode())
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream refused: {status!r}")
        while await reader.readline() not in (b"\r\n", b""):
            pass
        asyncio.get_running_loop().create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            if line.startswith(b"data: "):
                self.arrived[orjson.loads(line[6:])["version"]] = time.monotonic()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class FanOut:
    streams: int
    changes: int
    delays_s: list[float]
    missing: int
    peak_rss_mib: list[float]

    @property
    def p50_s(self) -> float:
        return statistics.median(self.delays_s)

    @property
    def p99_s(self) -> float:
        ordered = sorted(self.delays_s)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def replica_rss_mib(pid: int) -> float:
    process = psutil.Process(pid)
    members = [process, *process.children(recursive=True)]
    return sum(member.memory_info().rss for member in members) / 2**20


async def fan_out(urls: list[str], pids: list[int], users: int, changes: int) -> FanOut:
    async with httpx.AsyncClient(base_url=urls[0], timeout=60) as client:
        people = await bounded(register_async(client, "streamer") for _ in range(users))
        owner, others = people[0], people[1:]
        start = datetime(2035, 1, 1, 9, tzinfo=UTC)
        created = await client.post(
            "/api/events",
            json={**one_off("fan-out", start), "allow_conflicts": True},
            headers=owner.headers,
        )
        created.raise_for_status()
        event_id = created.json()["id"]
        for first in range(0, len(others), 100):
            grants = [{"user_id": u.id, "role": "viewer"} for u in others[first : first + 100]]
            shared = await client.post(
                f"/api/events/{event_id}/share", json={"users": grants}, headers=owner.headers
            )
            shared.raise_for_status()
        listeners = [
            Listener(person, urls[(index * STREAMS_PER_USER + n) % len(urls)])
            for index, person in enumerate(people)
            for n in range(STREAMS_PER_USER)
        ]
        await bounded((listener.open() for listener in listeners), limit=50)
        peaks = [0.0] * len(pids)
        sent_at: dict[int, float] = {}
        missing = 0
        for version in range(2, changes + 2):
            sent_at[version] = time.monotonic()
            renamed = await client.patch(
                f"/api/events/{event_id}", json={"title": f"v{version}"}, headers=owner.headers
            )
            renamed.raise_for_status()
            deadline = time.monotonic() + ARRIVAL_TIMEOUT
            while time.monotonic() < deadline:
                peaks = [
                    max(peak, replica_rss_mib(pid)) for peak, pid in zip(peaks, pids, strict=True)
                ]
                if all(version in listener.arrived for listener in listeners):
                    break
                await asyncio.sleep(0.05)
            missing += sum(version not in listener.arrived for listener in listeners)
        for listener in listeners:
            listener.close()
    delays = [
        listener.arrived[version] - sent
        for version, sent in sent_at.items()
        for listener in listeners
        if version in listener.arrived
    ]
    return FanOut(len(listeners), changes, delays, missing, peaks)


@dataclass
class SyncPaging:
    changes: int
    pages: list[str]
    figures: Figures


async def sync_pages(url: str, changes: int) -> tuple[User, list[str], int]:
    """A user's sync token from an empty listing, `changes` events created after it, and
    the URL of every page of the sync from it; also how many items the pages held."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        user = await register_async(client, "syncer")
        empty = await client.get("/api/events", headers=user.headers)
        token = empty.json()["next_sync_token"]
        start = datetime(2036, 1, 1, tzinfo=UTC)
        events = [one_off(f"sync {i}", start + timedelta(hours=i)) for i in range(changes)]
        await create_batches(client, user, events, allow_conflicts=True)
        first = f"/api/events?sync_token={quote(token)}&limit=200"
        pages, items, page = [first], 0, first
        while True:
            answer = await client.get(page, headers=user.headers)
            answer.raise_for_status()
            body = answer.json()
            items += len(body["items"])
            if body["next_cursor"] is None:
                return user, pages, items
            page = f"{first}&cursor={quote(body['next_cursor'])}"
            pages.append(page)


def pages_script(user: User, pages: list[str]) -> str:
    paths = ",".join(f'"{page}"' for page in pages)
    return f"""
local paths = {{{paths}}}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1],
    {{["Authorization"] = "Bearer {user.token}"}})
end
"""


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="20 users, 1,000 sync changes")
    parser.add_argument("--seconds", type=float, default=10, help="of each wrk run")
    parser.add_argument("--connections", type=int, default=16)
    args, _ = parser.parse_known_args()  # `make bench` passes bench.load's options too
    users, changes, sync_changes = (20, 3, 1_000) if args.smoke else (200, 20, 10_000)
    seconds = 2 if args.smoke else args.seconds
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with isolated_stack("eventhub-stream-bench-", **ONE_WORKER) as (stack, workdir):
        second = stack.start_replica("gateway", 1)
        port = int(stack.env.get("EVENTHUB_GATEWAY_PORT", "8000")) + 1
        urls = [stack.gateway_url, f"http://127.0.0.1:{port}"]
        wait_until(lambda: answers(f"{urls[1]}/healthz"), 30, "the second gateway")
        pids = [stack.procs["gateway"].pid, stack.procs[second].pid]
        print(f"fan-out: {users * STREAMS_PER_USER} streams over 2 gateways...", flush=True)
        spread = asyncio.run(fan_out(urls, pids, users, changes))
        print(f"sync: {sync_changes} changes...", flush=True)
        user, pages, items = asyncio.run(sync_pages(urls[0], sync_changes))
        paging = run_wrk(
            urls[0],
            pages_script(user, pages),
            seconds=seconds,
            connections=args.connections,
            threads=2,
            workdir=workdir,
        )
        ceiling = measure_ceiling(seconds, args.connections, workdir)
    print(f"load average at end: {os.getloadavg()}\n")
    delay_ok = spread.p99_s <= MAX_DELAY_P99_S and spread.missing == 0
    memory_ok = max(spread.peak_rss_mib) < MAX_MEMORY_MIB
    ratio = paging.requests_per_s / ceiling.requests_per_s
    page_ok = ratio >= MIN_PAGE_RATIO and paging.errors == 0 and items == sync_changes
    print(f"ceiling: bare FastAPI GET /ping, 1 worker  {ceiling.requests_per_s:8.0f} req/s")
    print(
        f"fan-out: {spread.streams} streams x {spread.changes} changes  "
        f"p50 {spread.p50_s * 1000:6.0f} ms  p99 {spread.p99_s * 1000:6.0f} ms  "
        f"missing {spread.missing}  target p99 <= {MAX_DELAY_P99_S:.0f} s  {verdict(delay_ok)}"
    )
    print(
        "fan-out: peak memory per gateway  "
        + ", ".join(f"{mib:.0f} MiB" for mib in spread.peak_rss_mib)
        + f"  target < {MAX_MEMORY_MIB} MiB  {verdict(memory_ok)}"
    )
    print(
        f"sync: {items} changes in {len(pages)} pages of 200  "
        f"{paging.requests_per_s:6.1f} pages/s  p50 {paging.p50_ms:.1f} ms  "
        f"p99 {paging.p99_ms:.1f} ms  errors {paging.errors}  {ratio:.3f} x ceiling  "
        f"target >= {MIN_PAGE_RATIO}  {verdict(page_ok)}"
    )
    failed = spread.missing or paging.errors or items != sync_changes
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
