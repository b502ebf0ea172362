"""`make bench`: the gateway under load, against the targets of issue 12.

Starts an isolated system (or uses a running one with --url), seeds it through the
API, measures a bare FastAPI app served exactly like the gateway (same workers,
uvloop, httptools: the ceiling) and the floors of this design (the least a cached
read and a write must do: `bench/ceiling_app.py`, `bench/write_floor.py`), then
drives each scenario with wrk from a separate process and prints req/s, p50, p99,
errors (non-2xx answers included), the ratio to the ceiling, the target and PASS or
MISS:

  S1   cached GET /api/events/{id}                        >= 0.25 x ceiling, p99 <= 50 ms, 0 errors
  S3   first page of GET /api/events, no filters          >= 0.10 x ceiling
       (caller owns 10,000 events, 10,000 more shared with them)
  S3x  GET /api/events?expand=true, one month,            >= 0.01 x ceiling, 0 errors
       1,000 weekly series
  S2   POST /api/events with conflict check, one user     >= 0.06 x ceiling, 0 errors
       owning 10,000 events (every create a free slot: a 409 is an error)
  S4   mixed 80% GET / 15% PATCH / 5% POST, 100 users     >= 0.15 x ceiling
  lag  PATCH answered -> version listed by                p99 <= 100 ms
       GET /api/events/{id}/history, writes paced at half S2's req/s for 20 s
       (wrk makes most of them; 10/s are made and read back by a Python client)

S1, S2, S3 and S3x run as one heavy user; S3 and S3x run before S2 so that S2's
creates do not add to the calendar they read. Before each scenario the harness waits
until the history has caught up with earlier writes.

Exit status: 1 if any request failed (transport error, timeout or non-2xx answer,
in any scenario or the lag run), else 0. A MISS is reported, not a failure.
--smoke seeds a little, runs each scenario for 2 s and only checks for errors (its
PASS/MISS says little).
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from bench.common import BENCH_SETTINGS, isolated_stack, percentiles
from bench.exceptions import measure_exceptions
from bench.exceptions import report as report_exceptions
from bench.history_lag import LagResult, measure_history_lag
from bench.load_seed import Seeded, Sizes, seed, settle
from bench.wrk import Figures, run_wrk
from scripts.backing import (
    DEFAULT_DATABASE_URL,
    DEFAULT_NATS_URL,
    DEFAULT_REDIS_URL,
    accepts_connections,
)
from scripts.stack import REPO, free_port, wait_until

FULL = Sizes(owned=10_000, shared=10_000, series=1_000, users=100)
SMOKE = Sizes(owned=200, shared=200, series=50, users=10)
# One month of the series' year: each series has 4 or 5 occurrences in it.
EXPAND_WINDOW = "start=2040-03-01T00:00:00Z&end=2040-04-01T00:00:00Z"
# Creates take hour slots from 2100-01-01 (epoch seconds) on: after every seeded event
# and series, and within the API's years (<= 2200) for over 800,000 creates.
FIRST_CREATE_SLOT = 4102444800
LAG_TARGET_MS = 100.0
BACKING = {
    "EVENTHUB_DATABASE_URL": DEFAULT_DATABASE_URL,
    "EVENTHUB_REDIS_URL": DEFAULT_REDIS_URL,
    "EVENTHUB_NATS_URL": DEFAULT_NATS_URL,
    "EVENTHUB_NAMESPACE": "eventhub",
}
# One-month windows the exceptions bench asks each of its two users for.
EXCEPTION_WINDOWS = 20
EXCEPTION_WINDOWS_SMOKE = 3
LAG_EVENTS = 500  # the lag run writes to this many of the heavy user's events in turn


@dataclass(frozen=True)
class Options:
    seconds: float
    connections: int
    threads: int
    workers: int
    lag_seconds: float
    sizes: Sizes
    smoke: bool


@dataclass(frozen=True)
class Target:
    min_ratio: float
    max_p99_ms: float | None = None
    no_errors: bool = False

    def __str__(self) -> str:
        parts = [f">={self.min_ratio:g}x"]
        if self.max_p99_ms is not None:
            parts.append(f"p99<={self.max_p99_ms:g}ms")
        if self.no_errors:
            parts.append("0 errors")
        return ", ".join(parts)

    def met(self, figures: Figures, ceiling: Figures) -> bool:
        return (
            figures.requests_per_s >= self.min_ratio * ceiling.requests_per_s
            and (self.max_p99_ms is None or figures.p99_ms <= self.max_p99_ms)
            and (not self.no_errors or figures.errors == 0)
        )


@dataclass(frozen=True)
class Scenario:
    key: str  # S1, S2, ...
    title: str
    path: str  # with the query; for a scripted `request()` only its host matters
    script: str  # wrk Lua
    target: Target

    @property
    def name(self) -> str:
        return f"{self.key} {self.title}"


# wrk scripts


def lua_string(value: str) -> str:
    return json.dumps(value)


def lua_list(values: list[str]) -> str:
    return "{" + ",".join(lua_string(v) for v in values) + "}"


def get_script(token: str) -> str:
    return f'wrk.method = "GET"\nwrk.headers["Authorization"] = {lua_string("Bearer " + token)}\n'


def unique_slots(threads: int, first_slot: int = FIRST_CREATE_SLOT) -> str:
    """Lua `slot_body(title)`: an event body in a slot no other request of the run
    takes (slot = counter * threads + thread number, in hours from `first_slot`, epoch
    seconds), so creates never conflict. Each
    thread also draws its own random numbers (wrk seeds every thread alike, so two
    threads would send the same requests: half the PATCHes of S4 changed nothing)."""
    return f"""
local counter = 0
local started = 0
setup = function(thread) thread:set("tid", started); started = started + 1 end
init = function(args) math.randomseed(os.time() * {threads} + tid) end
local function slot_body(title)
  local start = {first_slot} + (counter * {threads} + tid) * 3600
  counter = counter + 1
  return string.format('{{"title":"%s","start_time":"%s","end_time":"%s"}}', title,
    os.date("!%Y-%m-%dT%H:%M:%SZ", start), os.date("!%Y-%m-%dT%H:%M:%SZ", start + 1800))
end
"""


def create_script(token: str, threads: int, first_slot: int = FIRST_CREATE_SLOT) -> str:
    auth = lua_string(f"Bearer {token}")
    return (
        unique_slots(threads, first_slot)
        + f"""
request = function()
  return wrk.format("POST", "/api/events",
    {{["Content-Type"] = "application/json", ["Authorization"] = {auth}}}, slot_body("bench"))
end
"""
    )


def mixed_script(seeded: Seeded, threads: int) -> str:
    """80% GET of an event the user may read, 15% PATCH of one they own, 5% POST."""
    crowd = seeded.crowd
    tokens = lua_list([f"Bearer {member.user.token}" for member in crowd])
    readable = "{" + ",".join(lua_list(m.own + m.shared) for m in crowd) + "}"
    own = "{" + ",".join(lua_list(m.own) for m in crowd) + "}"
    return (
        unique_slots(threads)
        + f"""
local tokens = {tokens}
local readable = {readable}
local own = {own}
request = function()
  local u = math.random(#tokens)
  local headers = {{["Authorization"] = tokens[u], ["Content-Type"] = "application/json"}}
  local roll = math.random(100)
  if roll <= 80 then
    local ids = readable[u]
    return wrk.format("GET", "/api/events/" .. ids[math.random(#ids)], headers)
  elseif roll <= 95 then
    local ids = own[u]
    local body = string.format('{{"title":"edited %d"}}', math.random(1000000))
    return wrk.format("PATCH", "/api/events/" .. ids[math.random(#ids)], headers, body)
  end
  return wrk.format("POST", "/api/events", headers, slot_body("mixed"))
end
"""
    )


def scenarios(seeded: Seeded, options: Options) -> list[Scenario]:
    """In the order they run (S2 after S3 and S3x: its creates would grow their calendar)."""
    token, sizes = seeded.heavy.token, options.sizes
    return [
        Scenario(
            "S1",
            "cached GET /api/events/{id}",
            f"/api/events/{seeded.heavy_events[0]}",
            get_script(token),
            Target(0.25, max_p99_ms=50, no_errors=True),
        ),
        Scenario(
            "S3",
            f"GET /api/events first page ({sizes.owned}+{sizes.shared})",
            "/api/events",
            get_script(token),
            Target(0.10),
        ),
        Scenario(
            "S3x",
            f"expand=true, 1 month, {sizes.series} series",
            f"/api/events?expand=true&{EXPAND_WINDOW}",
            get_script(token),
            Target(0.01, no_errors=True),
        ),
        Scenario(
            "S2",
            f"POST /api/events ({sizes.owned} owned)",
            "/api/events",
            create_script(token, options.threads),
            Target(0.06, no_errors=True),
        ),
        Scenario(
            "S4",
            f"mixed 80/15/5 over {sizes.users} users",
            "/api/events",
            mixed_script(seeded, options.threads),
            Target(0.15),
        ),
    ]


# Measuring


@dataclass(frozen=True)
class References:
    """What the scenarios are compared with, measured in the same run."""

    ceiling: Figures  # bare FastAPI, `/ping`
    read_floor: Figures  # the least a cached read by id does (S1's floor)
    write_floor: Figures  # the least a write does (`bench/write_floor.py`)
    mixed_floor: Figures  # S4's mix over the two floors

    def rows(self) -> list[tuple[str, Figures]]:
        return [
            ("ceiling: bare FastAPI GET /ping", self.ceiling),
            ("floor of S1: admission + cache read, no more", self.read_floor),
            ("floor of S2: a write, concurrent ones grouped", self.write_floor),
            ("floor of S4: 80% S1 floor, 20% write floor", self.mixed_floor),
        ]


def floor_mixed_script() -> str:
    """S4's 80/20 split of reads and writes, over the floors of both."""
    return """
init = function(args) math.randomseed(os.time() + math.random(100000)) end
local headers = {["Authorization"] = "Bearer floor-token", ["Content-Type"] = "application/json"}
request = function()
  if math.random(100) <= 80 then return wrk.format("GET", "/floor", headers) end
  local body = string.format('{"title":"written %d"}', math.random(1000000))
  return wrk.format("POST", "/floor-write", headers, body)
end
"""


def floor_write_script() -> str:
    return floor_mixed_script().replace("math.random(100) <= 80", "false")


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env={**os.environ, **env})


def measure_references(options: Options, workdir: Path, backing: dict[str, str]) -> References:
    """The ceiling and the floors (`bench/ceiling_app.py`, `bench/write_floor.py`);
    `backing` holds the PostgreSQL, Redis and NATS URLs the write floor uses."""
    port, write_port = free_port(), free_port()
    env = {**backing, "EVENTHUB_FLOOR_WRITE_ADDR": f"127.0.0.1:{write_port}"}
    processes = [_start(["-m", "bench.write_floor", "serve", str(write_port)], env)]
    try:
        wait_until(lambda: accepts_connections("127.0.0.1", write_port), 30, "the write floor")
        processes.append(_start(["-m", "bench.write_floor", "consume"], env))
        processes.append(
            _start(
                [
                    "-m", "uvicorn", "bench.ceiling_app:app", "--host", "127.0.0.1",
                    "--port", str(port), "--workers", str(options.workers), "--loop", "uvloop",
                    "--http", "httptools", "--no-access-log", "--log-level", "warning",
                ],
                env,
            )
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{base}/ping"), 30, "the ceiling app")
        return References(
            ceiling=drive(f"{base}/ping", 'wrk.method = "GET"\n', options, workdir),
            read_floor=drive(f"{base}/floor", get_script("a-token"), options, workdir),
            write_floor=drive(base, floor_write_script(), options, workdir),
            mixed_floor=drive(base, floor_mixed_script(), options, workdir),
        )
    finally:
        for process in reversed(processes):  # the app first: it calls the others
            process.terminate()
            process.wait(30)
        subprocess.run(
            [sys.executable, "-m", "bench.write_floor", "remove"],
            cwd=REPO, env={**os.environ, **env}, check=True,
        )  # fmt: skip


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def drive(url: str, script: str, options: Options, workdir: Path) -> Figures:
    return run_wrk(
        url,
        script,
        seconds=options.seconds,
        connections=options.connections,
        threads=options.threads,
        workdir=workdir,
    )


def wait_for_history(url: str, seeded: Seeded) -> None:
    """`settle` before a measurement; says so when it had to wait."""

    async def settled() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await settle(client, seeded.heavy, seeded.heavy_events[-1])

    started = time.perf_counter()
    asyncio.run(settled())
    if (waited := time.perf_counter() - started) > 1:
        print(f"  (waited {waited:.1f} s for the history to catch up)", flush=True)


def check_seed(url: str, seeded: Seeded, sizes: Sizes) -> None:
    """The reads see what was seeded: a full first page, and every series in the window."""
    with httpx.Client(base_url=url, timeout=60, headers=seeded.heavy.headers) as client:
        page = client.get("/api/events")
        page.raise_for_status()
        expanded = client.get(f"/api/events?expand=true&{EXPAND_WINDOW}")
        expanded.raise_for_status()
    listed, occurrences = len(page.json()["items"]), len(expanded.json()["items"])
    print(f"S3 first page: {listed} events; S3x window: {occurrences} occurrences")
    if listed < min(50, sizes.owned + sizes.shared) or occurrences < 4 * sizes.series:
        raise RuntimeError("the seeded data is not what the scenarios expect")


def history_lag(
    url: str, seeded: Seeded, s2: Figures, options: Options, workdir: Path
) -> LagResult:
    rate = max(1.0, s2.requests_per_s / 2)
    print(f"history lag: PATCH at {rate:.1f}/s for {options.lag_seconds:g} s...", flush=True)
    events = seeded.heavy_events[:LAG_EVENTS]
    return asyncio.run(
        measure_history_lag(url, seeded.heavy, events, rate, options.lag_seconds, workdir)
    )


# Reporting


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg()) + f" ({os.cpu_count()} cores)"


HEADER = (
    f"{'scenario':46} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
    f" {'x ceil':>6}  {'target':29} verdict"
)


def row(name: str, rate: float, p50: float, p99: float, errors: int, ratio: str) -> str:
    return f"{name:46} {rate:7.0f} {p50:8.2f} {p99:8.2f} {errors:6d} {ratio:>6}"


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def lag_passed(lag: LagResult) -> bool:
    """p99 within target, at (nearly) the planned write rate."""
    p99 = percentiles(lag.lags_ms)[1]
    return bool(lag.lags_ms) and p99 <= LAG_TARGET_MS and lag.sent_rate >= 0.95 * lag.planned_rate


def report(
    references: References,
    results: list[tuple[Scenario, Figures]],
    lag: LagResult,
    smoke: bool,
) -> None:
    ceiling = references.ceiling
    print(f"\n{HEADER}")
    for name, f in references.rows():
        ratio = f"{f.requests_per_s / ceiling.requests_per_s:.3f}"
        print(row(name, f.requests_per_s, f.p50_ms, f.p99_ms, f.errors, ratio))
    for scenario, f in results:
        ratio = f"{f.requests_per_s / ceiling.requests_per_s:.3f}"
        figures = row(scenario.name, f.requests_per_s, f.p50_ms, f.p99_ms, f.errors, ratio)
        print(f"{figures}  {scenario.target!s:29} {verdict(scenario.target.met(f, ceiling))}")
    p50, p99 = percentiles(lag.lags_ms)
    name = f"lag: PATCH -> /history, {lag.planned_rate:.0f} writes/s planned"
    target = f"p99<={LAG_TARGET_MS:g}ms at plan"
    print(f"{row(name, lag.sent_rate, p50, p99, lag.errors, '-')}  {target:29} "
          f"{verdict(lag_passed(lag))}")  # fmt: skip
    print(
        f"\nlag: {len(lag.lags_ms)} writes read back; the first history read listed the"
        f" version for {lag.first_read_had_it}; failures: {dict(lag.failures) or 'none'}"
    )
    for scenario, f in results:
        if f.errors:
            print(f"{scenario.name}: {f.non2xx} non-2xx answers, {f.socket_errors} "
                  "transport errors or timeouts")  # fmt: skip
    if smoke:
        print("smoke run: small seed and 2 s per scenario, so PASS/MISS says little here;")
        print("only errors fail it.")


# The run


def analyze(database_url: str) -> None:
    """Refresh the planner's statistics after the bulk seed, as autovacuum would within
    a minute; this machine's PostgreSQL runs with autovacuum off, and on tables it has
    never analyzed the planner takes a user with 20,000 events for one with a dozen."""
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("ANALYZE")


def bench_against(
    url: str, options: Options, workdir: Path, backing: dict[str, str], own_stack: bool
) -> int:
    """`backing`: the PostgreSQL, Redis and NATS URLs (the write floor uses them too);
    `own_stack`: the system was started for this run, so its statistics may be stale."""
    seeded = asyncio.run(seed(url, options.sizes))
    if own_stack:
        analyze(backing["EVENTHUB_DATABASE_URL"])
    print(f"Seeded in {seeded.seconds:.1f} s. S1-S3x caller: one heavy user (owns "
          f"{options.sizes.owned} one-off events and {options.sizes.series} weekly series; "
          f"{options.sizes.shared} events shared with them).")  # fmt: skip
    check_seed(url, seeded, options.sizes)
    print(f"load average after seeding: {load_average()}", flush=True)
    references = measure_references(options, workdir, backing)
    results = []
    for scenario in scenarios(seeded, options):
        wait_for_history(url, seeded)
        print(f"{scenario.name}...", flush=True)
        results.append((scenario, drive(url + scenario.path, scenario.script, options, workdir)))
    s2 = next(f for scenario, f in results if scenario.key == "S2")
    wait_for_history(url, seeded)
    lag = history_lag(url, seeded, s2, options, workdir)
    print("exceptions: expanding series with and without them...", flush=True)
    excepted = asyncio.run(
        measure_exceptions(
            url,
            backing["EVENTHUB_DATABASE_URL"],
            backing["EVENTHUB_REDIS_URL"],
            backing["EVENTHUB_NAMESPACE"],
            options.sizes.series,
            EXCEPTION_WINDOWS_SMOKE if options.smoke else EXCEPTION_WINDOWS,
        )
    )
    report(references, results, lag, options.smoke)
    report_exceptions(excepted)
    errors = sum(f.errors for _, f in [*references.rows(), *results]) + lag.errors
    errors += excepted.errors
    if errors:
        print(f"\nFAILED: {errors} requests failed", file=sys.stderr)
    return 1 if errors else 0


def run(options: Options, url: str | None) -> int:
    print(f"load average at start: {load_average()}", flush=True)
    try:
        if url:
            backing = {key: os.environ.get(key, default) for key, default in BACKING.items()}
            with tempfile.TemporaryDirectory(prefix="eventhub-bench-") as scratch:
                return bench_against(url, options, Path(scratch), backing, own_stack=False)
        workers = {"EVENTHUB_GATEWAY_WORKERS": str(options.workers)}
        with isolated_stack("eventhub-bench-", **workers) as (stack, workdir):
            backing = {key: stack.env[key] for key in BACKING}
            return bench_against(stack.gateway_url, options, workdir, backing, own_stack=True)
    finally:
        print(f"load average at end: {load_average()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="small seed, 2 s each; errors only")
    parser.add_argument(
        "--url",
        help="bench a running gateway instead of starting one (give it generous rate limits,"
        f" e.g. {BENCH_SETTINGS['EVENTHUB_RATE_LIMIT_USER']} per user, and --workers workers)",
    )
    parser.add_argument("--seconds", type=float, default=15, help="per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes")
    parser.add_argument("--lag-seconds", type=float, default=20, help="length of the lag run")
    args = parser.parse_args()
    options = Options(
        seconds=2 if args.smoke else args.seconds,
        connections=8 if args.smoke else args.connections,
        threads=args.threads,
        workers=args.workers,
        lag_seconds=3 if args.smoke else args.lag_seconds,
        sizes=SMOKE if args.smoke else FULL,
        smoke=args.smoke,
    )
    sys.exit(run(options, args.url))


if __name__ == "__main__":
    main()
