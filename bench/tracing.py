"""What tracing costs (issue 17): S1 and S2 of `make bench` with tracing off and with
tracing on at 10% sampling, in the same run.

Two systems of their own (A and B), each with a heavy user owning `--owned` one-off
events, and a throwaway OTLP sink (`scripts/otlp_receiver.py`, a process of its own).
Every round restarts both systems' processes, one with tracing on (to the sink, with
`EVENTHUB_OTEL_SAMPLE_RATIO=0.1`), the other with it off (as `make up` runs); then,
after the history of both has caught up, wrk drives each scenario on one system and at
once on the other:

  S1   cached GET /api/events/{id}                   target: loss <= 5%
  S2   POST /api/events with conflict check           target: loss <= 5%
       (every create a free slot: a 409 is an error)

Which system is traced and which is driven first each vary by round, so that each is
traced in half the rounds and tracing goes first in half. A round's loss is
1 - on/off of its two runs, back to back; the verdict is on the median loss of the
rounds. Why so: this machine's speed drifts by tens of percent within minutes (other
tenants), far more than the 5% to resolve, and two systems that are alike differ by a
few percent for as long as their processes live (seen in runs with both off). A pair of
short runs sees nearly the same machine; restarting and swapping the systems keeps
either's own speed from counting for or against tracing; the median keeps a round that
straddled a change of speed from deciding. The mean req/s with tracing off and on are
printed too.

With tracing off nothing of it is installed, so `make bench`'s own S1 and S2
(`bench/load.py`) stay comparable with earlier figures. It always starts its own
systems (`--url` does not apply). Exit status 1 if a request failed or the sink
received no span; a MISS is reported, not a failure. --smoke: 200 events, one round of
2 s each.

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
from scripts.stack import REPO, Stack, free_port, wait_until

MAX_LOSS = 0.05
SAMPLE_RATIO = "0.1"
# Each round's creates take hour slots of their own (a round of S2 makes far fewer).
SLOTS_PER_ROUND = 100_000
WARM_UP_SECONDS = 2


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
    """One system and its heavy user."""

    label: str
    stack: Stack
    user: User
    events: list[str]

    @property
    def url(self) -> str:
        return self.stack.gateway_url

    def restart(self, tracing: dict[str, str]) -> None:
        """Every process again, with `tracing`'s settings."""
        self.stack.stop_all()
        self.stack.env.update(tracing)
        self.stack.start_all()
        self.stack.wait_ready()


@dataclass
class Results:
    """Each scenario's runs, round by round: (traced, untraced)."""

    pairs: dict[str, list[tuple[Figures, Figures]]] = field(default_factory=dict)

    def add(self, scenario: str, traced: Figures, untraced: Figures) -> None:
        self.pairs.setdefault(scenario, []).append((traced, untraced))

    def losses(self, scenario: str) -> list[float]:
        return [1 - on.requests_per_s / off.requests_per_s for on, off in self.pairs[scenario]]

    def mean_rate(self, scenario: str, traced: bool) -> float:
        return statistics.fmean(pair[not traced].requests_per_s for pair in self.pairs[scenario])

    def worst_p99(self, scenario: str, traced: bool) -> float:
        return max(pair[not traced].p99_ms for pair in self.pairs[scenario])

    def errors(self) -> int:
        return sum(f.errors for pairs in self.pairs.values() for pair in pairs for f in pair)


async def seeded(label: str, stack: Stack, owned: int) -> System:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as client:
        user = await register_async(client, f"tracing_{label}")
        events = await create_one_offs(client, user, owned)
    return System(label, stack, user, events)


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


def measure(systems: list[System], options: Options, sink_port: int, workdir: Path) -> Results:
    """Round after round: restart both systems, one traced; then each scenario on both.
    The traced system is A, B, B, A, A, B, ...; the first driven A, B, A, B, ...: each
    system is traced in half the rounds, and the traced one goes first in half."""
    results = Results()
    names = list(scenarios(systems[0], options, 0))
    on = {"EVENTHUB_OTEL_ENDPOINT": f"127.0.0.1:{sink_port}"}
    off = {"EVENTHUB_OTEL_ENDPOINT": ""}
    for round_ in range(1, options.rounds + 1):
        traced = systems[(round_ // 2) % 2]
        for system in systems:
            system.restart(on if system is traced else off)
            warm_up(system, options, round_, workdir)
        order = systems if round_ % 2 else systems[::-1]
        for name in names:
            figures: dict[str, Figures] = {}
            for system in order:
                for each in systems:
                    settled(each)
                url, script = scenarios(system, options, round_)[name]
                figures[system.label] = drive(url, script, options.seconds, options, workdir)
            untraced = next(s for s in systems if s is not traced)
            on, off = figures[traced.label], figures[untraced.label]
            results.add(name, on, off)
            print(
                f"  round {round_}, {name}: traced ({traced.label}) {on.requests_per_s:.0f} "
                f"req/s, untraced ({untraced.label}) {off.requests_per_s:.0f} req/s, "
                f"loss {results.losses(name)[-1]:.1%}, errors {on.errors + off.errors}",
                flush=True,
            )
    return results


def warm_up(system: System, options: Options, round_: int, workdir: Path) -> None:
    """A few seconds of each scenario on freshly started processes (pools, channels and
    caches fill), not measured; its creates take slots of their own."""
    for url, script in scenarios(system, options, options.rounds + round_).values():
        drive(url, script, WARM_UP_SECONDS, options, workdir)


def drive(url: str, script: str, seconds: float, options: Options, workdir: Path) -> Figures:
    return run_wrk(
        url,
        script,
        seconds=seconds,
        connections=options.connections,
        threads=options.threads,
        workdir=workdir,
    )


def report(results: Results, spans: int) -> bool:
    """Prints the comparison; whether every scenario is within the target."""
    print(
        f"\n{'scenario':36} {'off req/s':>9} {'on req/s':>9} {'median loss':>11} "
        f"{'each round':>22} {'off p99':>8} {'on p99':>7}  target     verdict"
    )
    all_met = True
    for name in results.pairs:
        losses = results.losses(name)
        loss = statistics.median(losses)
        met = loss <= MAX_LOSS
        all_met &= met
        spread = " ".join(f"{each:.1%}" for each in losses)
        print(
            f"{name:36} {results.mean_rate(name, False):9.0f} "
            f"{results.mean_rate(name, True):9.0f} {loss:11.1%} {spread:>22} "
            f"{results.worst_p99(name, False):8.1f} {results.worst_p99(name, True):7.1f}  "
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
        settings = {
            "EVENTHUB_GATEWAY_WORKERS": str(options.workers),
            "EVENTHUB_OTEL_SAMPLE_RATIO": SAMPLE_RATIO,
            "EVENTHUB_ACCESS_TOKEN_TTL": "3600",  # outlives the seed, restarts and rounds
        }
        with ExitStack() as running:
            stack_a, workdir = running.enter_context(
                isolated_stack("eventhub-tracing-a-bench-", **settings)
            )
            stack_b, _ = running.enter_context(
                isolated_stack("eventhub-tracing-b-bench-", **settings)
            )
            print(f"seeding {options.owned} events on each system...", flush=True)
            systems = [asyncio.run(seeded(label, stack, options.owned))
                       for label, stack in (("A", stack_a), ("B", stack_b))]  # fmt: skip
            results = measure(systems, options, port, workdir)
    finally:
        spans = stop_sink(sink)
        print(f"load average at end: {load_average()}", flush=True)
    report(results, spans)
    if smoke:
        print("smoke run: one round of 2 s per scenario, so PASS/MISS says little here;")
        print("only errors (or no span at all) fail it.")
    errors = results.errors()
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
