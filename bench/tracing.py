"""What tracing costs (issue 17): S1 and S2 of `make bench` with tracing off and with
tracing on at 10% sampling, in the same run.

Two systems of their own, alike but for tracing: one with it off (as `make up` runs),
one exporting to a throwaway OTLP sink (`scripts/otlp_receiver.py`, a process of its
own) with `EVENTHUB_OTEL_SAMPLE_RATIO=0.1`. Each gets a heavy user owning `--owned`
one-off events. Then wrk drives each scenario on one system, then at once on the
other, for `--rounds` rounds, the other first every second round, after the history
of both has caught up:

  S1   cached GET /api/events/{id}                   target: loss <= 5%
  S2   POST /api/events with conflict check           target: loss <= 5%
       (every create a free slot: a 409 is an error)

A round's loss is 1 - on/off of its two runs, back to back; the verdict is on the
median loss of the rounds. This machine's speed drifts by tens of percent within
minutes (other tenants), far more than the 5% to resolve: a pair of short runs sees
nearly the same machine, and the median keeps a round that straddled a change of
speed from deciding. The mean req/s of each system is printed too. With tracing off nothing of it is
installed, so `make bench`'s own S1 and S2 (`bench/load.py`) stay comparable with
earlier figures. It always starts its own systems (`--url` does not apply). Exit
status 1 if a request failed or the sink received no span; a MISS is reported, not a
failure. --smoke: 200 events, one round of 2 s each.

    python -m bench.tracing [--smoke]
"""

import argparse
import asyncio
import statistics
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import User, isolated_stack, register_async
from bench.load import FIRST_CREATE_SLOT, create_script, get_script, load_average
from bench.load_seed import create_one_offs, settle
from bench.wrk import Figures, run_wrk
from scripts.backing import accepts_connections
from scripts.stack import REPO, free_port, wait_until

MAX_LOSS = 0.05
SAMPLE_RATIO = "0.1"
# Each round's creates take hour slots of their own (a round of S2 makes far fewer).
SLOTS_PER_ROUND = 100_000


@dataclass(frozen=True)
class Options:
    seconds: float
    connections: int
    threads: int
    workers: int
    rounds: int
    owned: int


@dataclass
class System:
    """One running system, its heavy user and what each scenario measured on it."""

    label: str
    url: str
    user: User
    events: list[str]
    runs: dict[str, list[Figures]] = field(default_factory=dict)

    def mean_rate(self, scenario: str) -> float:
        return statistics.fmean(f.requests_per_s for f in self.runs[scenario])

    def losses(self, off: "System", scenario: str) -> list[float]:
        """Each round's loss of this system against `off` in the same round."""
        return [
            1 - on.requests_per_s / before.requests_per_s
            for on, before in zip(self.runs[scenario], off.runs[scenario], strict=True)
        ]

    def worst_p99(self, scenario: str) -> float:
        return max(f.p99_ms for f in self.runs[scenario])

    def errors(self) -> int:
        return sum(f.errors for runs in self.runs.values() for f in runs)


async def seeded(label: str, url: str, owned: int) -> System:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        user = await register_async(client, "traced" if label == "on" else "untraced")
        events = await create_one_offs(client, user, owned)
    return System(label, url, user, events)


def settled(system: System) -> None:
    async def wait() -> None:
        async with httpx.AsyncClient(base_url=system.url, timeout=60) as client:
            await settle(client, system.user, system.events[-1])

    asyncio.run(wait())


def scenarios(system: System, options: Options, round_: int) -> dict[str, tuple[str, str]]:
    """Scenario name: (URL, wrk script), as `bench/load.py` drives S1 and S2."""
    token = system.user.token
    first_slot = FIRST_CREATE_SLOT + round_ * SLOTS_PER_ROUND * 3600
    return {
        "S1 cached GET /api/events/{id}": (
            f"{system.url}/api/events/{system.events[0]}",
            get_script(token),
        ),
        f"S2 POST /api/events ({options.owned} owned)": (
            f"{system.url}/api/events",
            create_script(token, options.threads, first_slot),
        ),
    }


def measure(systems: list[System], options: Options, workdir: Path) -> None:
    """Each scenario on both systems, round after round; which system goes first
    alternates by round, so that what the machine does over time (a slowly growing
    database, background work catching up) weighs on both alike."""
    names = list(scenarios(systems[0], options, 0))
    for round_ in range(1, options.rounds + 1):
        for name in names:
            for system in systems if round_ % 2 else systems[::-1]:
                for each in systems:
                    settled(each)
                url, script = scenarios(system, options, round_)[name]
                figures = run_wrk(
                    url,
                    script,
                    seconds=options.seconds,
                    connections=options.connections,
                    threads=options.threads,
                    workdir=workdir,
                )
                system.runs.setdefault(name, []).append(figures)
                print(
                    f"  round {round_}, {name}, tracing {system.label}: "
                    f"{figures.requests_per_s:.0f} req/s, p99 {figures.p99_ms:.1f} ms, "
                    f"errors {figures.errors}",
                    flush=True,
                )


def report(off: System, on: System, spans: int) -> bool:
    """Prints the comparison; whether every scenario is within the target."""
    print(
        f"\n{'scenario':36} {'off req/s':>9} {'on req/s':>9} {'median loss':>11} "
        f"{'each round':>22} {'off p99':>8} {'on p99':>7}  target     verdict"
    )
    all_met = True
    for name in off.runs:
        losses = on.losses(off, name)
        loss = statistics.median(losses)
        met = loss <= MAX_LOSS
        all_met &= met
        spread = " ".join(f"{each:.1%}" for each in losses)
        print(
            f"{name:36} {off.mean_rate(name):9.0f} {on.mean_rate(name):9.0f} {loss:11.1%} "
            f"{spread:>22} {off.worst_p99(name):8.1f} {on.worst_p99(name):7.1f}  "
            f"loss<={MAX_LOSS:.0%}    {'PASS' if met else 'MISS'}"
        )
    print(f"\nthe OTLP sink received {spans} spans (sampling {SAMPLE_RATIO})")
    return all_met


def start_sink(port: int) -> subprocess.Popen[str]:
    sink = subprocess.Popen(
        [sys.executable, "-m", "scripts.otlp_receiver", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: accepts_connections("127.0.0.1", port), 30, "the OTLP sink")
    return sink


def stop_sink(sink: subprocess.Popen[str]) -> int:
    """Stop the sink; how many spans it received."""
    sink.terminate()
    out, _ = sink.communicate(timeout=30)
    counted = [line for line in out.splitlines() if line.startswith("otlp receiver:")]
    return int(counted[-1].split()[2]) if counted else 0


def run(options: Options, smoke: bool) -> int:
    print(f"load average at start: {load_average()}", flush=True)
    port = free_port()
    sink = start_sink(port)
    spans = 0
    try:
        workers = {"EVENTHUB_GATEWAY_WORKERS": str(options.workers)}
        traced = {
            **workers,
            "EVENTHUB_OTEL_ENDPOINT": f"127.0.0.1:{port}",
            "EVENTHUB_OTEL_SAMPLE_RATIO": SAMPLE_RATIO,
        }
        with ExitStack() as running:
            stack_off, workdir = running.enter_context(
                isolated_stack("eventhub-untraced-bench-", **workers)
            )
            stack_on, _ = running.enter_context(isolated_stack("eventhub-traced-bench-", **traced))
            print(f"seeding {options.owned} events on each system...", flush=True)
            off = asyncio.run(seeded("off", stack_off.gateway_url, options.owned))
            on = asyncio.run(seeded("on", stack_on.gateway_url, options.owned))
            measure([off, on], options, workdir)
    finally:
        spans = stop_sink(sink)
        print(f"load average at end: {load_average()}", flush=True)
    report(off, on, spans)
    if smoke:
        print("smoke run: one round of 2 s per scenario, so PASS/MISS says little here;")
        print("only errors (or no span at all) fail it.")
    errors = off.errors() + on.errors()
    if errors or not spans:
        print(f"\nFAILED: {errors} requests failed, {spans} spans received", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="200 events, one round of 2 s")
    parser.add_argument("--seconds", type=float, default=8, help="per scenario and round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes")
    parser.add_argument("--owned", type=int, default=10_000, help="the heavy user's events")
    args, _ = parser.parse_known_args()  # `make bench` passes bench.load's options too
    options = Options(
        seconds=2 if args.smoke else args.seconds,
        connections=8 if args.smoke else args.connections,
        threads=args.threads,
        workers=args.workers,
        rounds=1 if args.smoke else args.rounds,
        owned=200 if args.smoke else args.owned,
    )
    sys.exit(run(options, args.smoke))


if __name__ == "__main__":
    main()
