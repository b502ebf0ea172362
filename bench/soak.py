"""`make soak`: a long mixed load at a fixed rate, then proof that nothing was lost.

Starts an isolated system, gives ~20 users a few events each (some shared with
editor or viewer rights), and drives 80% reads, 15% updates and 5% creates at
--rate requests/s for --seconds from a separate process (asyncio + httpx) that
records every write acknowledged with a 2xx. Meanwhile it samples the resident
memory of every process. It then checks, and exits 1 if any fails:

- no 5xx, transport error or timeout, and no unexpected 4xx;
- each process's RSS grew less than --max-rss-growth between the end of the
  warm-up and the end of the load;
- every acknowledged write is in the event (its current version and title are
  the last acknowledged ones) and in its history exactly once: the history route
  lists versions 1..N with no gap or duplicate, and the changelog gives each
  acknowledged version the title that write set.
"""

import argparse
import asyncio
import json
import multiprocessing
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import isolated_stack, percentiles, register
from scripts.stack import Stack

SLOT_START = datetime(2031, 1, 6, tzinfo=UTC)
SAMPLE_INTERVAL = 2.0
REQUEST_TIMEOUT = 30.0
# How long the history may take to catch up once the load stops.
CATCH_UP_TIMEOUT = 120.0
PROBE_SECONDS = 10.0
PROBE_CONCURRENCY = 32

# Process key -> (seconds since the load started, resident KiB) samples.
Samples = dict[str, list[tuple[float, int]]]


@dataclass
class Options:
    seconds: float
    rate: float | None  # None: half of what a probe sustains
    users: int
    events_per_user: int
    concurrency: int
    warmup: float
    max_rss_growth: float
    seed: int


@dataclass
class SoakUser:
    index: int
    id: str
    token: str
    own: list[str] = field(default_factory=list)
    editable: list[str] = field(default_factory=list)  # own and shared as editor
    readable: list[str] = field(default_factory=list)  # any role
    next_slot: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Ack:
    """A write the API acknowledged: the event's version it made and the title it set."""

    event_id: str
    version: int
    title: str
    owner: int


def slot_times(slot: int) -> dict[str, str]:
    """Slot n of a user's calendar: an hour that overlaps no other slot."""
    start = SLOT_START + timedelta(hours=2 * slot)
    return {
        "start_time": start.isoformat().replace("+00:00", "Z"),
        "end_time": (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
    }


# Seeding (main process)


def seed(client: httpx.Client, options: Options) -> tuple[list[SoakUser], list[Ack]]:
    users = []
    for index in range(options.users):
        user = register(client, f"soak{index}")
        users.append(SoakUser(index, user.id, user.token))
    acks = []
    for user in users:
        for _ in range(options.events_per_user):
            title = f"seeded {user.index}-{user.next_slot}"
            created = client.post(
                "/api/events",
                json={"title": title, **slot_times(user.next_slot)},
                headers=user.headers,
            )
            created.raise_for_status()
            user.next_slot += 1
            event_id = created.json()["id"]
            user.own.append(event_id)
            user.editable.append(event_id)
            user.readable.append(event_id)
            acks.append(Ack(event_id, 1, title, user.index))
    for user in users:
        editor = users[(user.index + 1) % len(users)]
        viewer = users[(user.index + 2) % len(users)]
        for event_id in user.own[:2]:
            shared = client.post(
                f"/api/events/{event_id}/share",
                json={
                    "users": [
                        {"user_id": editor.id, "role": "editor"},
                        {"user_id": viewer.id, "role": "viewer"},
                    ]
                },
                headers=user.headers,
            )
            shared.raise_for_status()
            editor.editable.append(event_id)
            editor.readable.append(event_id)
            viewer.readable.append(event_id)
    return users, acks


# The load generator (its own process)


@dataclass
class Phase:
    """One run of the load generator; `rate` None sends as fast as `concurrency` allows."""

    name: str
    rate: float | None
    seconds: float
    concurrency: int
    seed: int


@dataclass
class Recorded:
    acks: list[Ack] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)
    sent: int = 0
    late: int = 0  # requests sent over a second after their scheduled time
    elapsed: float = 0.0


async def drive(url: str, users: list[SoakUser], phase: Phase) -> Recorded:
    """Send the mix at `phase.rate` requests/s, recording every outcome and every ack."""
    recorded = Recorded()
    rng = random.Random(phase.seed)
    limits = httpx.Limits(max_connections=phase.concurrency)
    in_flight = asyncio.Semaphore(phase.concurrency)
    sequence = 0

    async def request(op: str, method: str, path: str, user: SoakUser, **kwargs: Any) -> None:
        started = time.monotonic()
        try:
            response = await client.request(method, path, headers=user.headers, **kwargs)
        except httpx.HTTPError as error:
            recorded.failures.append(f"{method} {path}: {error!r}")
            recorded.statuses[(op, "error")] += 1
            return
        finally:
            in_flight.release()
        recorded.latencies[op].append(time.monotonic() - started)
        recorded.statuses[(op, response.status_code)] += 1
        if not response.is_success:
            recorded.failures.append(f"{method} {path}: {response.status_code} {response.text}")
            return
        if op == "create":
            event_id = response.json()["id"]
            user.own.append(event_id)
            user.editable.append(event_id)
            user.readable.append(event_id)
            recorded.acks.append(Ack(event_id, 1, kwargs["json"]["title"], user.index))
        elif op == "update":
            event = response.json()
            recorded.acks.append(Ack(event["id"], event["version"], event["title"], -1))

    def next_request() -> tuple[str, str, str, SoakUser, dict[str, Any]]:
        nonlocal sequence
        sequence += 1
        label = f"{phase.name} {sequence}"
        user = rng.choice(users)
        roll = rng.random()
        if roll < 0.75:
            return "read", "GET", f"/api/events/{rng.choice(user.readable)}", user, {}
        if roll < 0.78:
            return "list", "GET", "/api/events", user, {"params": {"limit": 20}}
        if roll < 0.80:
            path = f"/api/events/{rng.choice(user.readable)}/history"
            return "history", "GET", path, user, {}
        if roll < 0.95:
            body = {"title": f"update {label}"}
            path = f"/api/events/{rng.choice(user.editable)}"
            return "update", "PATCH", path, user, {"json": body}
        body = {"title": f"create {label}", **slot_times(user.next_slot)}
        user.next_slot += 1
        return "create", "POST", "/api/events", user, {"json": body}

    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT, limits=limits) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks: set[asyncio.Task] = set()
        while loop.time() - started < phase.seconds:
            due = started + recorded.sent / phase.rate if phase.rate else loop.time()
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            await in_flight.acquire()
            if loop.time() - due > 1.0:
                recorded.late += 1
            op, method, path, user, kwargs = next_request()
            task = asyncio.create_task(request(op, method, path, user, **kwargs))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            recorded.sent += 1
        await asyncio.gather(*tasks)
        recorded.elapsed = loop.time() - started
    return recorded


def generator_process(url: str, plan: Path, out: Path, phase: Phase) -> None:
    users = [SoakUser(**user) for user in json.loads(plan.read_text())]
    recorded = asyncio.run(drive(url, users, phase))
    out.write_text(
        json.dumps(
            {
                "users": [asdict(user) for user in users],
                "acks": [asdict(ack) for ack in recorded.acks],
                "statuses": [[op, status, n] for (op, status), n in recorded.statuses.items()],
                "latencies": recorded.latencies,
                "failures": recorded.failures,
                "sent": recorded.sent,
                "late": recorded.late,
                "elapsed": recorded.elapsed,
            }
        )
    )


# Memory


def rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants (uvicorn workers), KiB."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        pending.extend(int(child) for child in children)
    return total


def sample_while(generator: multiprocessing.Process, stack: Stack) -> Samples:
    """RSS of every process every SAMPLE_INTERVAL seconds until the generator exits."""
    samples: Samples = defaultdict(list)
    started = time.monotonic()
    while generator.is_alive():
        elapsed = time.monotonic() - started
        for key, proc in stack.procs.items():
            samples[key].append((elapsed, rss_kib(proc.pid)))
        generator.join(SAMPLE_INTERVAL)
    return samples


def memory_violations(samples: Samples, options: Options) -> tuple[list[str], list[str]]:
    lines, violations = [], []
    for key, series in sorted(samples.items()):
        after_warmup = [rss for elapsed, rss in series if elapsed >= options.warmup]
        if len(after_warmup) < 2:
            violations.append(f"{key}: too few memory samples after the warm-up")
            continue
        baseline, final = after_warmup[0], after_warmup[-1]
        growth = (final - baseline) / baseline
        lines.append(
            f"  {key:18} {baseline / 1024:7.1f} MiB -> {final / 1024:7.1f} MiB"
            f" ({growth:+.1%}, peak {max(after_warmup) / 1024:.1f} MiB)"
        )
        if growth >= options.max_rss_growth:
            violations.append(f"{key}: RSS grew {growth:.1%} after the warm-up")
    return lines, violations


# Verification


async def verify(url: str, users: list[SoakUser], acks: list[Ack]) -> list[str]:
    """Every acknowledged write is in its event and in its history exactly once."""
    by_event: dict[str, list[Ack]] = defaultdict(list)
    owner: dict[str, SoakUser] = {}
    for ack in acks:
        by_event[ack.event_id].append(ack)
        if ack.version == 1:
            owner[ack.event_id] = users[ack.owner]
    violations: list[str] = []
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT) as client:

        async def check(event_id: str, event_acks: list[Ack]) -> None:
            async with limit:
                problems = await check_event(client, owner[event_id], event_id, event_acks)
            violations.extend(f"event {event_id}: {problem}" for problem in problems)

        await asyncio.gather(*(check(e, a) for e, a in by_event.items()))
    return violations


async def check_event(
    client: httpx.AsyncClient, user: SoakUser, event_id: str, acks: list[Ack]
) -> list[str]:
    problems = []
    titles: dict[int, str] = {}
    for ack in acks:
        if ack.version in titles:
            problems.append(f"version {ack.version} acknowledged twice")
        titles[ack.version] = ack.title
    last = max(titles)
    if sorted(titles) != list(range(1, last + 1)):
        problems.append(f"acknowledged versions have gaps: {sorted(titles)}")

    current = await client.get(f"/api/events/{event_id}", headers=user.headers)
    if current.status_code != 200:
        return [*problems, f"GET answered {current.status_code}"]
    event = current.json()
    if (event["version"], event["title"]) != (last, titles[last]):
        problems.append(
            f"is at version {event['version']} {event['title']!r},"
            f" the last acknowledged write made {last} {titles[last]!r}"
        )

    versions = await all_pages(client, user, f"/api/events/{event_id}/history")
    numbers = [item["version"] for item in versions]
    if numbers != list(range(1, event["version"] + 1)):
        problems.append(f"history lists versions {numbers}, not 1..{event['version']}")
    changelog = await all_pages(client, user, f"/api/events/{event_id}/changelog")
    logged = {item["version"]: item["changes"].get("title", {}).get("new") for item in changelog}
    for version, title in titles.items():
        if logged.get(version) != title:
            problems.append(f"changelog has {logged.get(version)!r} for v{version}, not {title!r}")
    return problems


async def all_pages(client: httpx.AsyncClient, user: SoakUser, path: str) -> list[dict]:
    """Every item of a paged history route; waits while the history catches up (503)."""
    items: list[dict] = []
    url: str | None = path
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while url is not None:
        response = await client.get(url, headers=user.headers)
        if response.status_code == 503 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            continue
        response.raise_for_status()
        items.extend(response.json()["items"])
        url = response.links.get("next", {}).get("url")
    return items


# Reporting


def status_violations(recorded: dict[str, Any]) -> tuple[list[str], list[str]]:
    lines, violations = [], []
    by_op: dict[str, Counter] = defaultdict(Counter)
    for op, status, count in recorded["statuses"]:
        by_op[op][status] += count
    for op, counts in sorted(by_op.items()):
        latencies = sorted(recorded["latencies"].get(op, [])) or [0.0]
        p50, p99 = (seconds * 1000 for seconds in percentiles(latencies))
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items(), key=str))
        lines.append(
            f"  {op:8} {sum(counts.values()):7d} requests  p50 {p50:6.1f} ms"
            f"  p99 {p99:7.1f} ms  max {latencies[-1] * 1000:7.1f} ms  ({statuses})"
        )
        failed = sum(n for status, n in counts.items() if status == "error" or status >= 400)
        if failed:
            violations.append(f"{op}: {failed} failed requests")
    violations.extend(f"  e.g. {failure[:300]}" for failure in recorded["failures"][:5])
    return lines, violations


def run(options: Options) -> int:
    with isolated_stack("eventhub-soak-") as (stack, workdir):
        return soak(stack, options, workdir)


def run_phase(
    url: str, users: list[SoakUser], phase: Phase, workdir: Path, stack: Stack | None = None
) -> tuple[list[SoakUser], dict[str, Any], Samples]:
    """One load phase in a process of its own; returns the users as it left them (their
    new events), what it recorded, and the processes' memory samples if `stack` is given."""
    plan, out = workdir / f"{phase.name}-plan.json", workdir / f"{phase.name}-recorded.json"
    plan.write_text(json.dumps([asdict(user) for user in users]))
    generator = multiprocessing.get_context("spawn").Process(
        target=generator_process, args=(url, plan, out, phase)
    )
    generator.start()
    samples = sample_while(generator, stack) if stack else {}
    generator.join()
    if generator.exitcode != 0 or not out.exists():
        raise RuntimeError(f"the {phase.name} load generator exited with {generator.exitcode}")
    recorded = json.loads(out.read_text())
    return [SoakUser(**user) for user in recorded["users"]], recorded, samples


def soak(stack: Stack, options: Options, workdir: Path) -> int:
    url = stack.gateway_url
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as client:
        users, acks = seed(client, options)
    violations: list[str] = []
    rate = options.rate
    if rate is None:
        probe = Phase("probe", None, PROBE_SECONDS, PROBE_CONCURRENCY, options.seed + 1)
        users, probed, _ = run_phase(url, users, probe, workdir)
        # Its writes are checked like the others; its errors under overload are only shown.
        acks += [Ack(**ack) for ack in probed["acks"]]
        sustained = probed["sent"] / probed["elapsed"]
        rate = round(sustained / 2, 1)
        print(f"The system sustains about {sustained:.0f} requests/s; soaking at half that.")
        for problem in status_violations(probed)[1]:
            print(f"  (probe) {problem}")

    print(
        f"Soaking {url} at {rate:g} requests/s for {options.seconds:g} s"
        f" ({options.users} users)...",
        flush=True,
    )
    phase = Phase("soak", rate, options.seconds, options.concurrency, options.seed)
    users, recorded, samples = run_phase(url, users, phase, workdir, stack)
    acks += [Ack(**ack) for ack in recorded["acks"]]
    status_lines, status_problems = status_violations(recorded)
    memory_lines, memory_problems = memory_violations(samples, options)
    violations += status_problems + memory_problems
    for key, proc in stack.procs.items():
        if proc.poll() is not None:
            violations.append(f"{key} exited with {proc.returncode} during the soak")
    started = time.monotonic()
    lost = asyncio.run(verify(url, users, acks))
    violations += lost[:20] + ([f"... {len(lost) - 20} more"] if len(lost) > 20 else [])

    achieved = recorded["sent"] / recorded["elapsed"] if recorded["elapsed"] else 0.0
    print(f"\nSent {recorded['sent']} requests in {recorded['elapsed']:.1f} s ({achieved:.1f}/s);")
    print(f"{recorded['late']} of them over a second late (the system fell behind).")
    print("\n".join(status_lines))
    print(f"Resident memory after a {options.warmup:g} s warm-up (must grow < "
          f"{options.max_rss_growth:.0%}):")  # fmt: skip
    print("\n".join(memory_lines))
    events = len({ack.event_id for ack in acks})
    print(
        f"Checked {len(acks)} acknowledged writes to {events} events against the events"
        f" and their history in {time.monotonic() - started:.1f} s."
    )
    if violations:
        print(f"\nFAILED ({len(violations)} problems):", file=sys.stderr)
        print("\n".join(violations), file=sys.stderr)
        return 1
    print("\nOK: no 5xx, memory steady, every acknowledged write stored once.")
    return 0


def rate_argument(value: str) -> float | None:
    return None if value == "auto" else float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600, help="length of the load")
    parser.add_argument(
        "--rate",
        type=rate_argument,
        default=None,
        help="requests per second, or auto (the default): half of what a short probe sustains",
    )
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--events-per-user", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64, help="most requests in flight")
    parser.add_argument(
        "--warmup", type=float, help="seconds before the memory baseline (default: 1/4, ≤ 60)"
    )
    parser.add_argument("--max-rss-growth", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    options = Options(
        seconds=args.seconds,
        rate=args.rate,
        users=args.users,
        events_per_user=args.events_per_user,
        concurrency=args.concurrency,
        warmup=args.warmup if args.warmup is not None else min(60.0, args.seconds / 4),
        max_rss_growth=args.max_rss_growth,
        seed=args.seed,
    )
    sys.exit(run(options))


if __name__ == "__main__":
    main()
