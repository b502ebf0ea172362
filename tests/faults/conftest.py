"""The fault suite's own deployment: every backing server behind a proxy the tests can cut.

It replaces the session `stack` for the tests in this folder (so `api`, `make_user` and
`service_channel` talk to it). Each test starts with every process running and every
proxy up, and whatever a test stopped or cut is restored after it.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from scripts.stack import PROCESSES, Stack, isolated_deployment, wait_until
from tests.conftest import User
from tests.faults.helpers import GRPC_DEADLINE, RECOVERY_TIMEOUT, register, serves_everything
from tests.proxy import FlakyProxy, via

READY_TIMEOUT = 60


@dataclass
class Backing:
    """Proxies in front of the stack's PostgreSQL, Redis and NATS, and the direct URL
    of its database (for the tests' own queries)."""

    postgres: FlakyProxy
    redis: FlakyProxy
    nats: FlakyProxy
    database_url: str

    def all(self) -> tuple[FlakyProxy, ...]:
        return (self.postgres, self.redis, self.nats)


@pytest.fixture(scope="package")
def fault_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    run_dir = tmp_path_factory.mktemp("faults")
    with isolated_deployment(
        run_dir,
        EVENTHUB_TEST_RUN_DIR=str(run_dir),
        EVENTHUB_RATE_LIMIT_LOGIN="100000/minute",
        EVENTHUB_RATE_LIMIT_LOGIN_USER="100000/minute",
        EVENTHUB_RATE_LIMIT_REFRESH="100000/minute",
        EVENTHUB_RATE_LIMIT_USER="1000000/minute",
        EVENTHUB_ARGON2_TIME_COST="1",
        EVENTHUB_ARGON2_MEMORY_KIB="8192",
        EVENTHUB_GRPC_DEADLINE=str(GRPC_DEADLINE),
        # Below the deadline, so a history read that cannot catch up answers 503, not 504.
        EVENTHUB_HISTORY_READ_YOUR_WRITES_TIMEOUT="1",
        EVENTHUB_HISTORY_CONSUMER_RETRY_DELAY="0.2",
        EVENTHUB_EVENT_CACHE_RETRY_AFTER="0.5",
    ) as env:
        yield env


@pytest.fixture(scope="package")
def backing(fault_env: dict[str, str]) -> Iterator[Backing]:
    proxies = Backing(
        postgres=FlakyProxy.to(fault_env["EVENTHUB_DATABASE_URL"]),
        redis=FlakyProxy.to(fault_env["EVENTHUB_REDIS_URL"]),
        nats=FlakyProxy.to(fault_env["EVENTHUB_NATS_URL"]),
        database_url=fault_env["EVENTHUB_DATABASE_URL"].replace("+psycopg", ""),
    )
    yield proxies
    for proxy in proxies.all():
        proxy.close()


@pytest.fixture(scope="package")
def stack(fault_env: dict[str, str], backing: Backing) -> Iterator[Stack]:
    """All five processes, reaching PostgreSQL, Redis and NATS only through `backing`."""
    env = {
        **fault_env,
        "EVENTHUB_DATABASE_URL": via(fault_env["EVENTHUB_DATABASE_URL"], backing.postgres),
        "EVENTHUB_REDIS_URL": via(fault_env["EVENTHUB_REDIS_URL"], backing.redis),
        "EVENTHUB_NATS_URL": via(fault_env["EVENTHUB_NATS_URL"], backing.nats),
    }
    running = Stack(env, Path(fault_env["EVENTHUB_TEST_RUN_DIR"]))
    running.migrate()
    running.start_all()
    try:
        running.wait_ready(READY_TIMEOUT)
        yield running
    finally:
        for proxy in backing.all():
            proxy.set_down(False)
        running.stop_all()


@pytest.fixture(scope="package")
def canary(stack: Stack) -> User:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        return register(client, "canary")


@pytest.fixture(autouse=True)
def restored(stack: Stack, backing: Backing, canary: User) -> Iterator[None]:
    """Every test starts with the whole stack up, and leaves it so."""
    yield
    for proxy in backing.all():
        proxy.set_down(False)
    for name in PROCESSES:
        proc = stack.procs.get(name)
        if proc is not None and proc.poll() is not None:
            stack.stop(name)
        if name not in stack.procs:
            stack.start(name)
    stack.wait_ready(READY_TIMEOUT)
    # Calls between services recover a little after the gateway sees them all.
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        wait_until(lambda: serves_everything(client, canary), RECOVERY_TIMEOUT, "the stack")
