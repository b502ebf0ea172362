"""Free/busy over gRPC: grants (who may see my free/busy), and the busy times a caller
gets for themself, for users who granted them theirs, and the reasons for everyone else."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import orjson
import pytest

from common.errors import problem_from_rpc_error
from common.timeutil import from_timestamp, to_timestamp
from eventhub.common.v1 import common_pb2
from eventhub.events.v1 import events_pb2
from eventhub.events.v1.events_pb2_grpc import EventServiceStub
from eventhub.sharing.v1 import sharing_pb2 as pb
from eventhub.sharing.v1.sharing_pb2_grpc import SharingServiceStub
from tests.conftest import User
from tests.sharing_service.conftest import auth

# A day in the future of every test user's otherwise empty calendar.
DAY = datetime(2031, 3, 4, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: datetime = DAY) -> datetime:
    return day + timedelta(hours=hour, minutes=minute)


def micros(value: datetime) -> int:
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def intervals(*pairs: tuple[datetime, datetime]) -> list[int]:
    return [micros(moment) for pair in pairs for moment in pair]


def busy(answer: pb.UserFreeBusy) -> list[int]:
    """An answer's busy intervals (JSON) in the shape of `intervals`."""
    found = orjson.loads(answer.busy_json or b"[]")
    return [micros(datetime.fromisoformat(i[edge])) for i in found for edge in ("start", "end")]


def new_event(events: EventServiceStub, owner: User, start: datetime, end: datetime) -> str:
    event = events_pb2.EventInput(
        title="busy", start_time=to_timestamp(start), end_time=to_timestamp(end)
    )
    request = events_pb2.CreateEventRequest(event=event, allow_conflicts=True)
    return events.CreateEvent(request, metadata=auth(owner)).id


def by_id(user: User) -> pb.FreeBusyUser:
    return pb.FreeBusyUser(user_id=user.id)


def by_name(user: User) -> pb.FreeBusyUser:
    return pb.FreeBusyUser(username=user.username)


def free_busy(
    sharing: SharingServiceStub,
    caller: User,
    users: list[pb.FreeBusyUser],
    start: datetime = DAY,
    end: datetime = DAY + timedelta(days=1),
) -> list[pb.UserFreeBusy]:
    request = pb.FreeBusyRequest(start=to_timestamp(start), end=to_timestamp(end), users=users)
    return list(sharing.FreeBusy(request, metadata=auth(caller)).users)


def put_grant(
    sharing: SharingServiceStub, owner: User, grantee_id: str
) -> pb.PutFreeBusyGrantResponse:
    return sharing.PutFreeBusyGrant(
        pb.PutFreeBusyGrantRequest(user_id=grantee_id), metadata=auth(owner)
    )


def delete_grant(sharing: SharingServiceStub, owner: User, grantee_id: str) -> None:
    request = pb.DeleteFreeBusyGrantRequest(user_id=grantee_id)
    sharing.DeleteFreeBusyGrant(request, metadata=auth(owner))


def grants_of(sharing: SharingServiceStub, owner: User) -> list[pb.FreeBusyGrant]:
    request = pb.ListFreeBusyGrantsRequest()
    return list(sharing.ListFreeBusyGrants(request, metadata=auth(owner)).items)


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def error_fields(error: grpc.RpcError) -> list[str]:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    problem = problem_from_rpc_error(error)
    assert problem, error
    return [e["field"] for e in problem["errors"]]


def reasons(answers: list[pb.UserFreeBusy]) -> list[str]:
    return [answer.error_reason for answer in answers]


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.FreeBusy(pb.FreeBusyRequest()),
        lambda s: s.ListFreeBusyGrants(pb.ListFreeBusyGrantsRequest()),
        lambda s: s.PutFreeBusyGrant(pb.PutFreeBusyGrantRequest(user_id=str(uuid.uuid4()))),
        lambda s: s.DeleteFreeBusyGrant(pb.DeleteFreeBusyGrantRequest(user_id=str(uuid.uuid4()))),
    ],
    ids=["FreeBusy", "ListFreeBusyGrants", "PutFreeBusyGrant", "DeleteFreeBusyGrant"],
)
def test_every_free_busy_call_needs_a_token(sharing, call) -> None:
    assert rpc_error(lambda: call(sharing)).code() == grpc.StatusCode.UNAUTHENTICATED


def test_grants_are_put_listed_oldest_first_and_deleted(sharing, make_user) -> None:
    owner, first, second, stranger = make_user(), make_user(), make_user(), make_user()
    assert grants_of(sharing, owner) == []

    granted = put_grant(sharing, owner, first.id)
    assert granted.created
    assert (granted.grant.user_id, granted.grant.username) == (first.id, first.username)
    granted_at = from_timestamp(granted.grant.granted_at)
    assert abs(datetime.now(UTC) - granted_at) < timedelta(minutes=1)
    again = put_grant(sharing, owner, first.id)
    assert not again.created
    assert again.grant == granted.grant
    assert put_grant(sharing, owner, second.id).created
    put_grant(sharing, stranger, owner.id)  # someone else's grant, not the owner's

    listed = grants_of(sharing, owner)
    assert [(g.user_id, g.username) for g in listed] == [
        (first.id, first.username),
        (second.id, second.username),
    ]
    assert listed[0] == granted.grant
    assert from_timestamp(listed[0].granted_at) <= from_timestamp(listed[1].granted_at)

    delete_grant(sharing, owner, first.id)
    assert [g.user_id for g in grants_of(sharing, owner)] == [second.id]
    again = rpc_error(lambda: delete_grant(sharing, owner, first.id))
    assert again.code() == grpc.StatusCode.NOT_FOUND
    assert again.details() == "no such free/busy grant"
    # Granted anew after a delete: a new grant.
    regranted = put_grant(sharing, owner, first.id)
    assert regranted.created
    assert from_timestamp(regranted.grant.granted_at) > granted_at
    assert [g.user_id for g in grants_of(sharing, owner)] == [second.id, first.id]
    assert [g.user_id for g in grants_of(sharing, stranger)] == [owner.id]


def test_grant_errors(sharing, make_user) -> None:
    owner, grantee, other = make_user(), make_user(), make_user()

    malformed = rpc_error(lambda: put_grant(sharing, owner, "not-a-uuid"))
    assert error_fields(malformed) == ["user_id"]
    yourself = rpc_error(lambda: put_grant(sharing, owner, owner.id))
    assert error_fields(yourself) == ["user_id"]
    assert problem_from_rpc_error(yourself)["errors"][0]["message"] == (
        "cannot grant your own free/busy to yourself"
    )
    unknown = rpc_error(lambda: put_grant(sharing, owner, str(uuid.uuid4())))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    assert unknown.details() == "user not found"
    assert grants_of(sharing, owner) == []

    put_grant(sharing, other, grantee.id)
    for user_id in ("not-a-uuid", "", str(uuid.uuid4()), grantee.id, owner.id):
        error = rpc_error(lambda u=user_id: delete_grant(sharing, owner, u))
        assert error.code() == grpc.StatusCode.NOT_FOUND, user_id
    # Deleting it as another user left the other user's grant alone.
    assert [g.user_id for g in grants_of(sharing, other)] == [grantee.id]


def test_others_free_busy_needs_their_grant(sharing, make_user) -> None:
    """Not granted: "forbidden" (a grant to someone else, or the caller's own grant to
    that user, does not count); unknown: "not_found"; still one answer per user, in order."""
    caller, other, third = make_user(), make_user(), make_user()
    put_grant(sharing, other, third.id)
    put_grant(sharing, caller, other.id)
    unknown_id = str(uuid.uuid4())
    answers = free_busy(
        sharing,
        caller,
        [
            by_id(other),
            pb.FreeBusyUser(user_id=unknown_id),
            by_name(other),
            pb.FreeBusyUser(username="nobody_" + uuid.uuid4().hex[:8]),
            pb.FreeBusyUser(username=other.username.upper()),
        ],
    )
    assert reasons(answers) == ["forbidden", "not_found", "forbidden", "not_found", "forbidden"]
    assert all(not answer.busy_json for answer in answers)
    assert answers[0].error_message == "this user has not shared their free/busy with you"
    assert answers[1].error_message
    # The grant acts on the next request, and so does its removal.
    put_grant(sharing, other, caller.id)
    delete_grant(sharing, other, caller.id)
    assert reasons(free_busy(sharing, caller, [by_id(other)])) == ["forbidden"]


def test_the_service_validates_free_busy_requests_itself(sharing, make_user) -> None:
    caller, other = make_user(), make_user()
    window = {"start": to_timestamp(DAY), "end": to_timestamp(DAY + timedelta(hours=1))}
    cases = [
        (pb.FreeBusyRequest(users=[by_id(other)]), ["start", "end"]),
        (pb.FreeBusyRequest(start=window["start"], users=[by_id(other)]), ["end"]),
        (
            pb.FreeBusyRequest(start=window["end"], end=window["start"], users=[by_id(other)]),
            ["end"],
        ),
        (
            pb.FreeBusyRequest(start=window["start"], end=window["start"], users=[by_id(other)]),
            ["end"],
        ),
        (
            pb.FreeBusyRequest(
                start=to_timestamp(DAY),
                end=to_timestamp(DAY + timedelta(days=366, seconds=1)),
                users=[by_id(other)],
            ),
            ["end"],
        ),
        (pb.FreeBusyRequest(**window), ["users"]),
        (pb.FreeBusyRequest(**window, users=[by_id(other)] * 51), ["users"]),
        (pb.FreeBusyRequest(users=[]), ["start", "end", "users"]),
        (
            pb.FreeBusyRequest(
                **window,
                users=[
                    by_id(other),
                    pb.FreeBusyUser(),
                    pb.FreeBusyUser(user_id=other.id, username=other.username),
                    pb.FreeBusyUser(user_id="not-a-uuid"),
                ],
            ),
            ["users.1", "users.2", "users.3.user_id"],
        ),
    ]
    for request, fields in cases:
        error = rpc_error(lambda r=request: sharing.FreeBusy(r, metadata=auth(caller)))
        assert error_fields(error) == fields, request
    # A window of exactly 366 days is allowed.
    longest = free_busy(sharing, caller, [by_id(other)], DAY, DAY + timedelta(days=366))
    assert reasons(longest) == ["forbidden"]


def test_callers_see_their_own_busy_times(sharing, events, make_user) -> None:
    """Occurrences of the caller's own events, merged when they overlap or touch,
    clipped to the window; not events they only hold another role on."""
    caller, colleague = make_user(), make_user()
    new_event(events, caller, at(8), at(9, 30))  # clipped to the window's start
    new_event(events, caller, at(10), at(11))
    new_event(events, caller, at(10, 30), at(12))  # overlaps the one before
    new_event(events, caller, at(12), at(12, 30))  # touches the one before
    new_event(events, caller, at(14), at(15))
    new_event(events, caller, at(17, 30), at(19))  # clipped to the window's end
    new_event(events, caller, at(20), at(21))  # outside the window
    shared = new_event(events, colleague, at(16), at(17))
    share = pb.ShareEventRequest(
        event_id=shared,
        users=[pb.ShareTarget(user_id=caller.id, role=common_pb2.ROLE_EDITOR)],
    )
    sharing.ShareEvent(share, metadata=auth(colleague))

    answers = free_busy(sharing, caller, [by_id(caller), by_name(caller)], at(9), at(18))
    expected = intervals(
        (at(9), at(9, 30)), (at(10), at(12, 30)), (at(14), at(15)), (at(17, 30), at(18))
    )
    assert [busy(answer) for answer in answers] == [expected, expected]
    assert reasons(answers) == ["", ""]
    # A free calendar is an empty list, not an error.
    quiet = free_busy(sharing, colleague, [by_id(colleague)], at(0), at(8))
    assert [(busy(a), a.error_reason) for a in quiet] == [([], "")]


def test_granted_free_busy_is_visible_until_the_grant_is_deleted(
    sharing, events, make_user
) -> None:
    caller, granter, other = make_user(), make_user(), make_user()
    new_event(events, granter, at(9), at(10))
    new_event(events, granter, at(13), at(14, 15))
    new_event(events, caller, at(11), at(12))
    new_event(events, other, at(15), at(16))
    put_grant(sharing, granter, caller.id)

    asked = [
        by_id(granter),
        by_id(other),
        by_id(caller),
        by_name(granter),
        pb.FreeBusyUser(user_id=str(uuid.uuid4())),
    ]
    answers = free_busy(sharing, caller, asked)
    granted = intervals((at(9), at(10)), (at(13), at(14, 15)))
    assert [busy(a) for a in answers] == [
        granted,
        [],
        intervals((at(11), at(12))),
        granted,
        [],
    ]
    assert reasons(answers) == ["", "forbidden", "", "", "not_found"]
    # The grant goes one way only.
    assert reasons(free_busy(sharing, granter, [by_id(caller)])) == ["forbidden"]

    delete_grant(sharing, granter, caller.id)
    assert reasons(free_busy(sharing, caller, [by_id(granter)])) == ["forbidden"]
