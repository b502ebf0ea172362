"""The General section of API.md: errors, request ids, body limit, idempotency, operations."""

import uuid

import httpx

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
