"""A service that is down answers 503 at once, one that does not answer 504 after the gRPC
deadline: problem+json on every route family, never a hang and nothing internal shown."""

import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest

from common.grpc_client import MAX_MESSAGE_BYTES
from scripts.stack import free_port
from tests.conftest import User
from tests.security.test_problem_responses import assert_clean_problem

DEADLINE = 1.0
UPSTREAMS = ("EVENTHUB_EVENTS_ADDR", "EVENTHUB_SHARING_ADDR", "EVENTHUB_HISTORY_ADDR")


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An address that accepts TCP connections and never says a word."""
    with socket.create_server(("127.0.0.1", 0), backlog=128) as server:
        yield f"127.0.0.1:{server.getsockname()[1]}"


def family_requests(event_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", "/api/events"),
        ("GET", f"/api/events/{event_id}"),
        ("GET", f"/api/events/{event_id}/permissions"),
        ("GET", f"/api/events/{event_id}/history"),
    ]


def timed(
    gateway: httpx.Client, method: str, path: str, user: User
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = gateway.request(method, path, headers=user.headers)
    return response, time.monotonic() - started


def test_services_down_are_503_at_once(
    start_gateway: Callable[..., httpx.Client], make_user
) -> None:
    user: User = make_user()
    dead = f"127.0.0.1:{free_port()}"
    gateway = start_gateway(**dict.fromkeys(UPSTREAMS, dead), EVENTHUB_GRPC_DEADLINE="10")
    for method, path in family_requests("8b7d1c4e-0f7a-4d55-9c1e-4a36b1c9e0a1"):
        response, took = timed(gateway, method, path, user)
        assert_clean_problem(response, 503)
        assert response.headers["retry-after"] == "1"
        assert took < 5, (path, took)
    ready = gateway.get("/readyz")
    assert_clean_problem(ready, 503)
    assert ready.json()["checks"] == {
        "auth": True,
        "events": False,
        "sharing": False,
        "history": False,
        "redis": True,
    }


def test_services_that_never_answer_are_504_after_the_deadline(
    start_gateway: Callable[..., httpx.Client], make_user, black_hole: str
) -> None:
    user: User = make_user()
    gateway = start_gateway(
        **dict.fromkeys(UPSTREAMS, black_hole), EVENTHUB_GRPC_DEADLINE=str(DEADLINE)
    )
    for method, path in family_requests("8b7d1c4e-0f7a-4d55-9c1e-4a36b1c9e0a1"):
        response, took = timed(gateway, method, path, user)
        assert_clean_problem(response, 504)
        assert DEADLINE * 0.9 <= took < DEADLINE + 3, (path, took)


@pytest.mark.parametrize("auth", ["down", "silent"])
def test_auth_service_failures_are_503_or_504(
    start_gateway: Callable[..., httpx.Client], make_user, black_hole: str, auth: str
) -> None:
    user: User = make_user()
    address = black_hole if auth == "silent" else f"127.0.0.1:{free_port()}"
    gateway = start_gateway(EVENTHUB_AUTH_ADDR=address, EVENTHUB_GRPC_DEADLINE=str(DEADLINE))
    status = 504 if auth == "silent" else 503
    login = {"username": user.username, "password": user.password}
    started = time.monotonic()
    assert_clean_problem(gateway.post("/api/auth/login", json=login), status)
    # The gateway cannot get the keys to check a token with: not the client's fault (no 401).
    response = gateway.get("/api/events", headers=user.headers)
    assert_clean_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    assert time.monotonic() - started < 2 * DEADLINE + 4


@pytest.fixture
def oversized_upstream() -> Iterator[str]:
    """A gRPC server whose every answer is larger than a channel takes."""
    too_large = b"\0" * (MAX_MESSAGE_BYTES + 1)
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: too_large)

    class AnyMethod(grpc.GenericRpcHandler):
        def service(self, handler_call_details):  # type: ignore[no-untyped-def]
            return handler

    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((AnyMethod(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_an_answer_too_large_to_receive_is_502_without_internals(
    start_gateway: Callable[..., httpx.Client], make_user, oversized_upstream: str
) -> None:
    user: User = make_user()
    gateway = start_gateway(EVENTHUB_EVENTS_ADDR=oversized_upstream)
    response = gateway.get("/api/events", headers=user.headers, params={"q": "uncached"})
    assert_clean_problem(response, 502)
    assert "message" not in response.json()["detail"]
