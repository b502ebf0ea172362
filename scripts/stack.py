"""Run EventHub locally: backing servers, migrations and the five processes.

`python -m scripts.stack up` is what `make up` runs; the test suite uses `Stack`
to start an isolated copy of the system on free ports.
"""

import argparse
import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import nats
import psycopg
import redis

from scripts import backing

REPO = Path(__file__).resolve().parent.parent
SERVICES = ("auth_service", "sharing_service", "event_service", "history_service")
PROCESSES = (*SERVICES, "gateway")
DEFAULT_RUN_DIR = REPO / ".run"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class Stack:
    """The five EventHub processes, started with one environment."""

    def __init__(self, env: Mapping[str, str], run_dir: Path) -> None:
        self.env = {**os.environ, **env}
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self.pids = run_dir / "pids"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def gateway_url(self) -> str:
        host = self.env.get("EVENTHUB_GATEWAY_HOST", "127.0.0.1")
        return f"http://{host}:{self.env.get('EVENTHUB_GATEWAY_PORT', '8000')}"

    def migrate(self) -> None:
        for service in SERVICES:
            subprocess.run(
                [sys.executable, "-m", service, "migrate"], env=self.env, cwd=REPO, check=True
            )

    def start(self, name: str, extra_env: Mapping[str, str] | None = None, tag: str = "") -> None:
        key = name + tag
        log = open(self.logs / f"{key}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", name],
            env={**self.env, **(extra_env or {})},
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs[key] = proc
        (self.pids / f"{key}.pid").write_text(str(proc.pid))

    def start_all(self) -> None:
        for name in PROCESSES:
            self.start(name)

    def is_ready(self) -> bool:
        try:
            return httpx.get(self.gateway_url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            for key, proc in self.procs.items():
                if proc.poll() is not None:
                    tail = (self.logs / f"{key}.log").read_text()[-3000:]
                    raise RuntimeError(f"{key} exited with {proc.returncode}:\n{tail}")
            return self.is_ready()

        wait_until(ready, timeout, "the gateway's /readyz")

    def stop(self, key: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        proc = self.procs.pop(key)
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        (self.pids / f"{key}.pid").unlink(missing_ok=True)
        return proc.returncode

    def stop_all(self) -> None:
        """SIGTERM everything at once (the gateway first), then wait for each."""
        for key in reversed(list(self.procs)):
            if self.procs[key].poll() is None:
                self.procs[key].send_signal(signal.SIGTERM)
        for key in list(self.procs):
            self.stop(key)


def stop_from_pid_files(run_dir: Path) -> None:
    for pid_file in sorted((run_dir / "pids").glob("*.pid")):
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
        pid_file.unlink()


def ensure_database(database_url: str) -> None:
    """Create the configured database if it does not exist yet."""
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(_admin_url(database_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


SERVICE_ADDR_VARS = {
    "auth": "EVENTHUB_AUTH_ADDR",
    "events": "EVENTHUB_EVENTS_ADDR",
    "sharing": "EVENTHUB_SHARING_ADDR",
    "history": "EVENTHUB_HISTORY_ADDR",
}


@contextmanager
def isolated_deployment(run_dir: Path, **overrides: str) -> Iterator[dict[str, str]]:
    """The environment of a deployment that shares nothing with any other.

    A fresh database, one random namespace for Redis keys and NATS subjects and
    streams, free ports, its own signing key. Its data is removed afterwards.
    Backing servers come from the EVENTHUB_*_URL variables or the local defaults
    (started from pip packages if absent).
    """
    backing_env = {
        "EVENTHUB_DATABASE_URL": os.environ.get(
            "EVENTHUB_DATABASE_URL", backing.DEFAULT_DATABASE_URL
        ),
        "EVENTHUB_REDIS_URL": os.environ.get("EVENTHUB_REDIS_URL", backing.DEFAULT_REDIS_URL),
        "EVENTHUB_NATS_URL": os.environ.get("EVENTHUB_NATS_URL", backing.DEFAULT_NATS_URL),
        **backing.ensure_backing_servers(DEFAULT_RUN_DIR),
    }
    namespace = "t" + secrets.token_hex(5)
    database = f"eventhub_{namespace}"
    base_url = backing_env["EVENTHUB_DATABASE_URL"]
    key_file = run_dir / "jwt_signing_key.pem"
    backing.write_signing_key(key_file)
    env = {
        **backing_env,
        "EVENTHUB_DATABASE_URL": urlunsplit(urlsplit(base_url)._replace(path=f"/{database}")),
        "EVENTHUB_NAMESPACE": namespace,
        "EVENTHUB_GATEWAY_PORT": str(free_port()),
        "EVENTHUB_JWT_PRIVATE_KEY_FILE": str(key_file),
        "EVENTHUB_JWT_PRIVATE_KEY": "",
        **{var: f"127.0.0.1:{free_port()}" for var in SERVICE_ADDR_VARS.values()},
        **overrides,
    }
    with psycopg.connect(_admin_url(base_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        yield env
    finally:
        _remove_data(env, base_url, database, namespace)


def _admin_url(database_url: str) -> str:
    parts = urlsplit(database_url.replace("+psycopg", ""))
    return urlunsplit(parts._replace(path="/postgres"))


def _remove_data(env: Mapping[str, str], base_url: str, database: str, namespace: str) -> None:
    with psycopg.connect(_admin_url(base_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    client = redis.Redis.from_url(env["EVENTHUB_REDIS_URL"])
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        client.delete(key)
    client.close()

    async def delete_streams() -> None:
        connection = await nats.connect(env["EVENTHUB_NATS_URL"])
        js = connection.jetstream()
        for stream in await js.streams_info():
            if (stream.config.name or "").startswith(namespace.upper() + "_"):
                await js.delete_stream(stream.config.name)
        await connection.close()

    asyncio.run(delete_streams())


def up(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    env = backing.ensure_backing_servers(run_dir)
    env.update(backing.ensure_dev_signing_key(run_dir))
    stack = Stack(env, run_dir)
    if stack.is_ready():
        print(f"EventHub is already up at {stack.gateway_url}")
    else:
        stop_from_pid_files(run_dir)
        ensure_database(stack.env.get("EVENTHUB_DATABASE_URL", backing.DEFAULT_DATABASE_URL))
        stack.migrate()
        stack.start_all()
        stack.wait_ready()
    print(f"EventHub gateway: {stack.gateway_url}")
    print(f"API docs:         {stack.gateway_url}/docs")
    print(f"Logs:             {run_dir / 'logs'} (make logs); stop with make down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    args = parser.parse_args()
    run_dir = args.run_dir.resolve()
    if args.command == "up":
        up(run_dir)
    else:
        stop_from_pid_files(run_dir)
        backing.stop_local_servers(run_dir)
        print("EventHub stopped")


if __name__ == "__main__":
    main()
