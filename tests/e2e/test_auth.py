"""The Auth section of API.md over HTTP against the running system."""

import concurrent.futures
import time
import uuid

import httpx
import jwt
import pytest

from common.tokens import EXPIRY_LEEWAY
from scripts.stack import Stack, free_port, wait_until
from tests.conftest import User
from tests.e2e.helpers import assert_problem

PASSWORD = "correct horse battery"
EVENT = {
    "title": "before logout",
    "start_time": "2031-01-01T10:00:00Z",
    "end_time": "2031-01-01T11:00:00Z",
}


def new_username() -> str:
    return f"u_{uuid.uuid4().hex[:12]}"


def test_register_login_me_refresh_logout(api: httpx.Client) -> None:
    username = new_username()
    registered = api.post(
        "/api/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    assert registered.status_code == 201
    user = registered.json()
    assert set(user) == {"id", "username", "email", "created_at"}
    assert user["username"] == username

    login = api.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200
    pair = login.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer" and pair["expires_in"] > 0
    header = jwt.get_unverified_header(pair["access_token"])
    assert header["alg"] == "EdDSA" and header["kid"]
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert {"iss", "aud", "sub", "exp", "iat", "jti"} <= claims.keys()

    auth = {"Authorization": f"Bearer {pair['access_token']}"}
    me = api.get("/api/auth/me", headers=auth)
    assert me.status_code == 200 and me.json() == user

    refreshed = api.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200
    new_pair = refreshed.json()
    assert new_pair["refresh_token"] != pair["refresh_token"]

    new_auth = {"Authorization": f"Bearer {new_pair['access_token']}"}
    logout = api.post(
        "/api/auth/logout", headers=new_auth, json={"refresh_token": new_pair["refresh_token"]}
    )
    assert logout.status_code == 204 and logout.content == b""
    assert_problem(api.get("/api/auth/me", headers=new_auth), 401)
    assert_problem(
        api.post("/api/auth/refresh", json={"refresh_token": new_pair["refresh_token"]}), 401
    )
    # Logging out one login leaves the first access token (another jti) working until it expires.
    assert api.get("/api/auth/me", headers=auth).status_code == 200


def test_login_by_email_and_oauth2_form(api: httpx.Client, make_user) -> None:
    user: User = make_user()
    by_email = api.post("/api/auth/login", json={"username": user.email, "password": user.password})
    assert by_email.status_code == 200
    form = api.post("/api/auth/login", data={"username": user.username, "password": user.password})
    assert form.status_code == 200 and form.json()["token_type"] == "bearer"


def test_wrong_credentials_give_the_same_401(api: httpx.Client, make_user) -> None:
    user: User = make_user()
    wrong_password = api.post(
        "/api/auth/login", json={"username": user.username, "password": "x" * 10}
    )
    unknown_user = api.post(
        "/api/auth/login", json={"username": new_username(), "password": "x" * 10}
    )
    assert (
        assert_problem(wrong_password, 401)["detail"] == assert_problem(unknown_user, 401)["detail"]
    )
    assert wrong_password.headers["www-authenticate"] == "Bearer"


def test_duplicate_username_or_email_is_409(api: httpx.Client, make_user) -> None:
    user: User = make_user()
    same_name = api.post(
        "/api/auth/register",
        json={
            "username": user.username.upper(),
            "email": f"{new_username()}@example.com",
            "password": PASSWORD,
        },
    )
    assert_problem(same_name, 409)
    same_email = api.post(
        "/api/auth/register",
        json={"username": new_username(), "email": user.email, "password": PASSWORD},
    )
    assert_problem(same_email, 409)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"username", "email", "password"}),
        ({"username": "ab", "email": "ab@example.com", "password": PASSWORD}, {"username"}),
        ({"username": "x" * 33, "email": "ab@example.com", "password": PASSWORD}, {"username"}),
        ({"username": "bad name!", "email": "ab@example.com", "password": PASSWORD}, {"username"}),
        ({"username": "okname", "email": "not-an-email", "password": PASSWORD}, {"email"}),
        ({"username": "okname", "email": "ok@example.com", "password": "short"}, {"password"}),
        ({"username": "okname", "email": "ok@example.com", "password": "p" * 129}, {"password"}),
        ({"username": 5, "email": ["x"], "password": None}, {"username", "email", "password"}),
    ],
)
def test_register_rejects_bad_input(api: httpx.Client, body: dict, fields: set[str]) -> None:
    problem = assert_problem(api.post("/api/auth/register", json=body), 422)
    assert {error["field"] for error in problem["errors"]} == fields


def test_register_with_bad_input_creates_nothing(api: httpx.Client) -> None:
    username = new_username()
    assert (
        api.post(
            "/api/auth/register", json={"username": username, "email": "bad", "password": PASSWORD}
        ).status_code
        == 422
    )
    login = api.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert_problem(login, 401)


def test_malformed_json_is_422(api: httpx.Client) -> None:
    response = api.post(
        "/api/auth/register", content=b'{"username": ', headers={"content-type": "application/json"}
    )
    assert assert_problem(response, 422)["errors"][0]["field"] == "body"


@pytest.mark.parametrize(
    "body", [{}, {"username": "someone"}, {"password": PASSWORD}, {"username": "", "password": ""}]
)
def test_login_rejects_missing_fields(api: httpx.Client, body: dict) -> None:
    assert_problem(api.post("/api/auth/login", json=body), 422)


@pytest.mark.parametrize("body", [{}, {"refresh_token": ""}, {"refresh_token": 42}])
def test_refresh_rejects_bad_input(api: httpx.Client, body: dict) -> None:
    assert_problem(api.post("/api/auth/refresh", json=body), 422)


def test_garbage_refresh_token_is_401(api: httpx.Client) -> None:
    assert_problem(api.post("/api/auth/refresh", json={"refresh_token": "garbage"}), 401)


def test_reused_refresh_token_revokes_the_family(api: httpx.Client, make_user) -> None:
    user: User = make_user()
    first = api.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert first.status_code == 200
    second_token = first.json()["refresh_token"]
    # The thief (or the victim) presents the rotated token again...
    assert_problem(api.post("/api/auth/refresh", json={"refresh_token": user.refresh_token}), 401)
    # ...and the whole family, including the newest token, stops working.
    assert_problem(api.post("/api/auth/refresh", json={"refresh_token": second_token}), 401)


def test_logout_without_refresh_token_revokes_only_the_access_token(
    api: httpx.Client, make_user
) -> None:
    user: User = make_user()
    created = api.post("/api/events", headers=user.headers, json=EVENT)
    assert created.status_code == 201
    assert api.post("/api/auth/logout", headers=user.headers).status_code == 204
    assert_problem(api.get("/api/auth/me", headers=user.headers), 401)
    # A cached read by id is refused as well, though its event is in the cache.
    refused = api.get(f"/api/events/{created.json()['id']}", headers=user.headers)
    assert_problem(refused, 401)
    assert (
        api.post("/api/auth/refresh", json={"refresh_token": user.refresh_token}).status_code == 200
    )


def test_logged_out_token_stays_refused_through_the_expiry_leeway(
    stack: Stack, start_gateway, make_user
) -> None:
    """Tokens are accepted up to EXPIRY_LEEWAY seconds after they expire: a token logged
    out in that time must stay refused, not come back when its deny-list entry lapses."""
    user: User = make_user()
    auth_addr = f"127.0.0.1:{free_port()}"
    stack.start(
        "auth_service",
        {"EVENTHUB_AUTH_ADDR": auth_addr, "EVENTHUB_ACCESS_TOKEN_TTL": "1"},
        tag="-short-tokens",
    )
    try:
        gateway = start_gateway(EVENTHUB_AUTH_ADDR=auth_addr)
        credentials = {"username": user.username, "password": user.password}
        logged_in: list[httpx.Response] = []

        def login() -> bool:
            logged_in.append(gateway.post("/api/auth/login", json=credentials))
            return logged_in[-1].status_code == 200

        wait_until(login, 30, "a login through the short-token auth service")
        token = logged_in[-1].json()["access_token"]
        expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
        headers = {"Authorization": f"Bearer {token}"}
        wait_until(lambda: time.time() > expires_at + 1, 5, "the token's expiry")
        assert time.time() < expires_at + EXPIRY_LEEWAY - 1, "too slow to test the leeway"
        assert gateway.get("/api/auth/me", headers=headers).status_code == 200
        assert gateway.post("/api/auth/logout", headers=headers).status_code == 204
        assert_problem(gateway.get("/api/auth/me", headers=headers), 401)
    finally:
        stack.stop("auth_service-short-tokens")


def test_password_checks_beyond_their_memory_budget_are_503(stack: Stack, start_gateway) -> None:
    """Room for one 64 MiB argon2 check at a time: a burst of logins gets 503 with
    Retry-After beyond it, never a queue that holds memory without bound."""
    auth_addr = f"127.0.0.1:{free_port()}"
    stack.start(
        "auth_service",
        {
            "EVENTHUB_AUTH_ADDR": auth_addr,
            "EVENTHUB_ARGON2_TIME_COST": "2",
            "EVENTHUB_ARGON2_MEMORY_KIB": "65536",
            "EVENTHUB_PASSWORD_HASHING_MEMORY_MIB": "64",
            "EVENTHUB_PASSWORD_HASHING_WAIT": "0.1",
        },
        tag="-one-hash",
    )
    try:
        gateway = start_gateway(EVENTHUB_AUTH_ADDR=auth_addr)
        username = new_username()
        account = {"username": username, "password": PASSWORD}
        registration = {**account, "email": f"{username}@example.com"}
        registered: list[httpx.Response] = []

        def register() -> bool:
            registered.append(gateway.post("/api/auth/register", json=registration))
            return registered[-1].status_code == 201

        wait_until(register, 30, "a registration through the one-hash auth service")
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(
                pool.map(lambda _: gateway.post("/api/auth/login", json=account), range(20))
            )
        statuses = [answer.status_code for answer in answers]
        assert set(statuses) == {200, 503}, statuses
        busy = next(answer for answer in answers if answer.status_code == 503)
        assert_problem(busy, 503)
        assert busy.headers["Retry-After"] == "1"
    finally:
        stack.stop("auth_service-one-hash")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Token abc", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt", "Bearer abc"],
)
def test_me_without_a_valid_token_is_401(api: httpx.Client, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = api.get("/api/auth/me", headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_forged_tokens_are_401(api: httpx.Client, make_user) -> None:
    user: User = make_user()
    header, payload, signature = user.access_token.split(".")
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(user.access_token)["kid"]
    alg_none = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    forgeries = [
        f"{alg_none}.{payload}.",
        jwt.encode(claims, "secret" * 6, algorithm="HS256", headers={"kid": kid}),
        jwt.encode(
            {**claims, "exp": int(time.time()) - 120},
            "x" * 32,
            algorithm="HS256",
            headers={"kid": kid},
        ),
        f"{header}.{payload}.{signature[:-4]}AAAA",
    ]
    for token in forgeries:
        assert_problem(api.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}), 401)
