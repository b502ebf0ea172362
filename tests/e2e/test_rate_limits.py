"""Rate limits hold across gateway replicas, and Redis outages follow the documented policy."""

import math

import httpx
import pytest

from scripts.stack import free_port
from tests.conftest import User
from tests.e2e.helpers import assert_problem

LOGIN_LIMIT = 6
USER_LIMIT = 8
EVENT = {
    "title": "budget",
    "start_time": "2031-01-01T10:00:00Z",
    "end_time": "2031-01-01T11:00:00Z",
}


@pytest.fixture
def limited_pair(start_gateway) -> tuple[httpx.Client, httpx.Client]:
    limits = {
        "EVENTHUB_RATE_LIMIT_LOGIN": f"{LOGIN_LIMIT}/minute",
        "EVENTHUB_RATE_LIMIT_USER": f"{USER_LIMIT}/minute",
    }
    return start_gateway(**limits), start_gateway(**limits)


def test_login_budget_is_shared_by_two_gateways(limited_pair, make_user) -> None:
    user: User = make_user()
    first, second = limited_pair
    credentials = {"username": user.username, "password": user.password}
    remaining = []
    for attempt in range(LOGIN_LIMIT):
        response = (first if attempt % 2 else second).post("/api/auth/login", json=credentials)
        assert response.status_code == 200, response.text
        assert response.headers["RateLimit-Limit"] == str(LOGIN_LIMIT)
        remaining.append(int(response.headers["RateLimit-Remaining"]))
    assert remaining == list(range(LOGIN_LIMIT - 1, -1, -1))

    refused = first.post("/api/auth/login", json=credentials)
    assert_problem(refused, 429)
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert 0 <= int(refused.headers["RateLimit-Reset"]) <= 60
    # Register shares the budget; failed requests count too.
    assert_problem(second.post("/api/auth/register", json={}), 429)
    # Refresh has a budget of its own.
    assert (
        second.post("/api/auth/refresh", json={"refresh_token": user.refresh_token}).status_code
        == 200
    )


def test_logins_to_one_account_have_a_budget_of_their_own(start_gateway, make_user) -> None:
    """Three addresses (through a trusted proxy), one account: the account's budget
    runs out for all of them; another account is not affected."""
    gateway = start_gateway(
        EVENTHUB_RATE_LIMIT_LOGIN_USER="3/minute", EVENTHUB_TRUSTED_PROXIES='["127.0.0.1"]'
    )
    user: User = make_user()
    other: User = make_user()
    wrong = {"username": user.username, "password": "not the password"}
    for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        response = gateway.post("/api/auth/login", json=wrong, headers={"X-Forwarded-For": address})
        assert_problem(response, 401)
    right = {"username": user.username.upper(), "password": user.password}
    refused = gateway.post("/api/auth/login", json=right, headers={"X-Forwarded-For": "192.0.2.9"})
    assert_problem(refused, 429)
    assert "Retry-After" in refused.headers
    others = {"username": other.username, "password": other.password}
    assert gateway.post("/api/auth/login", json=others).status_code == 200


def test_ipv6_clients_share_a_budget_per_64(start_gateway, make_user) -> None:
    gateway = start_gateway(
        EVENTHUB_RATE_LIMIT_LOGIN="2/minute", EVENTHUB_TRUSTED_PROXIES='["127.0.0.1"]'
    )
    user: User = make_user()
    credentials = {"username": user.username, "password": user.password}

    def login(address: str) -> httpx.Response:
        return gateway.post(
            "/api/auth/login", json=credentials, headers={"X-Forwarded-For": address}
        )

    assert login("2001:db8:7:1::1").status_code == 200
    assert login("2001:db8:7:1::2").status_code == 200
    assert_problem(login("2001:db8:7:1:abcd::3"), 429)  # the same /64
    assert login("2001:db8:7:2::1").status_code == 200  # the next /64


def test_user_budget_is_shared_by_two_gateways(limited_pair, make_user) -> None:
    user: User = make_user()
    other: User = make_user()
    first, second = limited_pair
    remaining = []
    for attempt in range(USER_LIMIT):
        response = (first if attempt % 2 else second).get("/api/auth/me", headers=user.headers)
        assert response.status_code == 200
        assert response.headers["RateLimit-Limit"] == str(USER_LIMIT)
        remaining.append(int(response.headers["RateLimit-Remaining"]))
        # Seconds until one more request is freed: at most one emission interval.
        assert 1 <= int(response.headers["RateLimit-Reset"]) <= math.ceil(60 / USER_LIMIT)
    assert remaining == list(range(USER_LIMIT - 1, -1, -1))
    refused = second.get("/api/auth/me", headers=user.headers)
    assert_problem(refused, 429)
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= math.ceil(60 / USER_LIMIT)
    # Another user's budget is untouched.
    assert first.get("/api/auth/me", headers=other.headers).status_code == 200


def test_cached_reads_by_id_count_against_the_budget(limited_pair, make_user) -> None:
    """A read by id takes its cache read in the admission's Redis round trip: it is
    counted, and refused without its event once the budget is used."""
    user: User = make_user()
    first, second = limited_pair
    created = first.post("/api/events", headers=user.headers, json=EVENT)
    assert created.status_code == 201
    path = f"/api/events/{created.json()['id']}"
    remaining = [
        int(second.get(path, headers=user.headers).headers["RateLimit-Remaining"])
        for _ in range(USER_LIMIT - 1)
    ]
    assert remaining == list(range(USER_LIMIT - 2, -1, -1))
    refused = first.get(path, headers=user.headers)
    assert_problem(refused, 429)
    assert "owner_id" not in refused.json()


def test_redis_down_fails_open_for_limits_and_closed_for_tokens(start_gateway, make_user) -> None:
    user: User = make_user()
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    gateway = start_gateway(EVENTHUB_REDIS_URL=dead_redis, EVENTHUB_RATE_LIMIT_LOGIN="3/minute")
    credentials = {"username": user.username, "password": user.password}
    # Limits still apply, per process.
    for _ in range(3):
        response = gateway.post("/api/auth/login", json=credentials)
        assert response.status_code == 200
        assert "RateLimit-Remaining" in response.headers
    assert_problem(gateway.post("/api/auth/login", json=credentials), 429)
    # The deny-list cannot be read: a possibly revoked token is not accepted.
    refused = gateway.get("/api/auth/me", headers=user.headers)
    assert_problem(refused, 503)
    assert refused.headers["Retry-After"]
    assert_problem(gateway.get("/readyz"), 503)
