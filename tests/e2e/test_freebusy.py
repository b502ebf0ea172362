"""The Free/busy section of API.md over HTTP: merged busy times of a user's own events
(exceptions applied, clipped, in the asked offset), visible to others only by grant,
per-user errors, and the grants themselves."""

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import User
from tests.e2e.helpers import assert_problem, share

WINDOW = {"start": "2034-03-02T00:00:00Z", "end": "2034-03-09T00:00:00Z"}


def create(api: httpx.Client, user: User, start: str, end: str, **fields: Any) -> str:
    body = {"title": "Busy", "start_time": start, "end_time": end, "allow_conflicts": True}
    response = api.post("/api/events", headers=user.headers, json={**body, **fields})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def free_busy(api: httpx.Client, caller: User, *users: dict, **fields: Any) -> dict:
    body = {**WINDOW, "users": list(users), **fields}
    response = api.post("/api/freebusy", headers=caller.headers, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def busy_of(answer: dict, key: str) -> list[tuple[str, str]]:
    found = answer["users"][key]
    assert found["errors"] == [], found
    return [(interval["start"], interval["end"]) for interval in found["busy"]]


def grant(api: httpx.Client, owner: User, grantee: User) -> httpx.Response:
    return api.put(f"/api/freebusy/grants/{grantee.id}", headers=owner.headers)


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[..., User]) -> User:
    return make_user("bob")


def test_own_events_merge_clip_and_sort_in_the_asked_offset(api: httpx.Client, alice: User):
    create(api, alice, "2034-03-03T10:00:00Z", "2034-03-03T11:00:00Z")
    create(api, alice, "2034-03-03T10:30:00Z", "2034-03-03T12:00:00Z")  # overlaps
    create(api, alice, "2034-03-03T12:00:00Z", "2034-03-03T12:30:00Z")  # touches
    create(api, alice, "2034-03-01T22:00:00Z", "2034-03-02T01:00:00Z")  # starts before
    create(api, alice, "2034-03-01T08:00:00Z", "2034-03-01T09:00:00Z")  # outside
    deleted = create(api, alice, "2034-03-05T08:00:00Z", "2034-03-05T09:00:00Z")
    assert api.delete(f"/api/events/{deleted}", headers=alice.headers).status_code == 204

    answer = free_busy(api, alice, {"user_id": alice.id}, timezone="Europe/Paris")
    assert answer["timezone"] == "Europe/Paris"
    assert answer["start"] == "2034-03-02T01:00:00+01:00"
    assert busy_of(answer, alice.id) == [
        ("2034-03-02T01:00:00+01:00", "2034-03-02T02:00:00+01:00"),
        ("2034-03-03T11:00:00+01:00", "2034-03-03T13:30:00+01:00"),
    ]
    utc = free_busy(api, alice, {"username": alice.username})
    assert busy_of(utc, alice.username)[0] == ("2034-03-02T00:00:00Z", "2034-03-02T01:00:00Z")


def test_a_series_counts_with_its_exceptions(api: httpx.Client, alice: User) -> None:
    series = create(
        api,
        alice,
        "2034-02-27T09:00:00Z",
        "2034-02-27T10:00:00Z",
        is_recurring=True,
        recurrence_rule="FREQ=DAILY;COUNT=10",
    )
    occurrence = f"/api/events/{series}/occurrences"
    cancelled = api.delete(f"{occurrence}/2034-03-04T09:00:00Z", headers=alice.headers)
    assert cancelled.status_code == 204, cancelled.text
    moved = api.patch(
        f"{occurrence}/2034-03-05T09:00:00Z",
        headers=alice.headers,
        json={"start_time": "2034-03-05T15:00:00Z", "end_time": "2034-03-05T16:30:00Z"},
    )
    assert moved.status_code == 200, moved.text

    busy = busy_of(free_busy(api, alice, {"user_id": alice.id}), alice.id)
    assert busy == [
        ("2034-03-02T09:00:00Z", "2034-03-02T10:00:00Z"),
        ("2034-03-03T09:00:00Z", "2034-03-03T10:00:00Z"),
        ("2034-03-05T15:00:00Z", "2034-03-05T16:30:00Z"),
        ("2034-03-06T09:00:00Z", "2034-03-06T10:00:00Z"),
        ("2034-03-07T09:00:00Z", "2034-03-07T10:00:00Z"),
        ("2034-03-08T09:00:00Z", "2034-03-08T10:00:00Z"),
    ]  # 27 February to 8 March; none of 1 March and before, the 4th cancelled


def test_only_events_the_user_owns_count(api: httpx.Client, alice: User, bob: User) -> None:
    as_editor = create(api, bob, "2034-03-04T09:00:00Z", "2034-03-04T10:00:00Z")
    share(api, bob, as_editor, alice, "editor")
    co_owned = create(api, bob, "2034-03-06T09:00:00Z", "2034-03-06T10:00:00Z")
    share(api, bob, co_owned, alice, "owner")
    busy = busy_of(free_busy(api, alice, {"user_id": alice.id}), alice.id)
    assert busy == [("2034-03-06T09:00:00Z", "2034-03-06T10:00:00Z")]


def test_others_only_by_grant_effective_on_the_next_request(
    api: httpx.Client, alice: User, bob: User
) -> None:
    create(api, bob, "2034-03-04T09:00:00Z", "2034-03-04T10:00:00Z", title="Secret")
    hidden = free_busy(api, alice, {"user_id": bob.id})["users"][bob.id]
    assert hidden["busy"] == []
    assert [error["reason"] for error in hidden["errors"]] == ["forbidden"]

    assert grant(api, bob, alice).status_code == 201
    shown = free_busy(api, alice, {"user_id": bob.id})
    assert busy_of(shown, bob.id) == [("2034-03-04T09:00:00Z", "2034-03-04T10:00:00Z")]
    assert "Secret" not in str(shown)

    gone = api.delete(f"/api/freebusy/grants/{alice.id}", headers=bob.headers)
    assert gone.status_code == 204
    again = free_busy(api, alice, {"user_id": bob.id})["users"][bob.id]
    assert [error["reason"] for error in again["errors"]] == ["forbidden"]


def test_unknown_users_get_their_own_error_keyed_as_sent(api: httpx.Client, alice: User) -> None:
    stranger_id = str(uuid.uuid4())
    answer = free_busy(
        api,
        alice,
        {"user_id": stranger_id},
        {"username": "nobody_by_that_name"},
        {"user_id": alice.id},
    )
    assert set(answer["users"]) == {stranger_id, "nobody_by_that_name", alice.id}
    for key in (stranger_id, "nobody_by_that_name"):
        assert answer["users"][key]["busy"] == []
        assert [e["reason"] for e in answer["users"][key]["errors"]] == ["not_found"]
    assert answer["users"][alice.id]["errors"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"end": WINDOW["start"]}, "end"),
        ({"end": "2035-03-09T00:00:00Z"}, "end"),
        ({"users": []}, "users"),
        ({"users": [{"username": f"u{n}"} for n in range(51)]}, "users"),
        ({"users": [{"user_id": str(uuid.uuid4()), "username": "both"}]}, "users.0"),
        ({"start": "2034-03-02T00:00:00"}, "start"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ],
)
def test_bad_queries_are_422_naming_the_field(
    api: httpx.Client, alice: User, change: dict, field: str
) -> None:
    body = {**WINDOW, "users": [{"user_id": alice.id}], **change}
    problem = assert_problem(api.post("/api/freebusy", headers=alice.headers, json=body), 422)
    assert any(error["field"] == field for error in problem["errors"]), problem


def test_a_free_busy_query_ignores_idempotency_keys(api: httpx.Client, alice: User) -> None:
    headers = {**alice.headers, "Idempotency-Key": "the-same-key"}
    body = {**WINDOW, "users": [{"user_id": alice.id}]}
    first = api.post("/api/freebusy", headers=headers, json=body)
    create(api, alice, "2034-03-04T09:00:00Z", "2034-03-04T10:00:00Z")
    second = api.post("/api/freebusy", headers=headers, json=body)
    assert first.json()["users"][alice.id]["busy"] == []
    assert len(second.json()["users"][alice.id]["busy"]) == 1


def test_grants_are_listed_created_once_and_removed(
    api: httpx.Client, alice: User, bob: User
) -> None:
    created = grant(api, alice, bob)
    assert created.status_code == 201, created.text
    assert {created.json()["user_id"], created.json()["username"]} == {bob.id, bob.username}
    again = grant(api, alice, bob)
    assert again.status_code == 200
    assert again.json() == created.json()
    listed = api.get("/api/freebusy/grants", headers=alice.headers).json()["items"]
    assert listed == [created.json()]
    assert api.get("/api/freebusy/grants", headers=bob.headers).json()["items"] == []
    url = f"/api/freebusy/grants/{bob.id}"
    assert api.delete(url, headers=alice.headers).status_code == 204
    assert_problem(api.delete(url, headers=alice.headers), 404)
    assert api.get("/api/freebusy/grants", headers=alice.headers).json()["items"] == []


def test_a_grant_to_nobody_is_404_and_to_oneself_422(api: httpx.Client, alice: User) -> None:
    assert_problem(api.put(f"/api/freebusy/grants/{uuid.uuid4()}", headers=alice.headers), 404)
    assert_problem(api.put(f"/api/freebusy/grants/{alice.id}", headers=alice.headers), 422)
    assert api.get("/api/freebusy/grants", headers=alice.headers).json()["items"] == []


def test_a_change_shows_in_the_next_answer(api: httpx.Client, alice: User, bob: User) -> None:
    """Answers are cached per user and window: every write to the user's events
    replaces them, whoever asks."""
    event_id = create(api, bob, "2034-03-04T09:00:00Z", "2034-03-04T10:00:00Z")
    assert grant(api, bob, alice).status_code == 201
    for caller in (bob, alice, bob):
        assert busy_of(free_busy(api, caller, {"user_id": bob.id}), bob.id) == [
            ("2034-03-04T09:00:00Z", "2034-03-04T10:00:00Z")
        ]
    moved = {"start_time": "2034-03-05T09:00:00Z", "end_time": "2034-03-05T11:00:00Z"}
    response = api.patch(f"/api/events/{event_id}", headers=bob.headers, json=moved)
    assert response.status_code == 200, response.text
    assert busy_of(free_busy(api, alice, {"user_id": bob.id}), bob.id) == [
        ("2034-03-05T09:00:00Z", "2034-03-05T11:00:00Z")
    ]
