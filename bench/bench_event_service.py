"""Latency of the event service at its gRPC boundary on a large calendar.

Starts an isolated system, seeds PostgreSQL directly (one owner with 100,000 one-off
events and 1,000 endless weekly series, another with 1,000 weekly series), then calls
the event service over gRPC and prints p50/p99 of each scenario next to its target:

- create with conflict check against the big calendar   p50 <= 5 ms, p99 <= 20 ms
- expand one month over 1,000 series                     <= 50 ms
- batch create of 500 events                             <= 1 s
- cached GetEvent                                        p50 <= 1 ms

`python -m bench.bench_event_service [--smoke]`; --smoke seeds a twentieth and
takes fewer samples.
"""

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import psycopg

from common.timeutil import to_timestamp
from event_service.domain.events import make_schedule
from event_service.domain.recurrence import week_footprint
from eventhub.events.v1 import events_pb2 as pb
from eventhub.events.v1.events_pb2_grpc import EventServiceStub
from eventhub.sharing.v1 import sharing_pb2
from eventhub.sharing.v1.sharing_pb2_grpc import SharingServiceStub
from scripts.stack import Stack, isolated_deployment

PASSWORD = "bench password 1"
SEED_FROM = datetime(2026, 1, 5, tzinfo=UTC)
SEED_YEARS = 30
ZONES = ("UTC", "America/New_York", "Europe/Berlin")
COLUMNS = (
    "id, owner_id, title, description, location, start_time, end_time, timezone,"
    " is_recurring, recurrence_rule, span, footprint, version, created_at, updated_at"
)


@dataclass
class Sizes:
    one_offs: int
    series: int
    creates: int
    expands: int
    batches: int
    gets: int


@dataclass
class User:
    id: str
    username: str
    token: str

    @property
    def metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")]


def register(client: httpx.Client, prefix: str) -> User:
    username = f"{prefix}_{uuid.uuid4().hex[:8]}"
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    registered = client.post("/api/auth/register", json=body)
    registered.raise_for_status()
    tokens = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    tokens.raise_for_status()
    return User(registered.json()["id"], username, tokens.json()["access_token"])


def _range_literal(ranges: list[tuple[int, int]]) -> str:
    return "{" + ",".join(f"[{low},{high})" for low, high in ranges) + "}"


def event_row(owner: User, start: datetime, minutes: int, zone: str, rule: str | None) -> tuple:
    end = start + timedelta(minutes=minutes)
    schedule = make_schedule(start, end, zone, rule)
    span_end = schedule.span_end()
    span = f"[{start.isoformat()},{span_end.isoformat() if span_end else ''})"
    now = datetime.now(UTC)
    return (
        uuid.uuid4(), owner.id, "Seeded", "", "", start, end, zone, rule is not None, rule,
        span, _range_literal(week_footprint(schedule)), 1, now, now,
    )  # fmt: skip


def one_off_rows(owner: User, count: int, rng: random.Random) -> list[tuple]:
    minutes_in_range = SEED_YEARS * 365 * 24 * 60
    return [
        event_row(
            owner,
            SEED_FROM + timedelta(minutes=rng.randrange(0, minutes_in_range, 5)),
            rng.choice([15, 30, 45, 60, 90]),
            "UTC",
            None,
        )
        for _ in range(count)
    ]


def weekly_rows(owner: User, count: int, rng: random.Random) -> list[tuple]:
    rows = []
    for _ in range(count):
        start = SEED_FROM + timedelta(
            days=rng.randrange(0, 365), minutes=rng.randrange(0, 1440, 15)
        )
        rows.append(event_row(owner, start, 30, rng.choice(ZONES), "FREQ=WEEKLY"))
    return rows


def seed(database_url: str, rows: list[tuple], grants_for: User | None) -> None:
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        with conn.cursor().copy(f"COPY events.events ({COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        if grants_for is not None:
            with conn.cursor().copy(
                "COPY sharing.grants (event_id, user_id, username, role, granted_by, granted_at)"
                " FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(
                        (row[0], grants_for.id, grants_for.username, "owner", grants_for.id, "now")
                    )
        conn.execute("ANALYZE events.events")


def timed(call: Callable[[], object]) -> tuple[float, bool]:
    started = time.perf_counter()
    try:
        call()
        ok = True
    except grpc.RpcError as error:
        if error.code() not in (grpc.StatusCode.ABORTED,):
            raise
        ok = False
    return (time.perf_counter() - started) * 1000, ok


def percentiles(samples: list[float]) -> tuple[float, float]:
    if len(samples) < 2:
        return samples[0], samples[0]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[98]


def report(name: str, samples: list[float], target: str, note: str = "") -> None:
    p50, p99 = percentiles(samples)
    print(f"{name:<44} n={len(samples):<5} p50={p50:8.2f} ms  p99={p99:8.2f} ms  "
          f"target: {target}  {note}")  # fmt: skip


def event_input(start: datetime, minutes: int) -> pb.EventInput:
    return pb.EventInput(
        title="Bench",
        start_time=to_timestamp(start),
        end_time=to_timestamp(start + timedelta(minutes=minutes)),
    )


def measure(stack: Stack, sizes: Sizes) -> None:
    rng = random.Random(7)
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
        big, series_owner, batcher = (register(client, p) for p in ("big", "series", "batch"))
    started = time.perf_counter()
    big_rows = one_off_rows(big, sizes.one_offs, rng) + weekly_rows(big, sizes.series, rng)
    seed(stack.env["EVENTHUB_DATABASE_URL"], big_rows[:1], big)
    seed(stack.env["EVENTHUB_DATABASE_URL"], big_rows[1:], None)
    seed(
        stack.env["EVENTHUB_DATABASE_URL"],
        weekly_rows(series_owner, sizes.series, rng),
        series_owner,
    )
    print(f"seeded {len(big_rows) + sizes.series} events in {time.perf_counter() - started:.1f} s")

    with grpc.insecure_channel(stack.env["EVENTHUB_EVENTS_ADDR"]) as channel:
        events = EventServiceStub(channel)

        outcomes: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(sizes.creates):
            start = SEED_FROM + timedelta(minutes=rng.randrange(0, SEED_YEARS * 365 * 1440, 5))
            request = pb.CreateEventRequest(event=event_input(start, 30))
            elapsed, ok = timed(lambda r=request: events.CreateEvent(r, metadata=big.metadata))
            outcomes[ok].append(elapsed)
        target = "p50 <= 5 ms, p99 <= 20 ms"
        report(
            "create, conflict check, 101k-event calendar",
            outcomes[True] + outcomes[False],
            target,
            f"({len(outcomes[True])} created, {len(outcomes[False])} conflicts)",
        )
        for ok, label in ((True, "  of which created"), (False, "  of which 409 conflict")):
            if len(outcomes[ok]) > 1:
                report(label, outcomes[ok], target)

        expands = []
        for _ in range(sizes.expands):
            month = SEED_FROM + timedelta(
                days=rng.randrange(SEED_YEARS * 365, SEED_YEARS * 365 + 365)
            )
            request = pb.ExpandEventsRequest(
                start=to_timestamp(month), end=to_timestamp(month + timedelta(days=31))
            )
            response = events.ExpandEvents(request, metadata=series_owner.metadata)
            assert len(response.items) >= sizes.series * 4, len(response.items)
            expands.append(
                timed(lambda r=request: events.ExpandEvents(r, metadata=series_owner.metadata))[0]
            )
        report(f"expand one month over {sizes.series} series", expands, "<= 50 ms")

        batches = []
        for index in range(sizes.batches):
            base = datetime(2100 + index, 1, 1, tzinfo=UTC)
            request = pb.BatchCreateEventsRequest(
                events=[event_input(base + timedelta(hours=2 * i), 60) for i in range(500)]
            )
            batches.append(
                timed(lambda r=request: events.BatchCreateEvents(r, metadata=batcher.metadata))[0]
            )
        report("batch create of 500 events", batches, "<= 1000 ms")

        event_id = str(big_rows[0][0])
        request = pb.GetEventRequest(id=event_id)
        events.GetEvent(request, metadata=big.metadata)
        gets = [
            timed(lambda: events.GetEvent(request, metadata=big.metadata))[0]
            for _ in range(sizes.gets)
        ]
        report("cached GetEvent", gets, "p50 <= 1 ms")

    # What the event service waits for on its calls: the sharing service's answers.
    with grpc.insecure_channel(stack.env["EVENTHUB_SHARING_ADDR"]) as channel:
        sharing = SharingServiceStub(channel)
        role = sharing_pb2.GetRoleRequest(event_id=event_id, user_id=big.id)
        roles = [
            timed(lambda: sharing.GetRole(role, metadata=big.metadata))[0]
            for _ in range(sizes.gets)
        ]
        report("  for reference: SharingService.GetRole", roles, "(part of every call)")
        listing = sharing_pb2.ListGrantsRequest(user_id=series_owner.id)
        grants = [
            timed(lambda: sharing.ListGrants(listing, metadata=series_owner.metadata))[0]
            for _ in range(sizes.expands)
        ]
        report(f"  for reference: ListGrants of {sizes.series}", grants, "(part of expand)")
        owners = []
        for _ in range(sizes.creates):
            grant = sharing_pb2.InitializeOwnersRequest(event_ids=[str(uuid.uuid4())])
            owners.append(
                timed(lambda g=grant: sharing.InitializeOwners(g, metadata=big.metadata))[0]
            )
        report("  for reference: SharingService.InitializeOwners", owners, "(per create)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a twentieth of the data, few samples")
    smoke = parser.parse_args().smoke
    sizes = (
        Sizes(one_offs=5_000, series=100, creates=50, expands=10, batches=1, gets=100)
        if smoke
        else Sizes(one_offs=100_000, series=1_000, creates=500, expands=50, batches=5, gets=2_000)
    )
    settings = {"EVENTHUB_LOG_LEVEL": "WARNING", "EVENTHUB_ARGON2_TIME_COST": "1",
                "EVENTHUB_ARGON2_MEMORY_KIB": "8192"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="eventhub-bench-events-") as scratch:
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
