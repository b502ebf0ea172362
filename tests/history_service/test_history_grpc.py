"""The history service over gRPC: what the gateway's own validation keeps it from seeing,
and where it takes the caller's access from."""

from collections.abc import Callable

import grpc
import httpx
import pytest

from eventhub.history.v1 import history_pb2 as pb
from eventhub.history.v1.history_pb2_grpc import HistoryServiceStub
from scripts.stack import Stack, wait_until
from tests.conftest import User


@pytest.fixture
def history(service_channel: Callable[[str], grpc.Channel]) -> HistoryServiceStub:
    return HistoryServiceStub(service_channel("history"))


def auth(user: User) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {user.access_token}")]


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


@pytest.fixture
def event_with_three_versions(
    api: httpx.Client, make_user: Callable[..., User]
) -> tuple[User, str]:
    owner = make_user()
    window = {"start_time": "2033-02-01T09:00:00Z", "end_time": "2033-02-01T10:00:00Z"}
    created = api.post("/api/events", json={"title": "v1", **window}, headers=owner.headers)
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]
    for title in ("v2", "v3"):
        changed = api.patch(f"/api/events/{event_id}", json={"title": title}, headers=owner.headers)
        assert changed.status_code == 200, changed.text
    return owner, event_id


def test_calls_need_an_access_token(
    history: HistoryServiceStub, event_with_three_versions: tuple[User, str]
) -> None:
    _, event_id = event_with_three_versions
    error = rpc_error(lambda: history.ListVersions(pb.ListVersionsRequest(event_id=event_id)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_out_of_range_arguments_are_invalid(
    history: HistoryServiceStub, event_with_three_versions: tuple[User, str]
) -> None:
    owner, event_id = event_with_three_versions
    calls = {
        "version_id": lambda: history.GetVersion(
            pb.GetVersionRequest(event_id=event_id, version=0), metadata=auth(owner)
        ),
        "version_id2": lambda: history.DiffVersions(
            pb.DiffVersionsRequest(event_id=event_id, from_version=1, to_version=-2),
            metadata=auth(owner),
        ),
        "limit": lambda: history.ListVersions(
            pb.ListVersionsRequest(event_id=event_id, limit=1001), metadata=auth(owner)
        ),
        "after": lambda: history.GetChangelog(
            pb.GetChangelogRequest(event_id=event_id, after_version=-1), metadata=auth(owner)
        ),
    }
    for field, call in calls.items():
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in (error.details() or ""), field


def test_pages_continue_after_the_last_version_returned(
    history: HistoryServiceStub, event_with_three_versions: tuple[User, str]
) -> None:
    owner, event_id = event_with_three_versions
    first = history.ListVersions(
        pb.ListVersionsRequest(event_id=event_id, limit=2), metadata=auth(owner)
    )
    rest = history.ListVersions(
        pb.ListVersionsRequest(event_id=event_id, limit=2, after_version=first.next_after_version),
        metadata=auth(owner),
    )
    assert [item.version for item in first.items] == [1, 2]
    assert first.next_after_version == 2
    assert [item.version for item in rest.items] == [3]
    assert rest.next_after_version == 0


def test_history_reads_take_access_from_the_event_cache(
    api: httpx.Client, make_user: Callable[..., User], stack: Stack
) -> None:
    """A cached event's history is read without asking the event service for its
    version and the caller's role; a revoked role is gone from the cache before the
    revoke is answered, so the next history read is refused."""
    owner, viewer = make_user(), make_user()
    window = {"start_time": "2033-03-01T09:00:00Z", "end_time": "2033-03-01T10:00:00Z"}
    event_id = api.post("/api/events", json={"title": "v1", **window}, headers=owner.headers)
    event_id = event_id.json()["id"]
    grant = {"users": [{"user_id": viewer.id, "role": "viewer"}]}
    shared = api.post(f"/api/events/{event_id}/share", json=grant, headers=owner.headers)
    assert shared.status_code == 201, shared.text
    history = f"/api/events/{event_id}/history"

    stack.stop("event_service")
    try:
        read = api.get(history, headers=viewer.headers)
        assert read.status_code == 200, read.text
        assert [item["version"] for item in read.json()["items"]] == [1]
    finally:
        stack.start("event_service")
        stack.wait_ready()

    permissions = f"/api/events/{event_id}/permissions"
    wait_until(  # the sharing service's channel to the new event service is up
        lambda: api.get(permissions, headers=owner.headers).status_code == 200,
        10,
        "the sharing service to reach the event service again",
    )
    revoked = api.delete(f"/api/events/{event_id}/permissions/{viewer.id}", headers=owner.headers)
    assert revoked.status_code == 204, revoked.text
    assert api.get(history, headers=viewer.headers).status_code == 404
