"""Requests, checks and background load shared by the fault tests."""

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from scripts.stack import wait_until
from tests.conftest import User

# Low enough that a request stuck on a dead dependency would show.
GRPC_DEADLINE = 3.0
# Slack for the gateway's own work on top of the gRPC deadline, on a busy 2-core machine.
ANSWER_WITHIN = GRPC_DEADLINE + 1.5
RECOVERY_TIMEOUT = 30.0


def event_body(title: str = "", **fields: object) -> dict:
    return {
        "title": title or f"event {uuid.uuid4().hex[:8]}",
        "start_time": "2033-03-01T09:00:00Z",
        "end_time": "2033-03-01T10:00:00Z",
        "allow_conflicts": True,
        **fields,
    }


def create_event(api: httpx.Client, user: User, title: str = "") -> dict:
    created = api.post("/api/events", json=event_body(title), headers=user.headers)
    assert created.status_code == 201, created.text
    return created.json()


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_unavailable(call: Callable[[], httpx.Response]) -> httpx.Response:
    """The request answers 503 problem+json with Retry-After, within the gRPC deadline."""
    response, elapsed = timed(call)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 503
    assert int(response.headers["retry-after"]) >= 1
    assert elapsed < GRPC_DEADLINE, f"the 503 took {elapsed:.1f}s"
    return response


def wait_for_success(
    call: Callable[[], httpx.Response], timeout: float = RECOVERY_TIMEOUT
) -> httpx.Response:
    """Repeats the request until it succeeds (2xx); only prompt 503 problems may come first."""
    last: list[httpx.Response] = []

    def succeeded() -> bool:
        response, elapsed = timed(call)
        last[:] = [response]
        if response.is_success:
            return True
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert elapsed < ANSWER_WITHIN, f"the 503 took {elapsed:.1f}s"
        return False

    try:
        wait_until(succeeded, timeout, "a successful answer", interval=0.1)
    except TimeoutError:
        raise AssertionError(f"still {last[0].status_code}: {last[0].text}") from None
    return last[0]


def register(api: httpx.Client, prefix: str = "user") -> User:
    username = f"{prefix}_{uuid.uuid4().hex[:10]}"
    password = "correct horse battery"
    body = {"username": username, "email": f"{username}@example.com", "password": password}
    registered = api.post("/api/auth/register", json=body)
    assert registered.status_code == 201, registered.text
    tokens = api.post("/api/auth/login", json={"username": username, "password": password})
    assert tokens.status_code == 200, tokens.text
    return User(
        id=registered.json()["id"],
        username=username,
        email=body["email"],
        password=password,
        access_token=tokens.json()["access_token"],
        refresh_token=tokens.json()["refresh_token"],
    )


def serves_everything(api: httpx.Client, user: User) -> bool:
    """Whether a request along every path between the processes succeeds right now."""
    credentials = {"username": user.username, "password": user.password}
    if not api.post("/api/auth/login", json=credentials).is_success:
        return False
    created = api.post("/api/events", json=event_body(), headers=user.headers)
    if not created.is_success:
        return False
    url = f"/api/events/{created.json()['id']}"
    return all(
        api.get(path, headers=user.headers).is_success
        for path in (url, f"{url}/permissions", f"{url}/history")
    )


def history_versions(api: httpx.Client, user: User, event_id: str) -> list[int]:
    """The event's version numbers in its history, once the history service answers."""
    response = wait_for_success(
        lambda: api.get(f"/api/events/{event_id}/history", headers=user.headers)
    )
    return [item["version"] for item in response.json()["items"]]


@dataclass
class Outcome:
    path: str
    status: int
    seconds: float
    problem: bool


@dataclass
class LightLoad:
    """A few requests a second from a background thread, every outcome recorded."""

    base_url: str
    requests: list[tuple[str, str, dict[str, str]]]
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    interval: float = 0.05

    def run(self, stop: threading.Event) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            for method, path, headers in itertools.cycle(self.requests):
                if stop.is_set():
                    return
                started = time.monotonic()
                try:
                    response = client.request(method, path, headers=headers)
                except httpx.HTTPError as error:
                    self.errors.append(f"{method} {path}: {error!r}")
                    continue
                content_type = response.headers.get("content-type", "")
                self.outcomes.append(
                    Outcome(
                        f"{method} {path}",
                        response.status_code,
                        time.monotonic() - started,
                        content_type.startswith("application/problem+json"),
                    )
                )
                stop.wait(self.interval)

    def recovered(self, count: int) -> bool:
        """Whether the last `count` requests all succeeded."""
        last = self.outcomes[-count:]
        return len(last) == count and all(200 <= o.status < 300 for o in last)

    def unavailable(self) -> int:
        return sum(o.status == 503 for o in self.outcomes)

    def check(self) -> None:
        """Every answer was a success or a prompt 503 problem; nothing hung or broke."""
        assert not self.errors, self.errors[:5]
        assert self.outcomes, "the load sent nothing"
        bad = [
            o
            for o in self.outcomes
            if not (200 <= o.status < 300 or (o.status == 503 and o.problem))
            or o.seconds >= ANSWER_WITHIN
        ]
        assert not bad, bad[:5]


@contextmanager
def light_load(
    base_url: str, requests: list[tuple[str, str, dict[str, str]]]
) -> Iterator[LightLoad]:
    load = LightLoad(base_url, requests)
    stop = threading.Event()
    thread = threading.Thread(target=load.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield load
    finally:
        stop.set()
        thread.join(30)
    load.check()
