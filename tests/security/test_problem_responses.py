"""Every error is RFC 9457 problem+json with nothing internal in it, across the route
families: unknown routes (404), wrong methods (405 naming every allowed method),
malformed bodies (422), oversized bodies (413)."""

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import User
from tests.e2e.helpers import assert_problem
from tests.security.conftest import END, START, create_event

# Words that only internal errors would show: stack traces, modules, drivers, SQL, gRPC.
INTERNALS = ("Traceback", 'File "', ".py", "grpc", "StatusCode", "psycopg", "sqlalchemy", "SELECT")
LIMIT = 1024 * 1024


def assert_clean_problem(response: httpx.Response, status: int) -> dict:
    body = assert_problem(response, status)
    leaked = [word for word in INTERNALS if word.lower() in response.text.lower()]
    assert not leaked, response.text
    return body


@pytest.fixture
def owner(make_user) -> User:
    return make_user("owner")


@pytest.fixture
def event_id(api: httpx.Client, owner: User) -> str:
    return create_event(api, owner)["id"]


def body_routes(event_id: str, user_id: str) -> list[tuple[str, str]]:
    """Every route that reads a JSON body, from each route family."""
    base = f"/api/events/{event_id}"
    return [
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/refresh"),
        ("POST", "/api/auth/logout"),
        ("POST", "/api/events"),
        ("POST", "/api/events/batch"),
        ("PUT", base),
        ("PATCH", base),
        ("POST", f"{base}/share"),
        ("PUT", f"{base}/permissions/{user_id}"),
        ("POST", f"{base}/rollback/1"),
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api",
        "/api/nope",
        "/api/auth/nope",
        "/api/events/some-id/nope",
        "/api/events/some-id/history/1/extra",
        "/api/events/some-id/permissions/user/extra",
    ],
)
def test_unknown_routes_are_404_problems(api: httpx.Client, owner: User, path: str) -> None:
    assert_clean_problem(api.get(path, headers=owner.headers), 404)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/events", "GET, POST"),
        ("POST", "/api/events/some-id", "GET, PUT, PATCH, DELETE"),
        ("OPTIONS", "/api/events/batch", "POST"),
        ("GET", "/api/events/some-id/share", "POST"),
        ("POST", "/api/events/some-id/permissions", "GET"),
        ("GET", "/api/events/some-id/permissions/user", "PUT, DELETE"),
        ("DELETE", "/api/events/some-id/history", "GET"),
        ("GET", "/api/events/some-id/rollback/1", "POST"),
        ("GET", "/api/auth/login", "POST"),
        ("POST", "/api/auth/me", "GET"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_wrong_methods_are_405_naming_every_allowed_method(
    api: httpx.Client, owner: User, method: str, path: str, allow: str
) -> None:
    response = api.request(method, path, headers=owner.headers)
    assert_clean_problem(response, 405)
    assert response.headers["allow"] == allow


MALFORMED = {
    "truncated": b'{"title": "x", ',
    "not-utf8": b'{"title": "\xff\xfe"}',
    "nested-too-deep": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_json_is_422_on_every_route_family(
    api: httpx.Client, owner: User, event_id: str, content: bytes
) -> None:
    headers = {**owner.headers, "content-type": "application/json"}
    for method, path in body_routes(event_id, owner.id):
        response = api.request(method, path, content=content, headers=headers)
        assert assert_clean_problem(response, 422)["errors"][0]["field"] == "body", path
    assert api.get(f"/api/events/{event_id}", headers=owner.headers).json()["version"] == 1


def _chunks(size: int) -> Iterator[bytes]:
    """A body without Content-Length (sent chunked), so only counting can stop it."""
    yield b'{"title": "'
    for _ in range(size // 65536 + 1):
        yield b"a" * 65536
    yield b'"}'


@pytest.mark.parametrize("sent", ["content-length", "chunked", "chunked-idempotent"])
def test_bodies_over_1_mib_are_413_on_every_route_family(
    api: httpx.Client, owner: User, event_id: str, sent: str
) -> None:
    headers = {**owner.headers, "content-type": "application/json"}
    if sent == "chunked-idempotent":
        headers["Idempotency-Key"] = "big-body"
    for method, path in body_routes(event_id, owner.id):
        if sent == "content-length":
            response = api.request(method, path, content=b"a" * (LIMIT + 1), headers=headers)
        else:
            response = api.request(method, path, content=_chunks(LIMIT), headers=headers)
        assert_clean_problem(response, 413)
    assert api.get(f"/api/events/{event_id}", headers=owner.headers).json()["version"] == 1


def test_a_body_of_exactly_1_mib_is_not_413(api: httpx.Client, owner: User) -> None:
    padding = LIMIT - len(b'{"title": "", "start_time": "", "end_time": "", "pad": ""}')
    padding -= len(START) + len(END) + 1
    body = (
        f'{{"title": "x", "start_time": "{START}", "end_time": "{END}", "pad": "{"p" * padding}"}}'
    )
    assert len(body.encode()) == LIMIT
    response = api.post(
        "/api/events",
        content=body.encode(),
        headers={**owner.headers, "content-type": "application/json"},
    )
    assert response.status_code == 201, response.text[:300]


@pytest.mark.parametrize("number", [1_700_000_000, 0.5, "1700000000"])
def test_numbers_are_not_timestamps(api: httpx.Client, owner: User, number: object) -> None:
    """RFC 3339 only: Unix times are refused, in bodies and in query parameters."""
    body = {"title": "t", "start_time": number, "end_time": END}
    created = api.post("/api/events", json=body, headers=owner.headers)
    assert {e["field"] for e in assert_clean_problem(created, 422)["errors"]} == {"start_time"}
    listed = api.get("/api/events", params={"start": str(number)}, headers=owner.headers)
    assert {e["field"] for e in assert_clean_problem(listed, 422)["errors"]} == {"start"}
