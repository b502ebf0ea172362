"""A wrong password costs the same for an existing and an unknown user, so neither the
answer nor its timing tells whether an account exists. (The per-IP limit that stops
brute force is tested in tests/e2e/test_rate_limits.py.)"""

import statistics
import time

import httpx

from tests.conftest import User

TRIES = 11


def test_wrong_password_answers_alike_for_existing_and_unknown_users(
    api: httpx.Client, make_user
) -> None:
    user: User = make_user("timing")
    logins = {
        "existing": {"username": user.username, "password": "not the password"},
        "unknown": {"username": f"{user.username}_nobody", "password": "not the password"},
    }
    times: dict[str, list[float]] = {name: [] for name in logins}
    answers: dict[str, set[str]] = {name: set() for name in logins}
    for _ in range(TRIES):
        # Interleaved, so that load from anything else on the machine hits both alike.
        for name, credentials in logins.items():
            started = time.perf_counter()
            response = api.post("/api/auth/login", json=credentials)
            times[name].append(time.perf_counter() - started)
            assert response.status_code == 401
            answers[name].add(response.text)
    assert answers["existing"] == answers["unknown"]
    assert len(answers["existing"]) == 1
    ratio = statistics.median(times["existing"]) / statistics.median(times["unknown"])
    assert 0.5 <= ratio <= 2.0, times
