"""Redis down: tokens fail closed, rate limits fail open, events and listings bypass
their cache."""

from collections.abc import Callable

import grpc
import httpx
import pytest

from eventhub.events.v1 import events_pb2
from eventhub.events.v1.events_pb2_grpc import EventServiceStub
from tests.conftest import User
from tests.faults.conftest import Backing
from tests.faults.helpers import assert_unavailable, create_event, wait_for_success

pytestmark = pytest.mark.faults


def test_redis_outage_follows_the_documented_policy(
    api: httpx.Client,
    make_user: Callable[..., User],
    backing: Backing,
    service_channel: Callable[[str], grpc.Channel],
) -> None:
    user = make_user()
    event = create_event(api, user, "before the outage")
    url = f"/api/events/{event['id']}"
    cached = api.get(url, headers=user.headers)  # now in the event cache
    assert cached.status_code == 200 and cached.json()["version"] == 1
    listing = api.get("/api/events", headers=user.headers)  # now in the listing cache
    assert [item["title"] for item in listing.json()["items"]] == ["before the outage"]
    credentials = {"username": user.username, "password": user.password}
    events = EventServiceStub(service_channel("events"))
    metadata = [("authorization", f"Bearer {user.access_token}")]

    with backing.redis.outage():
        # The token deny-list cannot be read: no authenticated request is let through.
        assert_unavailable(lambda: api.get(url, headers=user.headers))
        assert_unavailable(lambda: api.get("/api/auth/me", headers=user.headers))
        # Rate limits fall back to an in-process window: login still works, and counts.
        login = api.post("/api/auth/login", json=credentials)
        assert login.status_code == 200, login.text
        assert int(login.headers["RateLimit-Remaining"]) >= 0
        # An Idempotency-Key cannot be honoured without its store.
        assert_unavailable(
            lambda: api.post("/api/auth/login", json=credentials, headers={"Idempotency-Key": "k"})
        )
        ready = api.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] is False
        # The event service reads and writes PostgreSQL directly.
        updated = events.UpdateEvent(
            events_pb2.UpdateEventRequest(
                id=event["id"], patch=events_pb2.EventPatch(title="during the outage")
            ),
            metadata=metadata,
            timeout=5,
        )
        assert updated.version == 2
        read = events.GetEvent(events_pb2.GetEventRequest(id=event["id"]), metadata=metadata)
        assert (read.version, read.title) == (2, "during the outage")

    # Back: nothing stale is served from the entry cached before the outage.
    after = wait_for_success(lambda: api.get(url, headers=user.headers)).json()
    assert (after["version"], after["title"]) == (2, "during the outage")
    listing = wait_for_success(lambda: api.get("/api/events", headers=user.headers))
    assert [item["title"] for item in listing.json()["items"]] == ["during the outage"]
    wait_for_success(lambda: api.get("/readyz"))
