"""The Change stream section of API.md over HTTP against the running system.

Waits are on conditions with deadlines. "Nothing arrived" is proven with a barrier: a later
change the same stream must deliver (streams are in commit order), so anything that should
not be there would have come before it.
"""

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from scripts.stack import wait_until
from tests.conftest import User
from tests.e2e.helpers import assert_problem, patch_anyway, share
from tests.sse import DELIVERY, EventStream, Frame

DATA_KEYS = {"event_id", "version", "change_type", "actor_id", "occurred_at"}
DAYS = itertools.count()  # distinct times, so a rollback never conflicts


def create(api: httpx.Client, user: User, **fields: Any) -> dict[str, Any]:
    start = datetime(2033, 1, 1, 9, tzinfo=UTC) + timedelta(days=next(DAYS))
    body = {
        "title": "Streamed",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=1)).isoformat(),
        "allow_conflicts": True,
        **fields,
    }
    response = api.post("/api/events", headers=user.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def summary(frame: Frame) -> tuple[str, str, int, str, str]:
    """(event, event_id, version, change_type, actor_id) of a change frame, its data checked."""
    body = frame.body
    assert set(body) == DATA_KEYS, body
    assert datetime.fromisoformat(body["occurred_at"]).utcoffset() is not None, body
    assert frame.id, frame
    return frame.event, body["event_id"], body["version"], body["change_type"], body["actor_id"]


@pytest.fixture
def owner(make_user: Callable[..., User]) -> User:
    return make_user("owner")


def test_headers_are_sent_at_once(open_stream, owner: User) -> None:
    stream = open_stream(owner)
    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    assert stream.opened_in < DELIVERY


def test_a_create_arrives_within_2s_as_changed_created(
    api: httpx.Client, open_stream, owner: User
) -> None:
    stream = open_stream(owner)
    event_id = create(api, owner)["id"]
    frame = stream.wait_for(lambda f: f.about(event_id), DELIVERY, "frame about the new event")
    assert summary(frame) == ("changed", event_id, 1, "created", owner.id)


def test_updates_rollbacks_and_deletes_arrive_in_commit_order(
    api: httpx.Client, open_stream, owner: User
) -> None:
    stream = open_stream(owner)
    first, second = create(api, owner)["id"], create(api, owner)["id"]
    patch_anyway(api, owner, first, title="Renamed")
    rolled_back = api.post(
        f"/api/events/{first}/rollback/1", headers=owner.headers, json={"allow_conflicts": True}
    )
    assert rolled_back.status_code == 200, rolled_back.text
    deleted = api.delete(f"/api/events/{second}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text

    stream.wait_change(second, 2, "deleted")
    assert [summary(frame) for frame in stream.frames] == [
        ("changed", first, 1, "created", owner.id),
        ("changed", second, 1, "created", owner.id),
        ("changed", first, 2, "updated", owner.id),
        ("changed", first, 3, "rolled_back", owner.id),
        ("deleted", second, 2, "deleted", owner.id),
    ]
    assert len({frame.id for frame in stream.frames}) == 5


def test_a_grantee_gets_shared_then_changes_then_shared_for_a_new_role(
    api: httpx.Client, open_stream, owner: User, make_user: Callable[..., User]
) -> None:
    grantee = make_user("grantee")
    stream = open_stream(grantee)
    event_id = create(api, owner)["id"]
    share(api, owner, event_id, grantee, "viewer")
    stream.wait_change(event_id, 1, "shared")
    patch_anyway(api, owner, event_id, title="Updated")
    stream.wait_change(event_id, 2)
    promoted = api.put(
        f"/api/events/{event_id}/permissions/{grantee.id}",
        headers=owner.headers,
        json={"role": "editor"},
    )
    assert promoted.status_code == 200, promoted.text
    stream.wait_change(event_id, 2, "shared")
    assert [summary(frame) for frame in stream.about(event_id)] == [
        ("shared", event_id, 1, "shared", owner.id),
        ("changed", event_id, 2, "updated", owner.id),
        ("shared", event_id, 2, "shared", owner.id),
    ]


def test_revocation_sends_access_lost_and_nothing_more_on_that_event(
    api: httpx.Client, open_stream, owner: User, make_user: Callable[..., User]
) -> None:
    grantee = make_user("grantee")
    owners, grantees = open_stream(owner), open_stream(grantee)
    event_id = create(api, owner)["id"]
    share(api, owner, event_id, grantee, "editor")
    grantees.wait_change(event_id, 1, "shared")
    revoked = api.delete(f"/api/events/{event_id}/permissions/{grantee.id}", headers=owner.headers)
    assert revoked.status_code == 204, revoked.text
    lost = grantees.wait_change(event_id, 1, "access_lost")
    assert summary(lost) == ("access_lost", event_id, 1, "access_lost", owner.id)

    patch_anyway(api, owner, event_id, title="After revocation")
    owners.wait_change(event_id, 2)
    barrier = create(api, owner)["id"]
    share(api, owner, barrier, grantee, "viewer")
    grantees.wait_change(barrier, 1, "shared")
    assert [frame.event for frame in grantees.about(event_id)] == ["shared", "access_lost"]


def test_a_stranger_hears_nothing_of_others_events(
    api: httpx.Client, open_stream, owner: User, make_user: Callable[..., User]
) -> None:
    stranger = make_user("stranger")
    owners, strangers = open_stream(owner), open_stream(stranger)
    event_id = create(api, owner)["id"]
    patch_anyway(api, owner, event_id, title="Private")
    assert api.delete(f"/api/events/{event_id}", headers=owner.headers).status_code == 204
    owners.wait_change(event_id, 3, "deleted")
    barrier = create(api, stranger)["id"]
    strangers.wait_change(barrier, 1)
    assert [frame.body["event_id"] for frame in strangers.frames] == [barrier]


def test_a_change_through_one_gateway_reaches_a_stream_on_another(
    api: httpx.Client, open_stream, start_gateway, owner: User
) -> None:
    other = start_gateway()
    on_main, on_other = open_stream(owner), open_stream(owner, base_url=str(other.base_url))
    through_main = create(api, owner)["id"]
    on_other.wait_change(through_main, 1)
    through_other = create(other, owner)["id"]
    on_main.wait_change(through_other, 1)
    for stream in (on_main, on_other):
        stream.wait_change(through_other, 1)
        assert [frame.body["event_id"] for frame in stream.frames] == [through_main, through_other]


def test_last_event_id_replays_what_was_missed(api: httpx.Client, open_stream, owner: User) -> None:
    first = open_stream(owner)
    event_id = create(api, owner)["id"]
    resume_from = first.wait_change(event_id, 1)
    patch_anyway(api, owner, event_id, title="Seen live")
    first.wait_change(event_id, 2)
    first.close()

    patch_anyway(api, owner, event_id, title="Missed")
    other_id = create(api, owner)["id"]
    assert api.delete(f"/api/events/{event_id}", headers=owner.headers).status_code == 204

    resumed = open_stream(owner, last_event_id=resume_from.id)
    resumed.wait_change(event_id, 4, "deleted", timeout=5)
    assert all(frame.event != "reset" for frame in resumed.frames)
    received = iter([(frame.body["event_id"], frame.body["version"]) for frame in resumed.frames])
    expected = [(event_id, 2), (event_id, 3), (other_id, 1), (event_id, 4)]
    assert all(change in received for change in expected), resumed.frames  # in this order

    live = create(api, owner)["id"]
    resumed.wait_change(live, 1)


@pytest.mark.parametrize("last_event_id", ["garbage", "%%%", "999999999999999999"])
def test_an_unknown_last_event_id_gets_reset_first(
    api: httpx.Client, open_stream, owner: User, last_event_id: str
) -> None:
    stream = open_stream(owner, last_event_id=last_event_id)
    first = stream.wait_for(lambda frame: True, 5, "reset frame")
    assert (first.event, first.body) == ("reset", {})
    event_id = create(api, owner)["id"]
    stream.wait_change(event_id, 1)
    assert stream.frames[0] is first


def test_another_users_last_event_id_gets_reset_and_none_of_their_changes(
    api: httpx.Client, open_stream, owner: User, make_user: Callable[..., User]
) -> None:
    other = make_user("other")
    owners = open_stream(owner)
    event_id = create(api, owner)["id"]
    theirs = owners.wait_change(event_id, 1)
    patch_anyway(api, owner, event_id, title="After that id")
    owners.wait_change(event_id, 2)

    stream = open_stream(other, last_event_id=theirs.id)
    first = stream.wait_for(lambda frame: True, 5, "reset frame")
    assert (first.event, first.body) == ("reset", {})
    barrier = create(api, other)["id"]
    stream.wait_change(barrier, 1)
    assert stream.about(event_id) == []


def test_ping_comments_arrive_at_the_configured_interval(
    open_stream, start_gateway, owner: User
) -> None:
    fast = start_gateway(EVENTHUB_STREAM_PING_INTERVAL="1")
    stream = open_stream(owner, base_url=str(fast.base_url))
    pings = stream.wait_comments(3, timeout=6)
    assert all(ping.startswith("ping") for ping in pings), pings
    assert stream.frames == [] and not stream.ended


def assert_refused(stream: EventStream) -> None:
    assert_problem(stream.response, 429)
    assert int(stream.response.headers["Retry-After"]) >= 0


@pytest.mark.parametrize("across_gateways", [False, True])
def test_a_sixth_stream_is_429_until_one_closes(
    open_stream, start_gateway, owner: User, across_gateways: bool
) -> None:
    """Five open streams per user, counted across gateways; a closed one frees its slot."""
    other = str(start_gateway().base_url) if across_gateways else None
    streams = [open_stream(owner, base_url=other if n % 2 else None) for n in range(5)]
    assert [stream.response.status_code for stream in streams] == [200] * 5
    for base_url in {None, other}:
        assert_refused(open_stream(owner, base_url=base_url))
    streams[1].close()

    def reopened() -> bool:
        stream = open_stream(owner)
        if stream.response.status_code == 200:
            return True
        assert_refused(stream)
        return False

    wait_until(reopened, 20, "a freed stream slot", interval=0.5)
    assert_refused(open_stream(owner, base_url=other))


def test_logout_closes_the_stream_with_token_revoked(
    api: httpx.Client, open_stream, owner: User
) -> None:
    stream = open_stream(owner)
    assert api.post("/api/auth/logout", headers=owner.headers).status_code == 204
    closed = stream.wait_for(lambda frame: frame.event == "closed", 5, "closed frame")
    assert closed.body == {"reason": "token_revoked"}
    stream.wait_ended(5)
    assert stream.frames[-1] is closed
