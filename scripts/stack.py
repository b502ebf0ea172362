"""Run EventHub locally: backing servers, migrations and the five processes.

`python -m scripts.stack up` is what `make up` runs; the test suite uses `Stack`
to start an isolated copy of the system on free ports.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx

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
    import psycopg

    parts = urlsplit(database_url.replace("+psycopg", ""))
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


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
