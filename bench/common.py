"""What every benchmark shares: an isolated system to run against, users, percentiles."""

import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.wrk import Figures, run_wrk
from scripts.stack import Stack, free_port, isolated_deployment, wait_until

REPO = Path(__file__).resolve().parent.parent

PASSWORD = "bench password 1"

# Benchmarks measure the system, not its brakes: no rate limit bites, password hashing
# is cheap (seeding registers many users) and only warnings are logged.
BENCH_SETTINGS = {
    "EVENTHUB_RATE_LIMIT_LOGIN": "1000000/minute",
    "EVENTHUB_RATE_LIMIT_LOGIN_USER": "1000000/minute",
    "EVENTHUB_RATE_LIMIT_REFRESH": "1000000/minute",
    "EVENTHUB_RATE_LIMIT_USER": "100000000/minute",
    "EVENTHUB_ARGON2_TIME_COST": "1",
    "EVENTHUB_ARGON2_MEMORY_KIB": "8192",
    "EVENTHUB_LOG_LEVEL": "WARNING",
}


# The systems of bench/stream.py, bench/freebusy.py and bench/icalendar.py: gateways of
# one worker (their ceiling is measured so too), tokens that outlive a long seed.
ONE_WORKER = {"EVENTHUB_GATEWAY_WORKERS": "1", "EVENTHUB_ACCESS_TOKEN_TTL": "3600"}


@dataclass
class User:
    id: str
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def metadata(self) -> list[tuple[str, str]]:
        """The same credentials as gRPC metadata, for benchmarks that call a service."""
        return [("authorization", f"Bearer {self.token}")]


def _new_account(prefix: str) -> dict[str, str]:
    username = f"{prefix}_{uuid.uuid4().hex[:8]}"
    return {"username": username, "email": f"{username}@example.com", "password": PASSWORD}


def _user(account: dict[str, str], registered: httpx.Response, tokens: httpx.Response) -> User:
    tokens.raise_for_status()
    return User(registered.json()["id"], account["username"], tokens.json()["access_token"])


def _login_body(account: dict[str, str]) -> dict[str, str]:
    return {"username": account["username"], "password": PASSWORD}


def register(client: httpx.Client, prefix: str) -> User:
    """A new user (`prefix_` + random suffix), logged in."""
    account = _new_account(prefix)
    registered = client.post("/api/auth/register", json=account)
    registered.raise_for_status()
    return _user(account, registered, client.post("/api/auth/login", json=_login_body(account)))


async def register_async(client: httpx.AsyncClient, prefix: str) -> User:
    """`register` for an async client, so that many users can be made at once."""
    account = _new_account(prefix)
    registered = await client.post("/api/auth/register", json=account)
    registered.raise_for_status()
    tokens = await client.post("/api/auth/login", json=_login_body(account))
    return _user(account, registered, tokens)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 (inclusive method: with few samples p99 stays within them)."""
    if not samples:
        return 0.0, 0.0
    if len(samples) < 2:
        return samples[0], samples[0]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[98]


def report(name: str, samples: list[float], target: str, note: str = "") -> None:
    """One line: the scenario, its sample count, p50 and p99 in ms, and its target."""
    p50, p99 = percentiles(samples)
    print(f"{name:<44} n={len(samples):<5} p50={p50:8.2f} ms  p99={p99:8.2f} ms  "
          f"target: {target}  {note}")  # fmt: skip


@contextmanager
def isolated_stack(prefix: str, **settings: str) -> Iterator[tuple[Stack, Path]]:
    """A migrated, running system of its own (see `isolated_deployment`) and a scratch
    directory; both are removed afterwards. `settings` add to BENCH_SETTINGS."""
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        workdir = Path(scratch)
        with isolated_deployment(workdir, **{**BENCH_SETTINGS, **settings}) as env:
            stack = Stack(env, workdir)
            stack.migrate()
            stack.start_all()
            try:
                stack.wait_ready()
                yield stack, workdir
            finally:
                stack.stop_all()


def measure_ceiling(seconds: float, connections: int, workdir: Path) -> Figures:
    """The ceiling of a one-worker gateway: a bare FastAPI app served the same way
    (uvloop, httptools), `GET /ping` driven by wrk."""
    port = free_port()
    app = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "bench.ceiling_app:app", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning",
        ],
        cwd=REPO,
        env=os.environ.copy(),
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(f"{base}/ping"), 30, "the ceiling app")
        return run_wrk(
            f"{base}/ping",
            'wrk.method = "GET"\n',
            seconds=seconds,
            connections=connections,
            threads=2,
            workdir=workdir,
        )
    finally:
        app.terminate()
        app.wait(30)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
