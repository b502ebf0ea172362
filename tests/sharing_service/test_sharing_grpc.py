"""The sharing service over gRPC: its rules (owners only, last owner, all or nothing)
under concurrency, and the audit trail written from the event service's access
changes, which no crash of the sharing service loses."""

import asyncio
import concurrent.futures
import signal
import time
import uuid
from collections.abc import Callable

import grpc
import nats
import orjson
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from common.errors import problem_from_rpc_error
from common.notifications import access_subject
from eventhub.common.v1 import common_pb2
from eventhub.events.v1 import events_pb2
from eventhub.events.v1.events_pb2_grpc import EventServiceStub
from eventhub.sharing.v1 import sharing_pb2 as pb
from eventhub.sharing.v1.sharing_pb2_grpc import SharingServiceStub
from scripts.stack import Stack, free_port, service_serving, wait_until
from tests.conftest import User
from tests.sharing_service.conftest import auth

OWNER, EDITOR, VIEWER = common_pb2.ROLE_OWNER, common_pb2.ROLE_EDITOR, common_pb2.ROLE_VIEWER
UNSPECIFIED = common_pb2.ROLE_UNSPECIFIED


def new_event(events: EventServiceStub, owner: User) -> str:
    start = Timestamp(seconds=int(time.time()) + 86_400)
    end = Timestamp(seconds=start.seconds + 1800)
    event = events_pb2.EventInput(title="shared", start_time=start, end_time=end)
    request = events_pb2.CreateEventRequest(event=event, allow_conflicts=True)
    return events.CreateEvent(request, metadata=auth(owner)).id


def role_of(sharing: SharingServiceStub, caller: User, event_id: str, user_id: str) -> int:
    request = pb.ListPermissionsRequest(event_id=event_id)
    items = sharing.ListPermissions(request, metadata=auth(caller)).items
    return next((p.role for p in items if p.user_id == user_id), UNSPECIFIED)


def share(sharing: SharingServiceStub, owner: User, event_id: str, *grants: tuple[User, int]):
    targets = [pb.ShareTarget(user_id=user.id, role=role) for user, role in grants]
    request = pb.ShareEventRequest(event_id=event_id, users=targets)
    return sharing.ShareEvent(request, metadata=auth(owner))


def problem_of(error: grpc.RpcError) -> dict:
    problem = problem_from_rpc_error(error)
    assert problem, error
    return problem


def ok_or_code(call: Callable[[], object]) -> str:
    try:
        call()
    except grpc.RpcError as error:
        return error.code().name
    return "ok"


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.ShareEvent(pb.ShareEventRequest(event_id=str(uuid.uuid4()))),
        lambda s: s.ListPermissions(pb.ListPermissionsRequest(event_id=str(uuid.uuid4()))),
        lambda s: s.RevokePermission(pb.RevokePermissionRequest(event_id=str(uuid.uuid4()))),
    ],
    ids=["ShareEvent", "ListPermissions", "RevokePermission"],
)
def test_every_call_needs_a_token(sharing, call) -> None:
    assert rpc_error(lambda: call(sharing)).code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_forged_token_is_refused(sharing, make_user) -> None:
    user = make_user()
    forged = user.access_token[:-4] + ("AAAA" if not user.access_token.endswith("AAAA") else "BBBB")
    request = pb.ListPermissionsRequest(event_id=str(uuid.uuid4()))
    error = rpc_error(
        lambda: sharing.ListPermissions(request, metadata=[("authorization", f"Bearer {forged}")])
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_last_owner_cannot_be_demoted_or_removed(sharing, events, make_user) -> None:
    owner, second = make_user(), make_user()
    event_id = new_event(events, owner)
    demote = pb.UpdatePermissionRequest(event_id=event_id, user_id=owner.id, role=EDITOR)
    revoke = pb.RevokePermissionRequest(event_id=event_id, user_id=owner.id)
    for call in (sharing.UpdatePermission, sharing.RevokePermission):
        request = demote if call is sharing.UpdatePermission else revoke
        error = rpc_error(lambda c=call, r=request: c(r, metadata=auth(owner)))
        assert error.code() == grpc.StatusCode.ABORTED
    self_share = pb.ShareEventRequest(
        event_id=event_id, users=[pb.ShareTarget(user_id=owner.id, role=VIEWER)]
    )
    error = rpc_error(lambda: sharing.ShareEvent(self_share, metadata=auth(owner)))
    assert error.code() == grpc.StatusCode.ABORTED
    assert role_of(sharing, owner, event_id, owner.id) == OWNER

    share(sharing, owner, event_id, (second, OWNER))
    assert sharing.UpdatePermission(demote, metadata=auth(owner)).role == EDITOR
    assert role_of(sharing, owner, event_id, owner.id) == EDITOR
    last = pb.RevokePermissionRequest(event_id=event_id, user_id=second.id)
    assert rpc_error(lambda: sharing.RevokePermission(last, metadata=auth(second))).code() == (
        grpc.StatusCode.ABORTED
    )


def test_concurrent_demotions_leave_one_owner(sharing, events, make_user) -> None:
    first, second = make_user(), make_user()
    for _ in range(5):
        event_id = new_event(events, first)
        share(sharing, first, event_id, (second, OWNER))
        # Each owner demotes the other at the same moment: one must fail.
        calls = [
            sharing.UpdatePermission.future(
                pb.UpdatePermissionRequest(event_id=event_id, user_id=target.id, role=VIEWER),
                metadata=auth(actor),
            )
            for actor, target in ((first, second), (second, first))
        ]
        outcomes = []
        for call in calls:
            try:
                call.result()
                outcomes.append("ok")
            except grpc.RpcError as error:
                outcomes.append(error.code())
        # The loser is either refused as the last owner or, demoted first, as a non-owner.
        assert sorted(map(str, outcomes)) in (
            sorted(["ok", str(grpc.StatusCode.ABORTED)]),
            sorted(["ok", str(grpc.StatusCode.PERMISSION_DENIED)]),
        ), outcomes
        roles = {role_of(sharing, first, event_id, u.id) for u in (first, second)}
        assert roles == {OWNER, VIEWER}


def test_concurrent_self_demotions_leave_one_owner(sharing, events, make_user) -> None:
    first, second = make_user(), make_user()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for _ in range(5):
            event_id = new_event(events, first)
            share(sharing, first, event_id, (second, OWNER))

            def leave(user: User, event_id: str = event_id) -> str:
                request = pb.RevokePermissionRequest(event_id=event_id, user_id=user.id)
                return ok_or_code(lambda: sharing.RevokePermission(request, metadata=auth(user)))

            outcomes = sorted(pool.map(leave, (first, second)))
            assert outcomes == ["ABORTED", "ok"]
            left = ok_or_code(lambda e=event_id: role_of(sharing, first, e, first.id))
            remaining = second if left == "NOT_FOUND" else first
            roles = [role_of(sharing, remaining, event_id, u.id) for u in (first, second)]
            assert sorted(roles) == [UNSPECIFIED, OWNER]


def _database_url(stack: Stack) -> str:
    return stack.env["EVENTHUB_DATABASE_URL"].replace("+psycopg", "")


def audit_trail(stack: Stack, event_id: str) -> list[tuple]:
    with psycopg.connect(_database_url(stack)) as conn:
        return conn.execute(
            "SELECT sequence, user_id::text, role, previous_role, actor_id::text"
            " FROM sharing.permission_changes WHERE event_id = %s ORDER BY sequence",
            (event_id,),
        ).fetchall()


def wait_for_audit(stack: Stack, event_id: str, count: int) -> list[tuple]:
    wait_until(lambda: len(audit_trail(stack, event_id)) >= count, 30, f"{count} audit records")
    return audit_trail(stack, event_id)


def test_every_change_is_audited_and_announced_once(
    sharing, events, make_user, stack: Stack
) -> None:
    owner, user = make_user(), make_user()
    event_id = new_event(events, owner)
    share(sharing, owner, event_id, (user, VIEWER))
    share(sharing, owner, event_id, (user, VIEWER))  # unchanged: not a change
    update = pb.UpdatePermissionRequest(event_id=event_id, user_id=user.id, role=EDITOR)
    sharing.UpdatePermission(update, metadata=auth(owner))
    revoke = pb.RevokePermissionRequest(event_id=event_id, user_id=user.id)
    sharing.RevokePermission(revoke, metadata=auth(owner))

    expected = [
        (1, owner.id, "owner", None),
        (2, user.id, "viewer", None),
        (3, user.id, "editor", "viewer"),
        (4, user.id, None, "editor"),
    ]
    audit = wait_for_audit(stack, event_id, len(expected))
    assert [row[:4] for row in audit] == expected
    assert {row[4] for row in audit} == {owner.id}

    async def announced() -> list[dict]:
        client = await nats.connect(stack.env.get("EVENTHUB_NATS_URL", "nats://127.0.0.1:4222"))
        try:
            js = client.jetstream()
            subject = access_subject(stack.env["EVENTHUB_NAMESPACE"], event_id)
            subscription = await js.subscribe(subject, ordered_consumer=True)
            messages: list[dict] = []
            deadline = time.monotonic() + 10
            while len(messages) < len(expected) and time.monotonic() < deadline:
                try:
                    message = await subscription.next_msg(timeout=1)
                except nats.errors.TimeoutError:
                    continue
                assert message.headers is not None
                payload = orjson.loads(message.data)
                version = payload["access_version"]
                assert message.headers["Nats-Msg-Id"] == f"{event_id}:access:{version}"
                messages.append(payload)
            await subscription.unsubscribe()
            return messages
        finally:
            await client.close()

    changes = [change for m in asyncio.run(announced()) for change in m["changes"]]
    assert [
        (c["sequence"], c["user_id"], c["role"], c["previous_role"]) for c in changes
    ] == expected


def test_no_audit_record_is_lost_when_the_sharing_service_dies(
    sharing, events, make_user, stack: Stack, as_service
) -> None:
    """Killed right after a change it made, and down while the event service applies
    another, the sharing service still audits both once it is back."""
    owner, user, other = make_user(), make_user(), make_user()
    event_id = new_event(events, owner)
    share(sharing, owner, event_id, (user, VIEWER))
    stack.stop("sharing_service", signal.SIGKILL)
    try:
        access = events.GetAccess(
            events_pb2.GetAccessRequest(event_id=event_id), metadata=auth(owner)
        )
        change = events_pb2.ChangeAccessRequest(
            event_id=event_id,
            expected_access_version=access.access_version,
            changes=[
                events_pb2.AccessChange(user_id=other.id, username=other.username, role=EDITOR)
            ],
        )
        changed = events.ChangeAccess(change, metadata=as_service("sharing", owner))
        assert changed.access_version == 3
        assert len(audit_trail(stack, event_id)) < 3
    finally:
        stack.start("sharing_service")
        stack.wait_ready()
    audit = wait_for_audit(stack, event_id, 3)
    assert [row[:3] for row in audit] == [
        (1, owner.id, "owner"),
        (2, user.id, "viewer"),
        (3, other.id, "editor"),
    ]


def test_the_event_service_applies_only_changes_on_the_version_read(
    events, make_user, as_service
) -> None:
    """A change based on an access list that changed meanwhile is refused, never applied blind."""
    owner, user, other = make_user(), make_user(), make_user()
    event_id = new_event(events, owner)

    def grant(target: User, version: int) -> events_pb2.Access:
        request = events_pb2.ChangeAccessRequest(
            event_id=event_id,
            expected_access_version=version,
            changes=[
                events_pb2.AccessChange(user_id=target.id, username=target.username, role=VIEWER)
            ],
        )
        return events.ChangeAccess(request, metadata=as_service("sharing", owner))

    assert grant(user, 1).access_version == 2
    stale = rpc_error(lambda: grant(other, 1))
    assert stale.code() == grpc.StatusCode.FAILED_PRECONDITION
    access = events.GetAccess(events_pb2.GetAccessRequest(event_id=event_id), metadata=auth(owner))
    assert {e.user_id for e in access.entries} == {owner.id, user.id}
    not_owner = rpc_error(
        lambda: events.ChangeAccess(
            events_pb2.ChangeAccessRequest(
                event_id=event_id,
                expected_access_version=2,
                changes=[
                    events_pb2.AccessChange(user_id=user.id, username=user.username, role=OWNER)
                ],
            ),
            metadata=as_service("sharing", user),
        )
    )
    assert not_owner.code() == grpc.StatusCode.PERMISSION_DENIED
    ownerless = events_pb2.ChangeAccessRequest(
        event_id=event_id,
        expected_access_version=2,
        changes=[events_pb2.AccessChange(user_id=owner.id)],
    )
    assert rpc_error(
        lambda: events.ChangeAccess(ownerless, metadata=as_service("sharing", owner))
    ).code() == (grpc.StatusCode.ABORTED)


def test_a_sharing_replica_without_nats_still_shares(events, make_user, stack: Stack) -> None:
    """Sharing needs NATS only for the audit trail, which catches up later."""
    owner, user = make_user(), make_user()
    event_id = new_event(events, owner)
    addr = f"127.0.0.1:{free_port()}"
    stack.start(
        "sharing_service",
        {"EVENTHUB_SHARING_ADDR": addr, "EVENTHUB_NATS_URL": f"nats://127.0.0.1:{free_port()}"},
        tag="_without_nats",
    )
    try:
        wait_until(lambda: service_serving(addr), 30, "the NATS-less sharing replica")
        with grpc.insecure_channel(addr) as channel:
            replica = SharingServiceStub(channel)
            share(replica, owner, event_id, (user, EDITOR))
            assert role_of(replica, owner, event_id, user.id) == EDITOR
    finally:
        stack.stop("sharing_service_without_nats")
    assert [row[:3] for row in wait_for_audit(stack, event_id, 2)][1] == (2, user.id, "editor")


def test_the_service_validates_share_requests_itself(sharing, events, make_user) -> None:
    """Callers that bypass the gateway get the same field paths."""
    owner, user = make_user(), make_user()
    event_id = new_event(events, owner)
    cases = [
        ([], ["users"]),
        ([pb.ShareTarget(user_id=user.id, role=VIEWER)] * 101, ["users"]),
        ([pb.ShareTarget(role=VIEWER)], ["users.0"]),
        ([pb.ShareTarget(user_id=user.id)], ["users.0.role"]),
        (
            [pb.ShareTarget(user_id=user.id, role=VIEWER), pb.ShareTarget(username=user.username)],
            ["users.1.role"],
        ),
        (
            [
                pb.ShareTarget(user_id=user.id, role=VIEWER),
                pb.ShareTarget(username=user.username, role=EDITOR),
            ],
            ["users.1"],
        ),
    ]
    for targets, fields in cases:
        request = pb.ShareEventRequest(event_id=event_id, users=targets)
        error = rpc_error(lambda r=request: sharing.ShareEvent(r, metadata=auth(owner)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [e["field"] for e in problem_of(error)["errors"]] == fields
    update = pb.UpdatePermissionRequest(event_id=event_id, user_id=owner.id)
    error = rpc_error(lambda: sharing.UpdatePermission(update, metadata=auth(owner)))
    assert [e["field"] for e in problem_of(error)["errors"]] == ["role"]
    assert role_of(sharing, owner, event_id, user.id) == UNSPECIFIED


def test_unknown_users_are_named_and_nothing_is_shared(sharing, events, make_user) -> None:
    owner, user = make_user(), make_user()
    event_id = new_event(events, owner)
    request = pb.ShareEventRequest(
        event_id=event_id,
        users=[
            pb.ShareTarget(user_id=user.id, role=EDITOR),
            pb.ShareTarget(user_id=str(uuid.uuid4()), role=VIEWER),
            pb.ShareTarget(username="nobody_" + uuid.uuid4().hex[:8], role=VIEWER),
        ],
    )
    error = rpc_error(lambda: sharing.ShareEvent(request, metadata=auth(owner)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert problem_of(error)["unknown"] == ["users.1", "users.2"]
    assert role_of(sharing, owner, event_id, user.id) == UNSPECIFIED
