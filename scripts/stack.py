"""Run EventHub locally: backing servers, migrations and the five processes.

`python -m scripts.stack up` is what `make up` runs; the test suite uses `Stack`
to start an isolated copy of the system on free ports.

A service runs one replica per address in its `EVENTHUB_<SVC>_ADDR` list, each
listening on its own port (`EVENTHUB_GRPC_LISTEN_PORT`) and every process told
the whole list, over which gRPC clients spread their calls. Gateway replicas
listen on consecutive ports from `EVENTHUB_GATEWAY_PORT` on.
"""

import argparse
import asyncio
import contextlib
import json
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

import grpc
import httpx
import nats
import psycopg
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from auth_service.config import AuthSettings
from common.config import CommonSettings
from common.keygen import JWT_KEY_NAME, SERVICE_KEY_NAME, ensure_keys
from event_service.config import EventSettings
from history_service.config import HistorySettings
from scripts import backing
from sharing_service.config import SharingSettings

REPO = Path(__file__).resolve().parent.parent
# In migration order: the event service takes over the sharing service's grants.
SERVICES = ("auth_service", "event_service", "sharing_service", "history_service")
PROCESSES = (*SERVICES, "gateway")
DEFAULT_RUN_DIR = REPO / ".run"
ADDR_VARS = {
    "auth_service": "EVENTHUB_AUTH_ADDR",
    "sharing_service": "EVENTHUB_SHARING_ADDR",
    "event_service": "EVENTHUB_EVENTS_ADDR",
    "history_service": "EVENTHUB_HISTORY_ADDR",
}
# `make up` puts replica i of a service on its default port + i * REPLICA_PORT_STEP
# (gRPC and metrics).
REPLICA_PORT_STEP = 10
DEFAULT_METRICS_PORTS = {
    service: settings.model_fields["metrics_port"].default
    for service, settings in (
        ("auth_service", AuthSettings),
        ("event_service", EventSettings),
        ("sharing_service", SharingSettings),
        ("history_service", HistorySettings),
    )
}
# The metrics ports of an isolated deployment's replicas, as JSON ({"event_service":
# [port, ...]}); the other processes started in it serve no metrics.
METRICS_PORTS_VAR = "EVENTHUB_STACK_METRICS_PORTS"
STOP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_range(count: int) -> int:
    """The first of `count` consecutive free ports."""
    while True:
        first = free_port()
        if first + count <= 65536 and all(_port_free(first + i) for i in range(1, count)):
            return first


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class Stack:
    """The EventHub processes, started with one environment.

    One replica of each service per address in its `*_ADDR` list and
    `gateway_replicas` gateways on consecutive ports. Replica 1 of a process is
    keyed by its name (`event_service`), the others by name and number
    (`event_service-2`); keys name the log and pid files.
    """

    def __init__(self, env: Mapping[str, str], run_dir: Path, gateway_replicas: int = 1) -> None:
        self.env = {**os.environ, **env}
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self.pids = run_dir / "pids"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        self.gateway_replicas = gateway_replicas
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def gateway_urls(self) -> list[str]:
        host = self.env.get("EVENTHUB_GATEWAY_HOST", "127.0.0.1")
        first = int(self.env.get("EVENTHUB_GATEWAY_PORT", "8000"))
        return [f"http://{host}:{first + i}" for i in range(self.gateway_replicas)]

    @property
    def gateway_url(self) -> str:
        return self.gateway_urls[0]

    def addresses(self, service: str) -> list[str]:
        """The addresses of a service's replicas, e.g. `addresses("event_service")`."""
        return service_addresses(self.env, service)

    def replica_count(self, name: str) -> int:
        return self.gateway_replicas if name == "gateway" else len(self.addresses(name))

    def metrics_port(self, service: str, index: int = 0) -> int:
        """Where replica `index` (from 0) of a service serves its metrics (0: nowhere)."""
        if METRICS_PORTS_VAR in self.env:
            ports = json.loads(self.env[METRICS_PORTS_VAR]).get(service, [])
            return ports[index] if index < len(ports) else 0
        return DEFAULT_METRICS_PORTS[service] + index * REPLICA_PORT_STEP

    def metrics_url(self, service: str, index: int = 0) -> str:
        return f"http://127.0.0.1:{self.metrics_port(service, index)}/metrics"

    def replica_keys(self) -> list[str]:
        return [
            replica_key(name, index)
            for name in PROCESSES
            for index in range(self.replica_count(name))
        ]

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
            env={**self.env, **self._metrics_env(name, key), **(extra_env or {})},
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs[key] = proc
        (self.pids / f"{key}.pid").write_text(str(proc.pid))

    def _metrics_env(self, name: str, key: str) -> dict[str, str]:
        """The metrics port of the process `key` if it is a replica of a service (a
        process started with a tag of its own keeps the deployment's setting)."""
        if name not in SERVICES:
            return {}
        for index in range(self.replica_count(name)):
            if replica_key(name, index) == key:
                return {"EVENTHUB_METRICS_PORT": str(self.metrics_port(name, index))}
        return {}

    def start_replica(
        self, name: str, index: int, extra_env: Mapping[str, str] | None = None
    ) -> str:
        """Start replica `index` (from 0) of a process on its own port; returns its key."""
        if name == "gateway":
            first = int(self.env.get("EVENTHUB_GATEWAY_PORT", "8000"))
            port_env = {"EVENTHUB_GATEWAY_PORT": str(first + index)}
        else:
            port = self.addresses(name)[index].rsplit(":", 1)[1]
            port_env = {"EVENTHUB_GRPC_LISTEN_PORT": port}
        key = replica_key(name, index)
        self.start(name, {**(extra_env or {}), **port_env}, tag=key.removeprefix(name))
        return key

    def start_all(self) -> None:
        for name in PROCESSES:
            for index in range(self.replica_count(name)):
                self.start_replica(name, index)

    def is_ready(self) -> bool:
        """Every gateway answers /readyz and every service replica gRPC health checks."""
        return all(map(gateway_ready, self.gateway_urls)) and all(
            service_serving(address) for name in SERVICES for address in self.addresses(name)
        )

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            for key, proc in self.procs.items():
                if proc.poll() is not None:
                    tail = (self.logs / f"{key}.log").read_text()[-3000:]
                    raise RuntimeError(f"{key} exited with {proc.returncode}:\n{tail}")
            return self.is_ready()

        wait_until(ready, timeout, "every gateway's /readyz and every service's health")

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
        """SIGTERM everything at once (the gateways first), then wait for each."""
        for key in reversed(list(self.procs)):
            if self.procs[key].poll() is None:
                self.procs[key].send_signal(signal.SIGTERM)
        for key in list(self.procs):
            self.stop(key)


def service_addresses(env: Mapping[str, str], service: str) -> list[str]:
    var = ADDR_VARS[service]
    default = CommonSettings.model_fields[var.removeprefix("EVENTHUB_").lower()].default
    return [a.strip() for a in env.get(var, default).split(",") if a.strip()]


def replica_key(name: str, index: int) -> str:
    return name if index == 0 else f"{name}-{index + 1}"


def gateway_ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def service_serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def stop_from_pid_files(run_dir: Path) -> None:
    """SIGTERM every process a pid file names, then wait for all (SIGKILL after a while)."""
    stopping = []
    for pid_file in sorted((run_dir / "pids").glob("*.pid")):
        with contextlib.suppress(ProcessLookupError, ValueError):
            pid = int(pid_file.read_text())
            os.killpg(pid, signal.SIGTERM)
            stopping.append(pid)
        pid_file.unlink()
    deadline = time.monotonic() + STOP_TIMEOUT
    for pid in stopping:
        if not backing._wait_exit(pid, max(deadline - time.monotonic(), 0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def running_from_pid_files(stack: Stack) -> bool:
    """Whether the processes the pid files name are exactly the stack's replicas, all alive."""
    pid_files = {path.stem: path for path in stack.pids.glob("*.pid")}
    if set(pid_files) != set(stack.replica_keys()):
        return False
    for key, path in pid_files.items():
        try:
            args = backing._live_command_line(int(path.read_text()))
        except ValueError:
            return False
        if args is None or f"-m {key.split('-')[0]}" not in args:
            return False
    return True


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
def isolated_deployment(
    run_dir: Path, replicas: Mapping[str, int] | None = None, **overrides: str
) -> Iterator[dict[str, str]]:
    """The environment of a deployment that shares nothing with any other.

    A fresh database, one random namespace for Redis keys and NATS subjects and
    streams, free ports, its own signing key. Its data is removed afterwards.
    Backing servers come from the EVENTHUB_*_URL variables or the local defaults
    (started from pip packages if absent). `replicas` ({"event_service": 2,
    "gateway": 2}) reserves ports for more than one replica of a process; pass the
    gateway count on to `Stack`.
    """
    replicas = replicas or {}
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
    keys = ensure_keys(run_dir / "keys")
    env = {
        **backing_env,
        "EVENTHUB_DATABASE_URL": urlunsplit(urlsplit(base_url)._replace(path=f"/{database}")),
        "EVENTHUB_NAMESPACE": namespace,
        "EVENTHUB_GATEWAY_PORT": str(free_port_range(replicas.get("gateway", 1))),
        "EVENTHUB_JWT_PRIVATE_KEY_FILE": str(keys[JWT_KEY_NAME]),
        "EVENTHUB_JWT_PRIVATE_KEY": "",
        "EVENTHUB_SERVICE_KEY_FILE": str(keys[SERVICE_KEY_NAME]),
        "EVENTHUB_SERVICE_KEY": "",
        METRICS_PORTS_VAR: json.dumps(
            {
                service: [free_port() for _ in range(replicas.get(service, 1))]
                for service in SERVICES
            }
        ),
        "EVENTHUB_METRICS_PORT": "0",
        **{
            var: ",".join(f"127.0.0.1:{free_port()}" for _ in range(replicas.get(service, 1)))
            for service, var in ADDR_VARS.items()
        },
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


def replica_addresses(replicas: Mapping[str, int]) -> dict[str, str]:
    """`*_ADDR` lists for services with more than one replica, ports spaced from the first."""
    env = {}
    for service, count in replicas.items():
        if service == "gateway" or count <= 1:
            continue
        var = ADDR_VARS[service]
        host, port = service_addresses(os.environ, service)[0].rsplit(":", 1)
        env[var] = ",".join(f"{host}:{int(port) + i * REPLICA_PORT_STEP}" for i in range(count))
    return env


def up(run_dir: Path, replicas: Mapping[str, int]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    env = backing.ensure_backing_servers(run_dir)
    env.update(backing.ensure_dev_keys(run_dir))
    env.update(replica_addresses(replicas))
    stack = Stack(env, run_dir, gateway_replicas=replicas.get("gateway", 1))
    if running_from_pid_files(stack) and stack.is_ready():
        print(f"EventHub is already up at {stack.gateway_url}")
    else:
        stop_from_pid_files(run_dir)
        ensure_database(stack.env.get("EVENTHUB_DATABASE_URL", backing.DEFAULT_DATABASE_URL))
        stack.migrate()
        stack.start_all()
        stack.wait_ready()
    print(f"EventHub gateway: {stack.gateway_url}")
    for url in stack.gateway_urls[1:]:
        print(f"Gateway replica:  {url}")
    print(f"API docs:         {stack.gateway_url}/docs")
    ports = ", ".join(str(stack.metrics_port(service)) for service in SERVICES)
    print(f"Metrics:          {stack.gateway_url}/metrics; services' /metrics on ports {ports}")
    for service in SERVICES:
        if len(addresses := stack.addresses(service)) > 1:
            print(f"{service + ':':<18}{', '.join(addresses)}")
    print(f"Logs:             {run_dir / 'logs'} (make logs); stop with make down")


# The `--<option>-replicas N` arguments of `up`, one per process.
REPLICA_OPTIONS = {
    "gateway": "gateway",
    "auth": "auth_service",
    "event": "event_service",
    "sharing": "sharing_service",
    "history": "history_service",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    for option, process in REPLICA_OPTIONS.items():
        parser.add_argument(
            f"--{option}-replicas",
            type=_positive,
            default=1,
            dest=process,
            help=f"processes of {process} to run (default 1)",
        )
    args = parser.parse_args()
    run_dir = args.run_dir.resolve()
    if args.command == "up":
        up(run_dir, {process: getattr(args, process) for process in PROCESSES})
    else:
        stop_from_pid_files(run_dir)
        backing.stop_local_servers(run_dir)
        print("EventHub stopped")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


if __name__ == "__main__":
    main()
