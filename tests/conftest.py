"""Fixtures for the whole suite: one isolated EventHub stack per test session.

Isolation: a fresh PostgreSQL database, a Redis key prefix and NATS stream and
subject names of its own (all from one random namespace), free ports. Backing
servers come from EVENTHUB_DATABASE_URL / EVENTHUB_REDIS_URL / EVENTHUB_NATS_URL
or the local defaults.
"""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from common.service_identity import SERVICE_METADATA, ServiceTokens
from scripts.stack import SERVICE_ADDR_VARS, Stack, free_port, isolated_deployment, wait_until
from tests.sse import EventStream


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment of an isolated deployment; its data is removed afterwards."""
    run_dir = tmp_path_factory.mktemp("run")
    with isolated_deployment(
        run_dir,
        EVENTHUB_TEST_RUN_DIR=str(run_dir),
        # Generous limits so the suite is not throttled; rate-limit tests start their own gateway.
        EVENTHUB_RATE_LIMIT_LOGIN="100000/minute",
        EVENTHUB_RATE_LIMIT_LOGIN_USER="100000/minute",
        EVENTHUB_RATE_LIMIT_REFRESH="100000/minute",
        EVENTHUB_RATE_LIMIT_USER="1000000/minute",
        # Cheap password hashing keeps the suite fast; production uses the defaults.
        EVENTHUB_ARGON2_TIME_COST="1",
        EVENTHUB_ARGON2_MEMORY_KIB="8192",
    ) as env:
        yield env


@pytest.fixture(scope="session")
def namespace(stack_env: dict[str, str]) -> str:
    return stack_env["EVENTHUB_NAMESPACE"]


@pytest.fixture(scope="session")
def stack(stack_env: dict[str, str]) -> Iterator[Stack]:
    """All five processes of an isolated deployment, ready."""
    running = Stack(stack_env, Path(stack_env["EVENTHUB_TEST_RUN_DIR"]))
    running.migrate()
    running.start_all()
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        yield client


@dataclass
class User:
    id: str
    username: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@pytest.fixture
def make_user(api: httpx.Client) -> Callable[..., User]:
    """Registers and logs in a brand-new user."""

    def make(prefix: str = "user") -> User:
        username = f"{prefix}_{uuid.uuid4().hex[:10]}"
        password = "correct horse battery"
        registered = api.post(
            "/api/auth/register",
            json={"username": username, "email": f"{username}@example.com", "password": password},
        )
        assert registered.status_code == 201, registered.text
        tokens = api.post("/api/auth/login", json={"username": username, "password": password})
        assert tokens.status_code == 200, tokens.text
        pair = tokens.json()
        return User(
            id=registered.json()["id"],
            username=username,
            email=f"{username}@example.com",
            password=password,
            access_token=pair["access_token"],
            refresh_token=pair["refresh_token"],
        )

    return make


@pytest.fixture
def service_channel(stack: Stack) -> Iterator[Callable[[str], grpc.Channel]]:
    """Opens a (sync) gRPC channel to one service of the stack: auth, events, sharing, history."""
    opened: list[grpc.Channel] = []

    def open_channel(service: str) -> grpc.Channel:
        channel = grpc.insecure_channel(stack.env[SERVICE_ADDR_VARS[service]])
        opened.append(channel)
        return channel

    yield open_channel
    for channel in opened:
        channel.close()


@pytest.fixture
def as_service(stack: Stack) -> Callable[[str, "User"], list[tuple[str, str]]]:
    """Call metadata of a call another service (`history`, `sharing`) makes for a user."""
    key = Path(stack.env["EVENTHUB_SERVICE_KEY_FILE"]).read_bytes().strip()

    def metadata(service: str, user: User) -> list[tuple[str, str]]:
        token = ServiceTokens(key, service).mint()
        return [("authorization", f"Bearer {user.access_token}"), (SERVICE_METADATA, token)]

    return metadata


@pytest.fixture
def start_gateway(stack: Stack) -> Iterator[Callable[..., httpx.Client]]:
    """Starts extra gateway processes of the test stack with settings of their own."""
    started: list[tuple[str, httpx.Client]] = []

    def start(**env: str) -> httpx.Client:
        port = free_port()
        tag = f"-extra-{port}"
        stack.start("gateway", {"EVENTHUB_GATEWAY_PORT": str(port), **env}, tag=tag)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        started.append(("gateway" + tag, client))

        def healthy() -> bool:
            try:
                return client.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, 30, f"gateway on port {port}")
        return client

    yield start
    for key, client in started:
        client.close()
        stack.stop(key)


@pytest.fixture
def open_stream(stack: Stack) -> Iterator[Callable[..., EventStream]]:
    """Opens streams (on the stack's gateway unless `base_url` says otherwise); closes them
    after the test."""
    opened: list[EventStream] = []

    def open_(
        user: User, base_url: str | None = None, last_event_id: str | None = None
    ) -> EventStream:
        headers = dict(user.headers)
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        stream = EventStream(base_url or stack.gateway_url, headers)
        opened.append(stream)
        return stream

    yield open_
    for stream in opened:
        stream.close()
