"""Writes that carry an idempotency key (gRPC metadata, as the gateway sends it) are
applied at most once by the event service itself, whatever became of the answer."""

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc

from common.errors import problem_from_rpc_error
from eventhub.common.v1 import common_pb2
from eventhub.events.v1 import events_pb2 as pb
from eventhub.events.v1.events_pb2_grpc import EventServiceStub
from tests.conftest import User
from tests.event_service.test_event_grpc import (
    auth,
    create,
    error_fields,
    event_input,
    rpc_error,
)


def keyed(
    user: User, key: str, fingerprint: str = "body-1", caller: list[tuple[str, str]] | None = None
) -> list[tuple[str, str]]:
    """`caller`: the metadata of the user's call (default: the user's own token)."""
    return [
        *(caller or auth(user)),
        ("idempotency-key", key),
        ("idempotency-fingerprint", fingerprint),
    ]


def titled(events: EventServiceStub, user: User, title: str) -> list[pb.Event]:
    listed = events.ListEvents(pb.ListEventsRequest(q=title, limit=100), metadata=auth(user))
    return list(listed.items)


def create_request(title: str, **times: str) -> pb.CreateEventRequest:
    return pb.CreateEventRequest(event=event_input(title=title, **times))


def test_a_repeated_create_is_answered_as_the_first_and_applied_once(
    events: EventServiceStub, make_user: Callable[..., User]
) -> None:
    user, key, title = make_user(), str(uuid.uuid4()), f"standup {uuid.uuid4()}"
    request = create_request(title)

    first = events.CreateEvent(request, metadata=keyed(user, key))
    # Changed since: the repeat still gets the answer the create got.
    events.UpdateEvent(
        pb.UpdateEventRequest(id=first.id, patch=pb.EventPatch(location="room 2")),
        metadata=auth(user),
    )
    repeat = events.CreateEvent(request, metadata=keyed(user, key))

    assert repeat == first
    assert [e.id for e in titled(events, user, title)] == [first.id]


def test_a_key_is_the_callers_own_and_tied_to_its_request(
    events: EventServiceStub, make_user: Callable[..., User]
) -> None:
    user, other, key, title = make_user(), make_user(), str(uuid.uuid4()), f"x {uuid.uuid4()}"
    first = events.CreateEvent(create_request(title), metadata=keyed(user, key))

    reused = rpc_error(
        lambda: events.CreateEvent(create_request(title), metadata=keyed(user, key, "body-2"))
    )
    assert error_fields(reused) == ["Idempotency-Key"]
    # Another user's key of the same value is another key.
    theirs = events.CreateEvent(create_request(title), metadata=keyed(other, key))
    assert theirs.id != first.id and theirs.owner_id == other.id
    assert len(titled(events, user, title)) == 1


def test_a_refused_create_does_not_use_up_its_key(
    events: EventServiceStub, make_user: Callable[..., User]
) -> None:
    user, key = make_user(), str(uuid.uuid4())
    blocker = create(
        events, user, title="blocker", start="2026-05-01T09:00", end="2026-05-01T10:00"
    )
    request = create_request("wanted", start="2026-05-01T09:30", end="2026-05-01T10:30")

    clash = rpc_error(lambda: events.CreateEvent(request, metadata=keyed(user, key)))
    assert clash.code() == grpc.StatusCode.ABORTED
    events.DeleteEvent(pb.DeleteEventRequest(id=blocker.id), metadata=auth(user))

    created = events.CreateEvent(request, metadata=keyed(user, key))
    assert events.CreateEvent(request, metadata=keyed(user, key)) == created


def test_concurrent_repeats_apply_one_create(
    events: EventServiceStub, make_user: Callable[..., User]
) -> None:
    """Repeats that race the first try get its answer or 409 (still running), never
    a second event."""
    user, key, title = make_user(), str(uuid.uuid4()), f"race {uuid.uuid4()}"
    request = create_request(title)

    def attempt(_: int) -> pb.Event | grpc.RpcError:
        try:
            return events.CreateEvent(request, metadata=keyed(user, key))
        except grpc.RpcError as error:
            return error

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))

    answers = [o for o in outcomes if isinstance(o, pb.Event)]
    errors = [o for o in outcomes if isinstance(o, grpc.RpcError)]
    assert answers and {a.id for a in answers} == {titled(events, user, title)[0].id}
    assert all(e.code() == grpc.StatusCode.ABORTED for e in errors), errors
    assert all("still being processed" in problem_from_rpc_error(e)["detail"] for e in errors)
    assert len(titled(events, user, title)) == 1


def test_a_repeated_batch_is_applied_once(
    events: EventServiceStub, make_user: Callable[..., User]
) -> None:
    user, key, title = make_user(), str(uuid.uuid4()), f"batch {uuid.uuid4()}"
    request = pb.BatchCreateEventsRequest(
        events=[
            event_input(title=f"{title} {day}", start=f"2026-06-0{day}T09:00",
                        end=f"2026-06-0{day}T10:00")
            for day in (1, 2, 3)
        ]
    )  # fmt: skip

    first = events.BatchCreateEvents(request, metadata=keyed(user, key))
    repeat = events.BatchCreateEvents(request, metadata=keyed(user, key))

    assert repeat == first and len(first.items) == 3
    assert len(titled(events, user, title)) == 3


def test_a_repeated_rollback_makes_one_version(
    events: EventServiceStub, make_user: Callable[..., User], as_service
) -> None:
    user, key = make_user(), str(uuid.uuid4())
    event = create(events, user, title="draft")
    original = pb.EventInput(title="draft", start_time=event.start_time, end_time=event.end_time)
    events.UpdateEvent(
        pb.UpdateEventRequest(id=event.id, patch=pb.EventPatch(title="final")),
        metadata=auth(user),
    )
    rollback = pb.RollbackEventRequest(id=event.id, event=original, rolled_back_to=1)

    history = as_service("history", user)
    first = events.RollbackEvent(rollback, metadata=keyed(user, key, caller=history))
    repeat = events.RollbackEvent(rollback, metadata=keyed(user, key, caller=history))

    assert first.version == 3 and repeat == first
    current = events.GetEvent(pb.GetEventRequest(id=event.id), metadata=auth(user))
    assert current.version == 3


def test_a_repeated_access_change_is_answered_as_the_first(
    events: EventServiceStub, make_user: Callable[..., User], as_service
) -> None:
    owner, editor, key = make_user(), make_user(), str(uuid.uuid4())
    event = create(events, owner)
    change = pb.ChangeAccessRequest(
        event_id=event.id,
        expected_access_version=1,
        changes=[
            pb.AccessChange(
                user_id=editor.id, username=editor.username, role=common_pb2.ROLE_EDITOR
            )
        ],
    )

    sharing = as_service("sharing", owner)
    first = events.ChangeAccess(change, metadata=keyed(owner, key, caller=sharing))
    # The list moved on meanwhile; without its key the change would now be stale.
    events.ChangeAccess(
        pb.ChangeAccessRequest(
            event_id=event.id,
            expected_access_version=first.access_version,
            changes=[pb.AccessChange(user_id=editor.id, role=common_pb2.ROLE_UNSPECIFIED)],
        ),
        metadata=sharing,
    )
    repeat = events.ChangeAccess(change, metadata=keyed(owner, key, caller=sharing))

    assert repeat == first
    access = events.GetAccess(pb.GetAccessRequest(event_id=event.id), metadata=auth(owner))
    assert access.access_version == first.access_version + 1
    assert [entry.user_id for entry in access.entries] == [owner.id]
