"""PostgreSQL restarting under the services: every connection cut, new ones refused."""

import uuid
from collections.abc import Callable

import httpx
import psycopg
import pytest

from tests.conftest import User
from tests.faults.conftest import Backing
from tests.faults.helpers import (
    assert_unavailable,
    create_event,
    event_body,
    history_versions,
    wait_for_success,
)

pytestmark = pytest.mark.faults


def reads(api: httpx.Client, user: User, url: str) -> list[Callable[[], httpx.Response]]:
    """Requests that use each service's database pool (auth, sharing, events, history)."""
    credentials = {"username": user.username, "password": user.password}
    return [
        lambda: api.post("/api/auth/login", json=credentials),
        lambda: api.get("/api/auth/me", headers=user.headers),
        lambda: api.get(f"{url}/permissions", headers=user.headers),
        lambda: api.patch(url, json={"location": "room 1"}, headers=user.headers),
        lambda: api.get(f"{url}/history", headers=user.headers),
    ]


def test_requests_fail_cleanly_during_the_outage_and_pools_reconnect(
    api: httpx.Client, make_user: Callable[..., User], backing: Backing
) -> None:
    user = make_user()
    url = f"/api/events/{create_event(api, user)['id']}"
    headers = user.headers
    listing = api.get("/api/events", headers=headers).json()  # now cached, as the event is

    with backing.postgres.outage():
        for call in reads(api, user, url):
            assert_unavailable(call)
        assert_unavailable(lambda: api.post("/api/events", json=event_body(), headers=headers))
        # What the cache holds is still answered, and it is current: nothing was written.
        assert api.get(url, headers=headers).json()["version"] == 1
        assert api.get("/api/events", headers=headers).json() == listing
        assert_unavailable(lambda: api.get("/api/events?limit=7", headers=headers))

    for call in reads(api, user, url):
        wait_for_success(call)
    assert api.get(url, headers=headers).json()["version"] == 2


def test_connections_a_restart_cut_are_replaced_before_use(
    api: httpx.Client, make_user: Callable[..., User], backing: Backing
) -> None:
    """No request fails once PostgreSQL is back, though no request saw it go."""
    user = make_user()
    url = f"/api/events/{create_event(api, user)['id']}"
    for call in reads(api, user, url):  # every pool holds connections now
        assert call().is_success

    backing.postgres.set_down(True)
    backing.postgres.set_down(False)

    for call in reads(api, user, url):
        response = call()
        assert response.is_success, (response.request.method, response.request.url, response.text)


def test_a_retried_write_is_applied_once(
    api: httpx.Client, make_user: Callable[..., User], backing: Backing
) -> None:
    user = make_user()
    acknowledged_key, failed_key = str(uuid.uuid4()), str(uuid.uuid4())
    acknowledged_body = event_body(f"acknowledged {acknowledged_key}")
    failed_body = event_body(f"failed at first {failed_key}")

    def post(body: dict, key: str) -> httpx.Response:
        return api.post("/api/events", json=body, headers={**user.headers, "Idempotency-Key": key})

    created = post(acknowledged_body, acknowledged_key)
    assert created.status_code == 201, created.text

    with backing.postgres.outage():
        # The retry of an acknowledged write is answered from the idempotency store.
        replayed = post(acknowledged_body, acknowledged_key)
        assert replayed.status_code == 201
        assert replayed.headers["idempotent-replayed"] == "true"
        assert replayed.json() == created.json()
        # A write that failed left nothing behind and did not use up its key...
        assert_unavailable(lambda: post(failed_body, failed_key))

    # ... so retrying it applies it, and retrying again does not apply it twice.
    applied = wait_for_success(lambda: post(failed_body, failed_key))
    assert applied.status_code == 201 and "idempotent-replayed" not in applied.headers
    again = post(failed_body, failed_key)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == applied.json()["id"]

    for key in (acknowledged_key, failed_key):
        listed = api.get("/api/events", params={"q": key}, headers=user.headers)
        assert listed.status_code == 200, listed.text
        assert len(listed.json()["items"]) == 1, key


def test_a_write_whose_commit_was_not_acknowledged_is_not_applied_again(
    api: httpx.Client, make_user: Callable[..., User], backing: Backing
) -> None:
    """The connection is cut as the create's COMMIT reaches PostgreSQL: the create is
    applied, its client gets a 5xx, and the retry with the same key gets the create's
    answer instead of a second event."""
    user, key, title = make_user(), str(uuid.uuid4()), f"cut at commit {uuid.uuid4()}"
    body = event_body(title)
    headers = {**user.headers, "Idempotency-Key": key}
    backing.postgres.cut_after_commit(title.encode())

    lost = api.post("/api/events", json=body, headers=headers)
    assert lost.status_code == 503, lost.text
    assert backing.postgres.cut.is_set()
    with psycopg.connect(backing.database_url) as db:
        stored = db.execute("SELECT id FROM events.events WHERE title = %s", (title,)).fetchall()
    assert len(stored) == 1  # committed, though the service could not say so

    retried = api.post("/api/events", json=body, headers=headers)
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] == str(stored[0][0])
    listed = api.get("/api/events", params={"q": title}, headers=user.headers).json()["items"]
    assert [item["id"] for item in listed] == [str(stored[0][0])]
    assert history_versions(api, user, listed[0]["id"]) == [1]
