"""Latency of sharing and history at the gateway on big data, with their targets.

Starts an isolated system, seeds PostgreSQL directly (a user with 10,000 owned and
10,000 shared events, their grants, and an event with 10,000 versions), then prints
p50/p99 of each scenario next to its target:

- first page of GET /api/events for 10,000 owned + 10,000 shared     p50 <= 30 ms
- what the permission check adds to GET /api/events/{id}             <= 1 ms p50
  (GetRole over gRPC alone, next to the whole read)
- a write readable in the history, at 200 PATCH/s sustained          p99 <= 100 ms
- a changelog page of an event with 10,000 versions                  <= 30 ms

`python -m bench.bench_sharing_history [--smoke]`; --smoke seeds a twentieth, takes
fewer samples and writes for 2 s only. Writes stop after 15 s
(2 s) even when the system falls behind the pace; the rate reached is printed.
"""

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import orjson
import psycopg

from bench.bench_event_service import (
    COLUMNS,
    SEED_FROM,
    User,
    event_row,
    percentiles,
    register,
    report,
)
from common.timeutil import rfc3339
from eventhub.history.v1 import history_pb2
from eventhub.history.v1.history_pb2_grpc import HistoryServiceStub
from eventhub.sharing.v1 import sharing_pb2
from eventhub.sharing.v1.sharing_pb2_grpc import SharingServiceStub
from scripts.stack import Stack, isolated_deployment

WRITERS = 100
# Writes in flight at most; when the system falls behind the pace, the rate reached drops.
IN_FLIGHT = 64


@dataclass
class Sizes:
    owned: int
    shared: int
    versions: int
    samples: int
    write_rate: int
    write_seconds: float


@dataclass
class Seed:
    """Rows to COPY into the events and sharing schemas."""

    events: list[tuple] = field(default_factory=list)
    grants: list[tuple] = field(default_factory=list)
    changes: list[tuple] = field(default_factory=list)

    def add_event(self, owner: User, created: datetime, version: int = 1) -> tuple:
        """An event row with its owner grant, ACL and audit entry."""
        row = event_row(owner, SEED_FROM + timedelta(hours=len(self.events)), 60, "UTC", None)
        row = (*row[:12], version, created, created)
        self.events.append(row)
        self.grant(row[0], owner, "owner", owner, created, sequence=1)
        return row

    def grant(
        self, event_id: uuid.UUID, user: User, role: str, by: User, at: datetime, sequence: int
    ) -> None:
        self.grants.append((event_id, user.id, user.username, role, by.id, at))
        self.changes.append((event_id, sequence, user.id, role, None, by.id, at))

    def write(self, database_url: str, versions: Iterable[tuple] = ()) -> None:
        acls = {}
        for event_id, sequence, *_rest in self.changes:
            acls[event_id] = max(acls.get(event_id, 0), sequence)
        now = datetime.now(UTC)
        tables = (
            (f"events.events ({COLUMNS})", self.events),
            (
                "sharing.grants (event_id, user_id, username, role, granted_by, granted_at)",
                self.grants,
            ),
            (
                "sharing.permission_changes (event_id, sequence, user_id, role, previous_role,"
                " actor_id, occurred_at)",
                self.changes,
            ),
            ("sharing.event_acls (event_id, last_sequence, created_at)",
             [(event_id, last, now) for event_id, last in acls.items()]),
            (
                "history.event_versions (event_id, version, change_type, changed_by, changed_at,"
                " snapshot, changes)",
                versions,
            ),
        )  # fmt: skip
        with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
            for table, rows in tables:
                with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            for table in ("events.events", "sharing.grants", "history.event_versions"):
                conn.execute(f"ANALYZE {table}")


def version_rows(event: tuple, count: int) -> Iterable[tuple]:
    """`count` versions of a seeded event: created, then title changes."""
    event_id, owner_id, title, description, location, start, end, zone = event[:8]
    created = event[13]
    for version in range(1, count + 1):
        new_title = f"{title} {version}"
        old_title = f"{title} {version - 1}" if version > 1 else None
        at = created + timedelta(seconds=version)
        snapshot = {
            "id": str(event_id), "title": new_title, "description": description,
            "location": location, "start_time": rfc3339(start), "end_time": rfc3339(end),
            "timezone": zone, "is_recurring": False, "recurrence_rule": None,
            "owner_id": str(owner_id), "version": version, "created_at": rfc3339(created),
            "updated_at": rfc3339(at),
        }  # fmt: skip
        if version == 1:
            changes = {
                field: {"old": None, "new": snapshot[field]}
                for field in ("title", "description", "location", "start_time", "end_time",
                              "timezone", "is_recurring", "recurrence_rule")
            }  # fmt: skip
        else:
            changes = {"title": {"old": old_title, "new": new_title}}
        yield (
            event_id, version, "created" if version == 1 else "updated", str(owner_id), at,
            orjson.dumps(snapshot).decode(), orjson.dumps(changes).decode(),
        )  # fmt: skip


def timed_http(client: httpx.Client, url: str, headers: dict[str, str], params=None) -> float:
    started = time.perf_counter()
    response = client.get(url, headers=headers, params=params)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed


def headers(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def seed(stack: Stack, sizes: Sizes, client: httpx.Client) -> tuple[User, User, tuple, tuple]:
    """Returns the reader, the changelog owner, one owned event and the long-history event."""
    reader, sharer, historian = (register(client, p) for p in ("reader", "sharer", "historian"))
    started = time.perf_counter()
    data = Seed()
    base = datetime.now(UTC) - timedelta(days=1)
    rng = random.Random(7)
    shared = [False] * sizes.owned + [True] * sizes.shared
    rng.shuffle(shared)
    rows = []
    for index, is_shared in enumerate(shared):
        created = base + timedelta(seconds=index)
        if is_shared:
            row = data.add_event(sharer, created)
            role = rng.choice(("viewer", "editor"))
            data.grant(row[0], reader, role, sharer, created, sequence=2)
        else:
            row = data.add_event(reader, created)
        rows.append(row)
    long_lived = data.add_event(historian, base, version=sizes.versions)
    data.write(stack.env["EVENTHUB_DATABASE_URL"], version_rows(long_lived, sizes.versions))
    owned = sum(1 for row in rows if row[1] == reader.id)
    print(
        f"seeded {len(rows) + 1} events ({owned} owned and {len(rows) - owned} shared with the"
        f" reader) and {sizes.versions} versions in {time.perf_counter() - started:.1f} s"
    )
    owned_event = next(row for row in rows if row[1] == reader.id)
    return reader, historian, owned_event, long_lived


def measure_listing(client: httpx.Client, reader: User, sizes: Sizes) -> None:
    page = client.get("/api/events", headers=headers(reader))
    page.raise_for_status()
    assert len(page.json()["items"]) == 50, page.json()
    samples = [
        timed_http(client, "/api/events", headers(reader)) for _ in range(sizes.samples // 4)
    ]
    report(
        f"GET /api/events, {sizes.owned} owned + {sizes.shared} shared",
        samples,
        "p50 <= 30 ms",
    )


def measure_permission_check(
    stack: Stack, client: httpx.Client, reader: User, event: tuple, sizes: Sizes
) -> None:
    url = f"/api/events/{event[0]}"
    client.get(url, headers=headers(reader)).raise_for_status()
    reads = [timed_http(client, url, headers(reader)) for _ in range(sizes.samples)]
    report("GET /api/events/{id}, warm cache", reads, "(the whole read)")
    with grpc.insecure_channel(stack.env["EVENTHUB_SHARING_ADDR"]) as channel:
        sharing = SharingServiceStub(channel)
        request = sharing_pb2.GetRoleRequest(event_id=str(event[0]), user_id=reader.id)
        sharing.GetRole(request, metadata=reader.metadata)
        roles = []
        for _ in range(sizes.samples):
            started = time.perf_counter()
            sharing.GetRole(request, metadata=reader.metadata)
            roles.append((time.perf_counter() - started) * 1000)
    report("  SharingService.GetRole over gRPC alone", roles, "p50 <= 1 ms (what a check adds)")
    print(
        f"  -> the check is {percentiles(roles)[0] / percentiles(reads)[0]:.0%} of the read's p50"
    )


async def measure_history_lag(stack: Stack, writer: User, sizes: Sizes) -> list[str]:
    """PATCH at a paced rate; after each response, GetVersion of the new version over gRPC
    (the history service's read waits until it is stored). Returns the written (id, version)."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, limits=limits) as client,
        grpc.aio.insecure_channel(stack.env["EVENTHUB_HISTORY_ADDR"]) as channel,
    ):
        history = HistoryServiceStub(channel)
        event_ids = []
        for index in range(WRITERS):
            start = datetime(2200, 1, 1, tzinfo=UTC) + timedelta(days=index)
            body = {"title": "Paced", "start_time": rfc3339(start),
                    "end_time": rfc3339(start + timedelta(hours=1))}  # fmt: skip
            created = await client.post("/api/events", json=body, headers=headers(writer))
            created.raise_for_status()
            event_ids.append(created.json()["id"])

        lags: list[float] = []
        writes: list[float] = []
        failures: list[str] = []
        written: list[tuple[str, int]] = []

        slots = asyncio.Semaphore(IN_FLIGHT)

        async def write_then_read(index: int) -> None:
            try:
                await write_then_read_once(index)
            finally:
                slots.release()

        async def write_then_read_once(index: int) -> None:
            event_id = event_ids[index % WRITERS]
            started = time.perf_counter()
            try:
                response = await client.patch(
                    f"/api/events/{event_id}",
                    json={"title": f"Paced {index}"},
                    headers=headers(writer),
                )
            except httpx.TransportError as error:
                failures.append(f"PATCH {type(error).__name__}")
                return
            answered = time.perf_counter()
            if response.status_code != 200:
                failures.append(f"PATCH {response.status_code}")
                return
            writes.append((answered - started) * 1000)
            version = response.json()["version"]
            written.append((event_id, version))
            request = history_pb2.GetVersionRequest(event_id=event_id, version=version)
            try:
                await history.GetVersion(request, metadata=writer.metadata, timeout=10)
            except grpc.aio.AioRpcError as error:
                failures.append(f"GetVersion {error.code().name}")
                return
            lags.append((time.perf_counter() - answered) * 1000)

        tasks = []
        began = time.perf_counter()
        for index in range(int(sizes.write_rate * sizes.write_seconds)):
            if time.perf_counter() - began > sizes.write_seconds:
                break
            delay = began + index / sizes.write_rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            tasks.append(asyncio.create_task(write_then_read(index)))
        sent_in = time.perf_counter() - began
        await asyncio.gather(*tasks)
        done_in = time.perf_counter() - began

    print(
        f"paced {len(tasks)} PATCHes over {WRITERS} events, <= {IN_FLIGHT} in flight: sent in"
        f" {sent_in:.1f} s, all answered in {done_in:.1f} s"
        f" -> {len(writes) / done_in:.0f} writes/s reached"
        f" (target {sizes.write_rate}/s), failures: {len(failures)} {sorted(set(failures))}"
    )
    report("  PATCH /api/events/{id} under that load", writes, "(for reference)")
    report("write response -> GetVersion answers", lags, "p99 <= 100 ms")
    return written


def report_stored_lag(stack: Stack, written: list[tuple[str, int]]) -> None:
    """The pipeline alone: the history row's stored_at minus the event's commit time."""
    with psycopg.connect(stack.env["EVENTHUB_DATABASE_URL"].replace("+psycopg", "")) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM stored_at - changed_at) * 1000"
            " FROM history.event_versions"
            " WHERE (event_id, version) IN (SELECT * FROM unnest(%s::uuid[], %s::bigint[]))",
            ([uuid.UUID(e) for e, _ in written], [v for _, v in written]),
        ).fetchall()
    report("  of which commit -> stored (from the rows)", [float(r[0]) for r in rows], "(server)")


def measure_changelog(client: httpx.Client, historian: User, event: tuple, sizes: Sizes) -> None:
    url = f"/api/events/{event[0]}/changelog"
    for limit, label in ((None, "default page (1000)"), (50, "limit=50")):
        params = {"limit": limit} if limit else None
        page = client.get(url, headers=headers(historian), params=params)
        page.raise_for_status()
        assert len(page.json()["items"]) == min(limit or 1000, sizes.versions), page.text[:300]
        samples = [
            timed_http(client, url, headers(historian), params) for _ in range(sizes.samples // 4)
        ]
        report(f"changelog of {sizes.versions} versions, {label}", samples, "<= 30 ms")


def measure(stack: Stack, sizes: Sizes) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
        reader, historian, owned_event, long_lived = seed(stack, sizes, client)
        writer = register(client, "writer")
        print(f"load average before measuring: {os.getloadavg()}")
        measure_listing(client, reader, sizes)
        measure_permission_check(stack, client, reader, owned_event, sizes)
        measure_changelog(client, historian, long_lived, sizes)
    written = asyncio.run(measure_history_lag(stack, writer, sizes))
    report_stored_lag(stack, written)
    print(f"load average after measuring: {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a twentieth of the data, few samples")
    smoke = parser.parse_args().smoke
    sizes = (
        Sizes(owned=500, shared=500, versions=500, samples=40, write_rate=200, write_seconds=2)
        if smoke
        else Sizes(
            owned=10_000,
            shared=10_000,
            versions=10_000,
            samples=400,
            write_rate=200,
            write_seconds=15,
        )  # fmt: skip
    )
    settings = {"EVENTHUB_LOG_LEVEL": "WARNING", "EVENTHUB_ARGON2_TIME_COST": "1",
                "EVENTHUB_ARGON2_MEMORY_KIB": "8192",
                "EVENTHUB_RATE_LIMIT_USER": "100000000/minute"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="eventhub-bench-sharing-") as scratch:
        workdir = Path(scratch)
        with isolated_deployment(workdir, **settings) as env:
            stack = Stack(env, workdir)
            stack.migrate()
            stack.start_all()
            try:
                stack.wait_ready()
                measure(stack, sizes)
            finally:
                stack.stop_all()
    sys.exit(0)


if __name__ == "__main__":
    main()
