"""The sharing service over gRPC: the internal RPCs the event and history services use,
the last-owner rule under concurrency, the audit trail and the outbox."""

import asyncio
import concurrent.futures
import time
import uuid
from collections.abc import Callable

import grpc
import nats
import orjson
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.errors import problem_from_rpc_error
from common.notifications import sharing_subject
from eventhub.common.v1 import common_pb2
from eventhub.sharing.v1 import sharing_pb2 as pb
from eventhub.sharing.v1.sharing_pb2_grpc import SharingServiceStub
from scripts.stack import Stack, free_port, wait_until
from tests.conftest import User

OWNER, EDITOR, VIEWER = common_pb2.ROLE_OWNER, common_pb2.ROLE_EDITOR, common_pb2.ROLE_VIEWER
UNSPECIFIED = common_pb2.ROLE_UNSPECIFIED


def auth(user: User) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {user.access_token}")]


@pytest.fixture
def sharing(service_channel: Callable[[str], grpc.Channel]) -> SharingServiceStub:
    return SharingServiceStub(service_channel("sharing"))


def new_event(sharing: SharingServiceStub, owner: User) -> str:
    event_id = str(uuid.uuid4())
    sharing.InitializeOwners(pb.InitializeOwnersRequest(event_ids=[event_id]), metadata=auth(owner))
    return event_id


def role_of(sharing: SharingServiceStub, caller: User, event_id: str, user_id: str) -> int:
    request = pb.GetRoleRequest(event_id=event_id, user_id=user_id)
    return sharing.GetRole(request, metadata=auth(caller)).role


def share(sharing: SharingServiceStub, owner: User, event_id: str, *grants: tuple[User, int]):
    targets = [pb.ShareTarget(user_id=user.id, role=role) for user, role in grants]
    request = pb.ShareEventRequest(event_id=event_id, users=targets)
    return sharing.ShareEvent(request, metadata=auth(owner))


def problem_of(error: grpc.RpcError) -> dict:
    problem = problem_from_rpc_error(error)
    assert problem, error
    return problem


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def test_initialize_owners_makes_the_caller_owner_once(sharing, make_user) -> None:
    owner, other = make_user(), make_user()
    event_ids = [str(uuid.uuid4()) for _ in range(3)]
    request = pb.InitializeOwnersRequest(event_ids=event_ids)

    first = sharing.InitializeOwners(request, metadata=auth(owner)).items
    assert [(p.event_id, p.user_id, p.username) for p in first] == [
        (event_id, owner.id, owner.username) for event_id in event_ids
    ]
    assert all(p.role == OWNER and p.granted_by == owner.id for p in first)
    again = sharing.InitializeOwners(request, metadata=auth(owner)).items
    assert list(again) == list(first)

    # All or none: one event owned by someone else refuses the whole request.
    fresh = str(uuid.uuid4())
    mixed = pb.InitializeOwnersRequest(event_ids=[fresh, event_ids[0]])
    taken = rpc_error(lambda: sharing.InitializeOwners(mixed, metadata=auth(other)))
    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
    assert role_of(sharing, owner, event_ids[0], other.id) == UNSPECIFIED
    assert role_of(sharing, other, fresh, other.id) == UNSPECIFIED

    for bad_ids, field in ([["not-a-uuid"], "event_ids.0"], [[], "event_ids"]):
        malformed = pb.InitializeOwnersRequest(event_ids=bad_ids)
        bad = rpc_error(lambda r=malformed: sharing.InitializeOwners(r, metadata=auth(owner)))
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert problem_of(bad)["errors"][0]["field"] == field


def test_get_role_answers_any_authenticated_caller(sharing, make_user) -> None:
    owner, editor, stranger = make_user(), make_user(), make_user()
    event_id = new_event(sharing, owner)
    share(sharing, owner, event_id, (editor, EDITOR))

    assert role_of(sharing, stranger, event_id, owner.id) == OWNER
    assert role_of(sharing, stranger, event_id, editor.id) == EDITOR
    assert role_of(sharing, owner, event_id, stranger.id) == UNSPECIFIED
    assert role_of(sharing, owner, str(uuid.uuid4()), owner.id) == UNSPECIFIED
    assert role_of(sharing, owner, "not-a-uuid", owner.id) == UNSPECIFIED
    assert role_of(sharing, owner, event_id, "not-a-uuid") == UNSPECIFIED
    # Without a user id it answers for the caller.
    assert role_of(sharing, editor, event_id, "") == EDITOR


def test_list_grants_returns_every_grant_of_a_user(sharing, make_user) -> None:
    owner, user = make_user(), make_user()
    owned = new_event(sharing, user)
    edited, viewed = new_event(sharing, owner), new_event(sharing, owner)
    share(sharing, owner, edited, (user, EDITOR))
    share(sharing, owner, viewed, (user, VIEWER))

    def grants(role: int, user_id: str = user.id) -> set[tuple[str, int]]:
        request = pb.ListGrantsRequest(user_id=user_id, role=role)
        response = sharing.ListGrants(request, metadata=auth(owner))
        return {(grant.event_id, grant.role) for grant in response.grants}

    assert grants(UNSPECIFIED) == {(owned, OWNER), (edited, EDITOR), (viewed, VIEWER)}
    assert grants(EDITOR) == {(edited, EDITOR)}
    assert grants(OWNER) == {(owned, OWNER)}
    assert grants(UNSPECIFIED, user_id="not-a-uuid") == set()
    assert grants(UNSPECIFIED, user_id=str(uuid.uuid4())) == set()


def test_list_grants_of_a_user_with_many_grants(sharing, make_user, stack: Stack) -> None:
    user = make_user()
    count = 10_000
    event_ids = [uuid.uuid4() for _ in range(count)]
    with psycopg.connect(stack.env["EVENTHUB_DATABASE_URL"].replace("+psycopg", "")) as conn:
        with conn.cursor().copy(
            "COPY sharing.grants (event_id, user_id, username, role, granted_by, granted_at)"
            " FROM STDIN"
        ) as copy:
            for event_id in event_ids:
                copy.write_row((event_id, user.id, user.username, "viewer", user.id, "now"))
    started = time.monotonic()
    response = sharing.ListGrants(pb.ListGrantsRequest(user_id=user.id), metadata=auth(user))
    elapsed = time.monotonic() - started
    assert {grant.event_id for grant in response.grants} == {str(e) for e in event_ids}
    assert elapsed < 2.0


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.InitializeOwners(pb.InitializeOwnersRequest(event_ids=[str(uuid.uuid4())])),
        lambda s: s.GetRole(pb.GetRoleRequest(event_id=str(uuid.uuid4()), user_id="x")),
        lambda s: s.ListGrants(pb.ListGrantsRequest(user_id=str(uuid.uuid4()))),
        lambda s: s.ListPermissions(pb.ListPermissionsRequest(event_id=str(uuid.uuid4()))),
    ],
    ids=["InitializeOwners", "GetRole", "ListGrants", "ListPermissions"],
)
def test_every_call_needs_a_token(sharing, call) -> None:
    assert rpc_error(lambda: call(sharing)).code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_forged_token_is_refused(sharing, make_user) -> None:
    user = make_user()
    forged = user.access_token[:-4] + ("AAAA" if not user.access_token.endswith("AAAA") else "BBBB")
    request = pb.GetRoleRequest(event_id=str(uuid.uuid4()), user_id=user.id)
    error = rpc_error(
        lambda: sharing.GetRole(request, metadata=[("authorization", f"Bearer {forged}")])
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_last_owner_cannot_be_demoted_or_removed(sharing, make_user) -> None:
    owner, second = make_user(), make_user()
    event_id = new_event(sharing, owner)
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


def test_concurrent_demotions_leave_one_owner(sharing, make_user) -> None:
    first, second = make_user(), make_user()
    for _ in range(5):
        event_id = new_event(sharing, first)
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


def test_concurrent_self_demotions_leave_one_owner(sharing, make_user) -> None:
    first, second = make_user(), make_user()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for _ in range(5):
            event_id = new_event(sharing, first)
            share(sharing, first, event_id, (second, OWNER))

            def leave(user: User, event_id: str = event_id) -> str:
                request = pb.RevokePermissionRequest(event_id=event_id, user_id=user.id)
                try:
                    sharing.RevokePermission(request, metadata=auth(user))
                except grpc.RpcError as error:
                    return error.code().name
                return "ok"

            outcomes = sorted(pool.map(leave, (first, second)))
            assert outcomes == ["ABORTED", "ok"]
            roles = [role_of(sharing, first, event_id, u.id) for u in (first, second)]
            assert sorted(roles) == [UNSPECIFIED, OWNER]


def _database_url(stack: Stack) -> str:
    return stack.env["EVENTHUB_DATABASE_URL"].replace("+psycopg", "")


def test_every_change_is_audited_and_published(sharing, make_user, stack: Stack) -> None:
    owner, user = make_user(), make_user()
    event_id = new_event(sharing, owner)
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
    with psycopg.connect(_database_url(stack)) as conn:
        audit = conn.execute(
            "SELECT sequence, user_id::text, role, previous_role, actor_id::text"
            " FROM sharing.permission_changes WHERE event_id = %s ORDER BY sequence",
            (event_id,),
        ).fetchall()
    assert [row[:4] for row in audit] == expected
    assert {row[4] for row in audit} == {owner.id}

    async def published() -> list[dict]:
        client = await nats.connect(stack.env.get("EVENTHUB_NATS_URL", "nats://127.0.0.1:4222"))
        try:
            js = client.jetstream()
            subject = sharing_subject(stack.env["EVENTHUB_NAMESPACE"], event_id)
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
                assert message.headers["Nats-Msg-Id"] == f"{event_id}:perm:{payload['sequence']}"
                messages.append(payload)
            await subscription.unsubscribe()
            return messages
        finally:
            await client.close()

    messages = asyncio.run(published())
    assert [
        (m["sequence"], m["user_id"], m["role"], m["previous_role"]) for m in messages
    ] == expected
    assert all(m["event_id"] == event_id and m["actor_id"] == owner.id for m in messages)


def test_writes_succeed_while_nats_is_down(make_user, stack: Stack) -> None:
    """A sharing replica that cannot reach NATS still commits; the change waits in the outbox."""
    owner, user = make_user(), make_user()
    addr = f"127.0.0.1:{free_port()}"
    dead_nats = f"nats://127.0.0.1:{free_port()}"
    stack.start(
        "sharing_service",
        {"EVENTHUB_SHARING_ADDR": addr, "EVENTHUB_NATS_URL": dead_nats},
        tag="_without_nats",
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

            wait_until(serving, 30, "the NATS-less sharing replica")
            replica = SharingServiceStub(channel)
            event_id = new_event(replica, owner)
            share(replica, owner, event_id, (user, EDITOR))
            assert role_of(replica, owner, event_id, user.id) == EDITOR
    finally:
        stack.stop("sharing_service_without_nats")
    with psycopg.connect(_database_url(stack)) as conn:
        rows = conn.execute(
            "SELECT msg_id FROM sharing.outbox WHERE subject = %s ORDER BY id",
            (sharing_subject(stack.env["EVENTHUB_NAMESPACE"], event_id),),
        ).fetchall()
    assert [row[0] for row in rows] == [f"{event_id}:perm:1", f"{event_id}:perm:2"]


def test_the_service_validates_share_requests_itself(sharing, make_user) -> None:
    """Callers that bypass the gateway get the same field paths."""
    owner, user = make_user(), make_user()
    event_id = new_event(sharing, owner)
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


def test_unknown_users_are_named_and_nothing_is_shared(sharing, make_user) -> None:
    owner, user = make_user(), make_user()
    event_id = new_event(sharing, owner)
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
