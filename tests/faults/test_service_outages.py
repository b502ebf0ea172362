"""A service killed (SIGKILL) under light load, then restarted: requests that need it
answer 503 promptly while it is down, and succeed again once it is back, untouched."""

import signal
from collections.abc import Callable

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from eventhub.events.v1 import events_pb2
from eventhub.events.v1.events_pb2_grpc import EventServiceStub
from scripts.stack import SERVICE_ADDR_VARS, Stack, wait_until
from tests.conftest import User
from tests.faults.helpers import (
    RECOVERY_TIMEOUT,
    assert_unavailable,
    create_event,
    event_body,
    history_versions,
    light_load,
    wait_for_success,
)

pytestmark = pytest.mark.faults

Call = Callable[[], httpx.Response]


def calls(api: httpx.Client, user: User, event_id: str) -> dict[str, Call]:
    url = f"/api/events/{event_id}"
    headers = user.headers
    credentials = {"username": user.username, "password": user.password}
    return {
        "login": lambda: api.post("/api/auth/login", json=credentials),
        "me": lambda: api.get("/api/auth/me", headers=headers),
        "read event": lambda: api.get(url, headers=headers),
        "create event": lambda: api.post("/api/events", json=event_body(), headers=headers),
        "update event": lambda: api.patch(url, json={"title": "changed"}, headers=headers),
        "permissions": lambda: api.get(f"{url}/permissions", headers=headers),
        "history": lambda: api.get(f"{url}/history", headers=headers),
    }


# For each service: the requests that need it, and some that must keep working without it.
# A cached event read needs no service at all: the gateway answers it from Redis.
NEEDS = {
    "auth_service": (["login", "me"], ["read event", "permissions"]),
    # (Whether a cached read, or a history read of a cached event, survives an
    # event-service outage depends on the gateway or the history service trusting the
    # cache, which they do not for a while after a Redis outage, such as the one an
    # earlier fault test makes; tests/e2e and tests/history_service cover those reads.)
    "event_service": (["create event", "update event", "permissions"], ["me"]),
    "sharing_service": (["permissions"], ["me", "read event", "update event", "history"]),
    "history_service": (["history"], ["read event", "update event"]),
}


@pytest.mark.parametrize("service", list(NEEDS))
def test_killed_service_answers_503_then_recovers(
    service: str, stack: Stack, api: httpx.Client, make_user: Callable[..., User]
) -> None:
    user, loader = make_user(), make_user()
    event, loaded = create_event(api, user), create_event(api, loader)
    assert history_versions(api, user, event["id"]) == [1]
    needed, independent = NEEDS[service]
    requests = calls(api, user, event["id"])
    loaded_url = f"/api/events/{loaded['id']}"
    background = [
        ("GET", loaded_url, loader.headers),
        ("GET", "/api/auth/me", loader.headers),
        ("GET", f"{loaded_url}/permissions", loader.headers),
        ("GET", f"{loaded_url}/history", loader.headers),
    ]

    assert requests["read event"]().is_success  # now in the read cache
    with light_load(stack.gateway_url, background) as load:
        wait_until(lambda: load.recovered(len(background)), 10, "the load to get going")
        assert stack.stop(service, signal.SIGKILL) == -signal.SIGKILL

        for name in needed:
            assert_unavailable(requests[name])
        for name in independent:
            assert requests[name]().is_success, name
        wait_until(lambda: load.unavailable() > 0, 10, "the load to notice the outage")

        stack.start(service)
        for name in needed:
            wait_for_success(requests[name])
        wait_until(lambda: load.recovered(len(background)), RECOVERY_TIMEOUT, "the load")

    if service == "history_service":
        # The update made while history was down is in it now, once.
        assert history_versions(api, user, event["id"]) == [1, 2]


def test_processes_started_while_auth_is_down_answer_503_not_401(
    stack: Stack, api: httpx.Client, make_user: Callable[..., User]
) -> None:
    """Without the signing keys no token can be checked, which is not the client's fault."""
    user = make_user()
    event = create_event(api, user)
    assert stack.stop("auth_service", signal.SIGKILL) == -signal.SIGKILL
    for process in ("event_service", "gateway"):
        assert stack.stop(process) == 0
        stack.start(process)
    events_address = stack.env[SERVICE_ADDR_VARS["events"]]
    wait_until(lambda: serving(events_address), 30, "the new event service")
    wait_until(lambda: gateway_up(stack), 30, "the new gateway")

    assert_unavailable(lambda: api.get(f"/api/events/{event['id']}", headers=user.headers))
    with grpc.insecure_channel(events_address) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            EventServiceStub(channel).GetEvent(
                events_pb2.GetEventRequest(id=event["id"]),
                metadata=[("authorization", f"Bearer {user.access_token}")],
                timeout=5,
            )
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

    stack.start("auth_service")
    wait_for_success(lambda: api.get(f"/api/events/{event['id']}", headers=user.headers))


def serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return True


def gateway_up(stack: Stack) -> bool:
    try:
        return httpx.get(f"{stack.gateway_url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
