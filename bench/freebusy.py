"""Free/busy over a busy year (issue 16), on a system of its own (one gateway worker).

50 users each own 200 one-off events and 20 weekly series, all in 2041 (created
through the API in batches of 500); 49 of them grant the first their free/busy. The
first asks for all 50 over 366 days: `POST /api/freebusy`, driven by wrk for
`--seconds` (answers are cached per user and window, so this is the answer as most
askers get it). The first answer's time and size are printed too, and the time of
an answer for a window not asked before (computed, nothing cached). Target: ≥ 0.002 × the
ceiling, a bare FastAPI app served as the gateway is (one worker), in the same run.

    python -m bench.freebusy [--smoke]
"""

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from bench.common import ONE_WORKER, User, isolated_stack, measure_ceiling, register_async
from bench.load_seed import bounded, create_batches, one_off
from bench.wrk import run_wrk

MIN_RATIO = 0.002
YEAR = datetime(2041, 1, 1, tzinfo=UTC)


def calendar(one_offs: int, series: int) -> list[dict]:
    """One-off events spread over the year, and weekly series through it."""
    step = timedelta(days=365) / one_offs
    events = [one_off(f"busy {n}", YEAR + n * step + timedelta(hours=9)) for n in range(one_offs)]
    for n in range(series):
        start = YEAR + timedelta(days=n % 7, hours=7 + n // 7, minutes=15)
        events.append(
            {
                "title": f"weekly {n}",
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(minutes=45)).isoformat(),
                "timezone": "Europe/Berlin",
                "is_recurring": True,
                "recurrence_rule": "FREQ=WEEKLY;UNTIL=20411231T000000Z",
            }
        )
    return events


async def seed(url: str, users: int, one_offs: int, series: int) -> tuple[User, dict]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        people = await bounded(register_async(client, "busy") for _ in range(users))
        events = calendar(one_offs, series)
        await bounded(
            create_batches(client, person, events, allow_conflicts=True) for person in people
        )
        asker = people[0]
        for person in people[1:]:
            granted = await client.put(f"/api/freebusy/grants/{asker.id}", headers=person.headers)
            granted.raise_for_status()
        body = {
            "start": YEAR.isoformat(),
            "end": (YEAR + timedelta(days=366)).isoformat(),
            "users": [{"user_id": person.id} for person in people],
            "timezone": "Europe/Berlin",
        }
        return asker, body


async def first_answer(url: str, asker: User, body: dict) -> tuple[float, int, int]:
    """(seconds, bytes, busy intervals) of one answer."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        started = time.perf_counter()
        answer = await client.post("/api/freebusy", json=body, headers=asker.headers)
        took = time.perf_counter() - started
        answer.raise_for_status()
        intervals = sum(len(user["busy"]) for user in answer.json()["users"].values())
        return took, len(answer.content), intervals


def post_script(asker: User, body: dict) -> str:
    payload = orjson.dumps(body).decode().replace("\\", "\\\\").replace('"', '\\"')
    return f"""
wrk.method = "POST"
wrk.body = "{payload}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {asker.token}"
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="5 users, 20 + 2 events each")
    parser.add_argument("--seconds", type=float, default=10, help="of each wrk run")
    parser.add_argument("--connections", type=int, default=4)
    args, _ = parser.parse_known_args()  # `make bench` passes bench.load's options too
    users, one_offs, series = (5, 20, 2) if args.smoke else (50, 200, 20)
    seconds = 2 if args.smoke else args.seconds
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with isolated_stack("eventhub-freebusy-bench-", **ONE_WORKER) as (stack, workdir):
        url = stack.gateway_url
        print(f"seeding {users} users x ({one_offs} events + {series} weekly series)...")
        asker, body = asyncio.run(seed(url, users, one_offs, series))
        took, size, intervals = asyncio.run(first_answer(url, asker, body))
        shifted = {**body, "start": (YEAR + timedelta(days=1)).isoformat()}
        uncached, _, _ = asyncio.run(first_answer(url, asker, shifted))
        figures = run_wrk(
            url + "/api/freebusy",
            post_script(asker, body),
            seconds=seconds,
            connections=args.connections,
            threads=2,
            workdir=workdir,
        )
        ceiling = measure_ceiling(seconds, args.connections, workdir)
    print(f"load average at end: {os.getloadavg()}\n")
    ratio = figures.requests_per_s / ceiling.requests_per_s
    passed = ratio >= MIN_RATIO and figures.errors == 0
    print(f"ceiling: bare FastAPI GET /ping, 1 worker  {ceiling.requests_per_s:8.0f} req/s")
    print(
        f"free/busy: first answer {took * 1000:.0f} ms, {size / 1024:.0f} KiB, "
        f"{intervals} busy intervals for {users} users over 366 days; "
        f"a window not asked before (nothing cached) {uncached * 1000:.0f} ms"
    )
    print(
        f"free/busy: {figures.requests_per_s:7.1f} req/s  p50 {figures.p50_ms:.0f} ms  "
        f"p99 {figures.p99_ms:.0f} ms  errors {figures.errors}  {ratio:.4f} x ceiling  "
        f"target >= {MIN_RATIO}  {'PASS' if passed else 'MISS'}"
    )
    sys.exit(1 if figures.errors else 0)


if __name__ == "__main__":
    main()
