"""The General section of API.md: errors, request ids, body limit, idempotency, operations."""

import hashlib
import uuid

import httpx
import redis

from scripts.stack import wait_until
from tests.e2e.helpers import assert_problem


def test_request_id_is_echoed_or_generated(api: httpx.Client) -> None:
    assert (
        api.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    assert len(api.get("/healthz").headers["x-request-id"]) >= 16


def test_unknown_route_and_wrong_method_are_problems(api: httpx.Client) -> None:
    assert_problem(api.get("/api/nope"), 404)
    assert_problem(api.delete("/api/auth/login"), 405)


def test_oversized_body_is_413(api: httpx.Client) -> None:
    big = b'{"username": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    response = api.post(
        "/api/auth/login", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


def test_operations_endpoints(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and all(ready.json()["checks"].values())
    metrics = api.get("/metrics")
    assert metrics.status_code == 200 and "eventhub_http_requests_total" in metrics.text
    assert api.get("/openapi.json").json()["components"]["securitySchemes"]["OAuth2PasswordBearer"]


def test_idempotent_register_returns_the_first_response(api: httpx.Client) -> None:
    username = f"idem_{uuid.uuid4().hex[:10]}"
    body = {"username": username, "email": f"{username}@example.com", "password": "password123"}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post("/api/auth/register", json=body, headers=headers)
    again = api.post("/api/auth/register", json=body, headers=headers)
    assert first.status_code == 201
    assert again.status_code == 201 and again.json() == first.json()
    # Without the key the same body is a new request: the user exists now.
    assert_problem(api.post("/api/auth/register", json=body), 409)


def test_a_registration_is_replayed_by_the_auth_service_when_the_gateway_forgot(
    api: httpx.Client, stack, namespace: str
) -> None:
    """As after a 5xx that followed the commit: the gateway kept nothing, and the
    repeat gets the registration's answer rather than "already registered"."""
    username = f"idem_{uuid.uuid4().hex[:10]}"
    body = {"username": username, "email": f"{username}@example.com", "password": "password123"}
    key = uuid.uuid4().hex
    scoped = hashlib.sha256(f"anonymous\0/api/auth/register\0{key}".encode()).hexdigest()
    store = redis.Redis.from_url(stack.env["EVENTHUB_REDIS_URL"])

    def register(body: dict) -> httpx.Response:
        response = api.post("/api/auth/register", json=body, headers={"Idempotency-Key": key})
        store.delete(f"{namespace}:idempotency:{scoped}")  # the gateway forgets it
        return response

    first = register(body)
    assert first.status_code == 201, first.text
    again = register(body)
    assert again.status_code == 201 and again.json() == first.json()
    assert_problem(register({**body, "password": "another password"}), 422)


def test_idempotency_key_reused_with_another_body_is_422(api: httpx.Client) -> None:
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post(
        "/api/auth/login", json={"username": "nobody_here", "password": "x"}, headers=headers
    )
    assert first.status_code == 401
    other = api.post(
        "/api/auth/login", json={"username": "someone_else", "password": "x"}, headers=headers
    )
    assert_problem(other, 422)


def test_idempotency_key_must_be_1_to_255_chars(api: httpx.Client) -> None:
    response = api.post(
        "/api/auth/login",
        json={"username": "someone", "password": "whatever"},
        headers={"Idempotency-Key": "k" * 256},
    )
    assert_problem(response, 422)


def test_an_answer_that_carries_tokens_is_never_replayed(api: httpx.Client, make_user) -> None:
    """Login and refresh answers are not stored: a repeat logs in again (new tokens),
    while the key still refuses another body."""
    user = make_user()
    credentials = {"username": user.username, "password": user.password}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post("/api/auth/login", json=credentials, headers=headers)
    again = api.post("/api/auth/login", json=credentials, headers=headers)
    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in again.headers
    assert again.json()["access_token"] != first.json()["access_token"]
    other = {**credentials, "password": "another password"}
    assert_problem(api.post("/api/auth/login", json=other, headers=headers), 422)


def test_a_rate_limited_request_is_not_replayed(start_gateway, make_user) -> None:
    """429 is no answer to keep: once the budget allows, the same key creates the event
    (and only then is its answer replayed)."""
    gateway = start_gateway(EVENTHUB_RATE_LIMIT_USER="2/second")
    user = make_user()
    event = {
        "title": "after the 429",
        "start_time": "2031-05-01T10:00:00Z",
        "end_time": "2031-05-01T11:00:00Z",
    }
    headers = {**user.headers, "Idempotency-Key": uuid.uuid4().hex}
    answers: list[httpx.Response] = []

    def post() -> bool:
        answers.append(gateway.post("/api/events", json=event, headers=headers))
        return answers[-1].status_code == 201

    def spent() -> bool:
        return gateway.get("/api/auth/me", headers=user.headers).status_code == 429

    wait_until(spent, 5, "the user's budget to be spent")
    wait_until(post, 10, "the key to create the event once the budget allows")
    assert 429 in [answer.status_code for answer in answers]
    replayed = gateway.post("/api/events", json=event, headers=headers)
    assert replayed.status_code == 201
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json()["id"] == answers[-1].json()["id"]


def test_writes_are_replayed_by_the_services_when_the_gateway_forgot(
    api: httpx.Client, make_user, stack, namespace: str
) -> None:
    """The key travels to the service that writes (through history for a rollback,
    through sharing for a share) and commits with the write: with the gateway's record
    gone, as after a 5xx, a repeat is still answered as the first and applied once."""
    owner, editor = make_user(), make_user()
    store = redis.Redis.from_url(stack.env["EVENTHUB_REDIS_URL"])

    def post(path: str, key: str, body: dict | None = None) -> httpx.Response:
        headers = {**owner.headers, "Idempotency-Key": key}
        response = api.post(path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        scoped = hashlib.sha256(f"{owner.id}\0{path}\0{key}".encode()).hexdigest()
        assert store.delete(f"{namespace}:idempotency:{scoped}") == 1
        return response

    event = api.post(
        "/api/events",
        json={
            "title": "v1",
            "start_time": "2031-06-01T10:00:00Z",
            "end_time": "2031-06-01T11:00:00Z",
        },
        headers=owner.headers,
    ).json()
    url = f"/api/events/{event['id']}"
    assert api.patch(url, json={"title": "v2"}, headers=owner.headers).status_code == 200

    rollback, share = uuid.uuid4().hex, uuid.uuid4().hex
    grant = {"users": [{"user_id": editor.id, "role": "editor"}]}
    rolled_back = post(f"{url}/rollback/1", rollback)
    shared = post(f"{url}/share", share, grant)
    assert rolled_back.json()["version"] == 3
    revoked = api.delete(f"{url}/permissions/{editor.id}", headers=owner.headers)
    assert revoked.status_code == 204, revoked.text

    assert post(f"{url}/rollback/1", rollback).json() == rolled_back.json()
    assert post(f"{url}/share", share, grant).json() == shared.json()

    versions = api.get(f"{url}/history", headers=owner.headers).json()["items"]
    assert sorted(item["version"] for item in versions) == [1, 2, 3]
    assert api.get(url, headers=owner.headers).json()["version"] == 3
    # The share was not applied again: the editor's role stays revoked.
    assert api.get(url, headers=editor.headers).status_code == 404
