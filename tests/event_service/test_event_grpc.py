"""The event service over gRPC: its own validation and role checks, the RPCs the
history service uses, change notifications, the cache, and outages of Redis and NATS."""

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import grpc
import nats
import nats.errors
import orjson
import psycopg
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.errors import problem_from_rpc_error
from common.notifications import event_subject
from common.timeutil import to_timestamp
from eventhub.common.v1 import common_pb2
from eventhub.events.v1 import events_pb2 as pb
from eventhub.events.v1.events_pb2_grpc import EventServiceStub
from eventhub.sharing.v1 import sharing_pb2
from eventhub.sharing.v1.sharing_pb2_grpc import SharingServiceStub
from scripts.stack import Stack, free_port, wait_until
from tests.conftest import User


def auth(user: User) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {user.access_token}")]


def ts(text: str):  # type: ignore[no-untyped-def]
    return to_timestamp(datetime.fromisoformat(text).replace(tzinfo=UTC))


def event_input(
    start: str = "2026-04-01T09:00", end: str = "2026-04-01T10:00", **fields: object
) -> pb.EventInput:
    return pb.EventInput(**{"title": "Review", **fields}, start_time=ts(start), end_time=ts(end))


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def error_fields(error: grpc.RpcError) -> list[str]:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    return [e["field"] for e in problem_from_rpc_error(error)["errors"]]


def database_url(stack: Stack) -> str:
    return stack.env["EVENTHUB_DATABASE_URL"].replace("+psycopg", "")


def create(events: EventServiceStub, user: User, **fields: object) -> pb.Event:
    return events.CreateEvent(
        pb.CreateEventRequest(event=event_input(**fields)), metadata=auth(user)
    )


def share(sharing: SharingServiceStub, owner: User, event_id: str, user: User, role: int) -> None:
    target = sharing_pb2.ShareTarget(user_id=user.id, role=role)  # type: ignore[arg-type]
    sharing.ShareEvent(
        sharing_pb2.ShareEventRequest(event_id=event_id, users=[target]), metadata=auth(owner)
    )


def test_calls_need_an_access_token(events: EventServiceStub) -> None:
    error = rpc_error(lambda: events.CreateEvent(pb.CreateEventRequest(event=event_input())))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    bad = [("authorization", "Bearer not-a-token")]
    error = rpc_error(lambda: events.GetEvent(pb.GetEventRequest(id="x"), metadata=bad))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_service_validates_input_itself(events: EventServiceStub, make_user) -> None:
    user = make_user()
    no_times = pb.CreateEventRequest(event=pb.EventInput(title=""))
    error = rpc_error(lambda: events.CreateEvent(no_times, metadata=auth(user)))
    assert error_fields(error) == ["title", "start_time", "end_time"]
    bad_zone_and_rule = pb.CreateEventRequest(
        event=event_input(timezone="Nowhere/City", is_recurring=True, recurrence_rule="FREQ=X")
    )
    error = rpc_error(lambda: events.CreateEvent(bad_zone_and_rule, metadata=auth(user)))
    assert error_fields(error) == ["timezone"]
    batch = pb.BatchCreateEventsRequest(
        events=[event_input(), event_input(recurrence_rule="FREQ=DAILY"), event_input(title="")]
    )
    error = rpc_error(lambda: events.BatchCreateEvents(batch, metadata=auth(user)))
    assert error_fields(error) == ["events.1.recurrence_rule", "events.2.title"]
    empty = pb.BatchCreateEventsRequest()
    assert error_fields(
        rpc_error(lambda: events.BatchCreateEvents(empty, metadata=auth(user)))
    ) == ["events"]
    page = pb.ListEventsRequest(limit=500, cursor="???")
    error = rpc_error(lambda: events.ListEvents(page, metadata=auth(user)))
    assert error_fields(error) == ["limit", "cursor"]
    unknown_role = pb.ListEventsRequest(role=7)  # type: ignore[arg-type]
    error = rpc_error(lambda: events.ListEvents(unknown_role, metadata=auth(user)))
    assert error_fields(error) == ["role"]
    no_window = pb.ExpandEventsRequest()
    error = rpc_error(lambda: events.ExpandEvents(no_window, metadata=auth(user)))
    assert error_fields(error) == ["start", "end"]


def test_get_event_version_outlives_the_event(
    events: EventServiceStub, sharing: SharingServiceStub, make_user
) -> None:
    owner, viewer, stranger = make_user(), make_user(), make_user()
    event = create(events, owner)
    share(sharing, owner, event.id, viewer, common_pb2.ROLE_VIEWER)
    patch = pb.UpdateEventRequest(id=event.id, patch=pb.EventPatch(title="Renamed"))
    assert events.UpdateEvent(patch, metadata=auth(owner)).version == 2
    version = pb.GetEventVersionRequest(id=event.id)
    assert events.GetEventVersion(version, metadata=auth(viewer)) == pb.GetEventVersionResponse(
        version=2, deleted=False, role=common_pb2.ROLE_VIEWER
    )
    events.DeleteEvent(pb.DeleteEventRequest(id=event.id), metadata=auth(owner))
    assert events.GetEventVersion(version, metadata=auth(viewer)) == pb.GetEventVersionResponse(
        version=3, deleted=True, role=common_pb2.ROLE_VIEWER
    )
    gone = rpc_error(lambda: events.GetEvent(pb.GetEventRequest(id=event.id), metadata=auth(owner)))
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    hidden = rpc_error(lambda: events.GetEventVersion(version, metadata=auth(stranger)))
    assert hidden.code() == grpc.StatusCode.NOT_FOUND


def test_rollback_restores_content_as_a_new_version(
    events: EventServiceStub, sharing: SharingServiceStub, make_user, as_service
) -> None:
    owner, editor, viewer = make_user(), make_user(), make_user()
    event = create(events, owner)
    share(sharing, owner, event.id, editor, common_pb2.ROLE_EDITOR)
    share(sharing, owner, event.id, viewer, common_pb2.ROLE_VIEWER)
    moved = pb.ReplaceEventRequest(
        id=event.id, event=event_input("2026-04-02T09:00", "2026-04-02T11:00", title="Moved")
    )
    assert events.ReplaceEvent(moved, metadata=auth(owner)).version == 2
    original = event_input()

    def via_history(user: User) -> list[tuple[str, str]]:
        return as_service("history", user)

    rollback = pb.RollbackEventRequest(
        id=event.id, event=original, rolled_back_to=1, expected_version=2
    )
    denied = rpc_error(lambda: events.RollbackEvent(rollback, metadata=via_history(viewer)))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    restored = events.RollbackEvent(rollback, metadata=via_history(editor))
    assert (restored.version, restored.title, restored.start_time) == (
        3,
        "Review",
        original.start_time,
    )
    assert restored.role == common_pb2.ROLE_EDITOR
    stale = rpc_error(lambda: events.RollbackEvent(rollback, metadata=via_history(editor)))
    assert stale.code() == grpc.StatusCode.FAILED_PRECONDITION
    blocker = create(events, owner, start="2026-04-02T10:00", end="2026-04-02T10:30")
    back_to_moved = pb.RollbackEventRequest(id=event.id, event=moved.event, rolled_back_to=2)
    clash = rpc_error(lambda: events.RollbackEvent(back_to_moved, metadata=via_history(editor)))
    assert clash.code() == grpc.StatusCode.ABORTED
    # The editor has no role on the blocker: its times, not its id.
    assert [c.get("event_id") for c in problem_from_rpc_error(clash)["conflicts"]] == [None]
    clash = rpc_error(lambda: events.RollbackEvent(back_to_moved, metadata=via_history(owner)))
    assert [c["event_id"] for c in problem_from_rpc_error(clash)["conflicts"]] == [blocker.id]
    # A rollback to the current content is still a new version.
    same = pb.RollbackEventRequest(id=event.id, event=original, rolled_back_to=1)
    assert events.RollbackEvent(same, metadata=via_history(owner)).version == 4


def test_every_change_is_published_once_with_its_version(
    events: EventServiceStub, make_user, stack: Stack
) -> None:
    owner = make_user()
    event = create(events, owner)
    patch = pb.UpdateEventRequest(id=event.id, patch=pb.EventPatch(location="Room 7"))
    events.UpdateEvent(patch, metadata=auth(owner))
    events.DeleteEvent(pb.DeleteEventRequest(id=event.id), metadata=auth(owner))

    async def published() -> list[tuple[str, dict]]:
        client = await nats.connect(stack.env.get("EVENTHUB_NATS_URL", "nats://127.0.0.1:4222"))
        try:
            subject = event_subject(stack.env["EVENTHUB_NAMESPACE"], event.id)
            subscription = await client.jetstream().subscribe(subject, ordered_consumer=True)
            received: list[tuple[str, dict]] = []
            deadline = time.monotonic() + 10
            while len(received) < 3 and time.monotonic() < deadline:
                try:
                    message = await subscription.next_msg(timeout=1)
                except nats.errors.TimeoutError:
                    continue
                assert message.headers is not None
                received.append((message.headers["Nats-Msg-Id"], orjson.loads(message.data)))
            await subscription.unsubscribe()
            return received
        finally:
            await client.close()

    messages = asyncio.run(published())
    assert [msg_id for msg_id, _ in messages] == [f"{event.id}:{v}" for v in (1, 2, 3)]
    created, updated, deleted = (payload for _, payload in messages)
    assert [m["change_type"] for m in (created, updated, deleted)] == [
        "created",
        "updated",
        "deleted",
    ]
    assert {m["actor_id"] for m in (created, updated, deleted)} == {owner.id}
    assert created["changes"]["title"] == {"old": None, "new": "Review"}
    assert created["snapshot"]["start_time"] == "2026-04-01T09:00:00Z"
    assert set(created["snapshot"]) == {
        "id", "title", "description", "location", "start_time", "end_time", "timezone",
        "is_recurring", "recurrence_rule", "owner_id", "version", "created_at", "updated_at",
        "overrides",
    }  # fmt: skip
    assert updated["changes"] == {"location": {"old": "", "new": "Room 7"}}
    assert (updated["snapshot"]["location"], updated["snapshot"]["version"]) == ("Room 7", 2)
    assert (deleted["changes"], deleted["snapshot"]["version"]) == ({}, 3)
    assert deleted["snapshot"]["location"] == "Room 7"


def test_a_cached_event_is_never_served_without_a_role(
    events: EventServiceStub, make_user, stack: Stack
) -> None:
    owner, stranger = make_user(), make_user()
    event = create(events, owner)
    request = pb.GetEventRequest(id=event.id)
    assert events.GetEvent(request, metadata=auth(owner)).title == "Review"
    client = redis.Redis.from_url(stack.env.get("EVENTHUB_REDIS_URL", "redis://127.0.0.1:6379/0"))
    key = f"{stack.env['EVENTHUB_NAMESPACE']}:events:event:{event.id}"
    try:
        assert client.hget(key, "version") == b"1"
        hidden = rpc_error(lambda: events.GetEvent(request, metadata=auth(stranger)))
        assert hidden.code() == grpc.StatusCode.NOT_FOUND
        patch = pb.UpdateEventRequest(id=event.id, patch=pb.EventPatch(title="Changed"))
        events.UpdateEvent(patch, metadata=auth(owner))
        assert client.hget(key, "version") == b"2"
        assert events.GetEvent(request, metadata=auth(owner)).title == "Changed"
        events.DeleteEvent(pb.DeleteEventRequest(id=event.id), metadata=auth(owner))
        assert client.hget(key, "version") == b"3"
        gone = rpc_error(lambda: events.GetEvent(request, metadata=auth(owner)))
        assert gone.code() == grpc.StatusCode.NOT_FOUND
    finally:
        client.close()


def test_a_new_event_is_cached_with_its_owner_at_once_and_a_share_replaces_that(
    events: EventServiceStub, sharing: SharingServiceStub, make_user, stack: Stack
) -> None:
    """A read right after a create is the rule: it is answered from the cache."""
    owner, viewer = make_user(), make_user()
    event = create(events, owner)
    client = redis.Redis.from_url(stack.env.get("EVENTHUB_REDIS_URL", "redis://127.0.0.1:6379/0"))
    key = f"{stack.env['EVENTHUB_NAMESPACE']}:events:event:{event.id}"
    try:
        cached = client.hgetall(key)
        assert (cached[b"version"], cached[b"access_version"]) == (b"1", b"1")
        assert cached[f"u:{owner.id}".encode()] == b"owner"
        assert orjson.loads(cached[b"event"])["title"] == "Review"
        share(sharing, owner, event.id, viewer, common_pb2.ROLE_VIEWER)
        cached = client.hgetall(key)
        assert cached[b"access_version"] == b"2"
        assert cached[f"u:{viewer.id}".encode()] == b"viewer"
    finally:
        client.close()


@pytest.fixture
def isolated_replica(stack: Stack) -> Iterator[EventServiceStub]:
    """An event service replica whose Redis and NATS cannot be reached."""
    addr = f"127.0.0.1:{free_port()}"
    stack.start(
        "event_service",
        {
            "EVENTHUB_EVENTS_ADDR": addr,
            "EVENTHUB_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "EVENTHUB_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        },
        tag="_isolated",
    )
    try:
        with grpc.insecure_channel(addr) as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def serving() -> bool:
                try:
                    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                except grpc.RpcError:
                    return False
                return answer.status == health_pb2.HealthCheckResponse.SERVING

            wait_until(serving, 30, "the isolated event service replica")
            yield EventServiceStub(channel)
    finally:
        stack.stop("event_service_isolated")


def test_writes_and_reads_work_without_redis_and_nats(
    isolated_replica: EventServiceStub, make_user, stack: Stack
) -> None:
    owner = make_user()
    event = create(isolated_replica, owner)
    request = pb.GetEventRequest(id=event.id)
    assert isolated_replica.GetEvent(request, metadata=auth(owner)).version == 1
    patch = pb.UpdateEventRequest(id=event.id, patch=pb.EventPatch(title="Offline edit"))
    assert isolated_replica.UpdateEvent(patch, metadata=auth(owner)).version == 2
    assert isolated_replica.GetEvent(request, metadata=auth(owner)).title == "Offline edit"
    with psycopg.connect(database_url(stack)) as conn:
        rows = conn.execute(
            "SELECT msg_id FROM events.outbox WHERE subject = %s ORDER BY id",
            (event_subject(stack.env["EVENTHUB_NAMESPACE"], event.id),),
        ).fetchall()
    assert [row[0] for row in rows] == [f"{event.id}:1", f"{event.id}:2"]


def test_missing_and_malformed_ids_are_not_found(events: EventServiceStub, make_user) -> None:
    user = make_user()
    for event_id in (str(uuid.uuid4()), "nope", ""):
        calls = [
            (events.GetEvent, pb.GetEventRequest(id=event_id)),
            (events.DeleteEvent, pb.DeleteEventRequest(id=event_id)),
            (events.GetEventVersion, pb.GetEventVersionRequest(id=event_id)),
        ]
        for method, request in calls:
            error = rpc_error(lambda: method(request, metadata=auth(user)))  # noqa: B023
            assert error.code() == grpc.StatusCode.NOT_FOUND


def test_the_service_itself_refuses_callers_without_the_role(
    events: EventServiceStub, sharing: SharingServiceStub, make_user
) -> None:
    """Defence in depth: called directly over gRPC, bypassing the gateway."""
    owner, viewer, stranger = make_user(), make_user(), make_user()
    event = create(events, owner)
    share(sharing, owner, event.id, viewer, common_pb2.ROLE_VIEWER)
    assert events.GetEvent(pb.GetEventRequest(id=event.id), metadata=auth(viewer)).role == (
        common_pb2.ROLE_VIEWER
    )
    patch = pb.UpdateEventRequest(id=event.id, patch=pb.EventPatch(title="Hijacked"))
    for call in (
        lambda who: events.UpdateEvent(patch, metadata=auth(who)),
        lambda who: events.DeleteEvent(pb.DeleteEventRequest(id=event.id), metadata=auth(who)),
    ):
        assert rpc_error(lambda c=call: c(viewer)).code() == grpc.StatusCode.PERMISSION_DENIED
        assert rpc_error(lambda c=call: c(stranger)).code() == grpc.StatusCode.NOT_FOUND
    hidden = rpc_error(
        lambda: events.GetEvent(pb.GetEventRequest(id=event.id), metadata=auth(stranger))
    )
    assert hidden.code() == grpc.StatusCode.NOT_FOUND
    unchanged = events.GetEvent(pb.GetEventRequest(id=event.id), metadata=auth(owner))
    assert (unchanged.title, unchanged.version) == (event.title, 1)
