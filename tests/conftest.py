"""Fixtures for the whole suite: one isolated EventHub stack per test session.

Isolation: a fresh PostgreSQL database, a Redis key prefix and NATS stream and
subject names of its own (all from one random namespace), free ports. Backing
servers come from EVENTHUB_DATABASE_URL / EVENTHUB_REDIS_URL / EVENTHUB_NATS_URL
or the local defaults.
"""

import asyncio
import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
import httpx
import nats
import psycopg
import pytest
import redis

from scripts.backing import (
    DEFAULT_DATABASE_URL,
    DEFAULT_NATS_URL,
    DEFAULT_REDIS_URL,
    ensure_backing_servers,
    write_signing_key,
)
from scripts.stack import REPO, Stack, free_port

SERVICE_ADDR_VARS = {
    "auth": "EVENTHUB_AUTH_ADDR",
    "events": "EVENTHUB_EVENTS_ADDR",
    "sharing": "EVENTHUB_SHARING_ADDR",
    "history": "EVENTHUB_HISTORY_ADDR",
}


def _admin_url(database_url: str) -> str:
    parts = urlsplit(database_url.replace("+psycopg", ""))
    return urlunsplit(parts._replace(path="/postgres"))


@pytest.fixture(scope="session")
def namespace() -> str:
    return "t" + secrets.token_hex(5)


@pytest.fixture(scope="session")
def stack_env(namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment of an isolated deployment; cleans its data up afterwards."""
    backing = {
        "EVENTHUB_DATABASE_URL": os.environ.get("EVENTHUB_DATABASE_URL", DEFAULT_DATABASE_URL),
        "EVENTHUB_REDIS_URL": os.environ.get("EVENTHUB_REDIS_URL", DEFAULT_REDIS_URL),
        "EVENTHUB_NATS_URL": os.environ.get("EVENTHUB_NATS_URL", DEFAULT_NATS_URL),
        **ensure_backing_servers(REPO / ".run"),
    }
    base_url = backing["EVENTHUB_DATABASE_URL"]
    database = f"eventhub_{namespace}"
    admin_url = _admin_url(base_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    run_dir = tmp_path_factory.mktemp("run")
    env = {
        **backing,
        "EVENTHUB_DATABASE_URL": urlunsplit(urlsplit(base_url)._replace(path=f"/{database}")),
        "EVENTHUB_NAMESPACE": namespace,
        "EVENTHUB_GATEWAY_PORT": str(free_port()),
        "EVENTHUB_LOG_LEVEL": "INFO",
        # Generous limits so the suite is not throttled; rate-limit tests start their own gateway.
        "EVENTHUB_RATE_LIMIT_LOGIN": "100000/minute",
        "EVENTHUB_RATE_LIMIT_REFRESH": "100000/minute",
        "EVENTHUB_RATE_LIMIT_USER": "1000000/minute",
        # Cheap password hashing keeps the suite fast; production uses the defaults.
        "EVENTHUB_ARGON2_TIME_COST": "1",
        "EVENTHUB_ARGON2_MEMORY_KIB": "8192",
        **{var: f"127.0.0.1:{free_port()}" for var in SERVICE_ADDR_VARS.values()},
    }
    key_file = run_dir / "jwt_signing_key.pem"
    write_signing_key(key_file)
    env["EVENTHUB_JWT_PRIVATE_KEY_FILE"] = str(key_file)
    env["EVENTHUB_JWT_PRIVATE_KEY"] = ""
    env["EVENTHUB_TEST_RUN_DIR"] = str(run_dir)
    yield env
    _cleanup(env, admin_url, database, namespace)


def _cleanup(env: dict[str, str], admin_url: str, database: str, namespace: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    client = redis.Redis.from_url(env["EVENTHUB_REDIS_URL"])
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        client.delete(key)
    client.close()
    _delete_streams(env["EVENTHUB_NATS_URL"], namespace)


def _delete_streams(nats_url: str, namespace: str) -> None:
    async def delete() -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        for stream in await js.streams_info():
            if stream.config.name and stream.config.name.startswith(namespace.upper() + "_"):
                await js.delete_stream(stream.config.name)
        await nc.close()

    asyncio.run(delete())


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


__all__ = ["REPO", "User"]
