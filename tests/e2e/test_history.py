"""Versions and changelog (API.md): history, versions, changelog, diff and rollback over
HTTP, with read-your-writes (no sleeps anywhere), roles, deletion and bad input."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import User
from tests.e2e.helpers import assert_problem, share

START = "2031-03-03T09:00:00Z"
END = "2031-03-03T10:00:00Z"
EDITABLE = {
    "title",
    "description",
    "location",
    "start_time",
    "end_time",
    "timezone",
    "is_recurring",
    "recurrence_rule",
}


def create_event(api: httpx.Client, owner: User, **fields: Any) -> dict[str, Any]:
    body = {"title": "Planning", "start_time": START, "end_time": END, **fields}
    response = api.post("/api/events", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()


def patch(api: httpx.Client, user: User, event_id: str, **fields: Any) -> dict[str, Any]:
    response = api.patch(f"/api/events/{event_id}", json=fields, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def content(event: dict[str, Any]) -> dict[str, Any]:
    return {field: event[field] for field in EDITABLE}


@pytest.fixture
def owner(make_user: Callable[..., User]) -> User:
    return make_user("owner")


def test_history_lists_every_version_oldest_first(api: httpx.Client, owner: User) -> None:
    event = create_event(api, owner)
    patch(api, owner, event["id"], title="Planning 2")
    patch(api, owner, event["id"], location="Room 4")

    response = api.get(f"/api/events/{event['id']}/history", headers=owner.headers)

    assert response.status_code == 200, response.text
    assert "link" not in response.headers
    items = response.json()["items"]
    assert [item["version"] for item in items] == [1, 2, 3]
    assert [item["change_type"] for item in items] == ["created", "updated", "updated"]
    assert {item["changed_by"] for item in items} == {owner.id}
    assert all(
        set(item) == {"version", "changed_by", "changed_at", "change_type"} for item in items
    )
    assert items[0]["changed_at"].endswith("Z") and items[0]["changed_at"] <= items[2]["changed_at"]


def test_changelog_includes_a_write_made_just_before(api: httpx.Client, owner: User) -> None:
    event = create_event(api, owner, description="first")
    for round_number in range(1, 6):
        patch(api, owner, event["id"], title=f"Round {round_number}")
        response = api.get(f"/api/events/{event['id']}/changelog", headers=owner.headers)
        assert response.status_code == 200, response.text
        last = response.json()["items"][-1]
        assert last["version"] == round_number + 1
        old_title = "Planning" if round_number == 1 else f"Round {round_number - 1}"
        assert last["changes"] == {"title": {"old": old_title, "new": f"Round {round_number}"}}

    created = response.json()["items"][0]
    assert created["change_type"] == "created"
    assert set(created["changes"]) == EDITABLE
    assert all(change["old"] is None for change in created["changes"].values())
    assert created["changes"]["description"]["new"] == "first"


def test_a_version_shows_the_event_as_it_stood(api: httpx.Client, owner: User) -> None:
    created = create_event(api, owner, location="Room 1")
    updated = patch(api, owner, created["id"], title="Renamed", location="Room 2")

    first = api.get(f"/api/events/{created['id']}/history/1", headers=owner.headers)
    second = api.get(f"/api/events/{created['id']}/history/2", headers=owner.headers)

    assert first.status_code == 200, first.text
    body = first.json()
    assert {k: body[k] for k in ("version", "change_type", "changed_by")} == {
        "version": 1,
        "change_type": "created",
        "changed_by": owner.id,
    }
    assert body["event"] == {**created, "role": None}
    assert second.json()["event"] == {**updated, "role": None}


def test_diff_names_only_the_fields_that_differ_in_either_order(
    api: httpx.Client, owner: User
) -> None:
    event = create_event(api, owner)
    patch(api, owner, event["id"], title="Renamed")
    patch(api, owner, event["id"], location="Room 9", end_time="2031-03-03T11:00:00Z")
    base = f"/api/events/{event['id']}/diff"

    forward = api.get(f"{base}/1/3", headers=owner.headers)
    backward = api.get(f"{base}/3/1", headers=owner.headers)
    same = api.get(f"{base}/2/2", headers=owner.headers)

    assert forward.status_code == 200, forward.text
    assert forward.json() == {
        "event_id": event["id"],
        "from_version": 1,
        "to_version": 3,
        "changes": {
            "title": {"old": "Planning", "new": "Renamed"},
            "location": {"old": "", "new": "Room 9"},
            "end_time": {"old": END, "new": "2031-03-03T11:00:00Z"},
        },
    }
    assert backward.json()["changes"] == {
        field: {"old": change["new"], "new": change["old"]}
        for field, change in forward.json()["changes"].items()
    }
    assert (backward.json()["from_version"], backward.json()["to_version"]) == (3, 1)
    assert same.json()["changes"] == {}


def test_rollback_makes_a_new_version_with_the_old_content(api: httpx.Client, owner: User) -> None:
    original = create_event(api, owner, description="v1 text")
    patch(api, owner, original["id"], title="Changed", description="v2 text", location="Hall")

    response = api.post(f"/api/events/{original['id']}/rollback/1", headers=owner.headers)

    assert response.status_code == 200, response.text
    rolled_back = response.json()
    assert rolled_back["version"] == 3
    assert response.headers["etag"] == '"3"'
    assert content(rolled_back) == content(original)
    assert rolled_back["role"] == "owner"
    current = api.get(f"/api/events/{original['id']}", headers=owner.headers).json()
    assert content(current) == content(original) and current["version"] == 3
    changelog = api.get(f"/api/events/{original['id']}/changelog", headers=owner.headers).json()
    last = changelog["items"][-1]
    assert (last["version"], last["change_type"], last["changed_by"]) == (
        3,
        "rolled_back",
        owner.id,
    )
    assert last["changes"]["title"] == {"old": "Changed", "new": "Planning"}
    assert set(last["changes"]) == {"title", "description", "location"}


def test_rollback_honours_if_match(api: httpx.Client, owner: User) -> None:
    event = create_event(api, owner)
    patch(api, owner, event["id"], title="Changed")
    url = f"/api/events/{event['id']}/rollback/1"

    for tag in ('"1"', 'W/"2"', '"two"'):
        assert_problem(api.post(url, headers={**owner.headers, "If-Match": tag}), 412)
    history = api.get(f"/api/events/{event['id']}/history", headers=owner.headers).json()
    assert len(history["items"]) == 2

    fresh = api.post(url, headers={**owner.headers, "If-Match": '"2"'})
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["version"] == 3


def test_rollback_into_a_conflict_is_409_unless_allowed(api: httpx.Client, owner: User) -> None:
    moved = create_event(api, owner)
    patch(
        api, owner, moved["id"], start_time="2031-03-03T12:00:00Z", end_time="2031-03-03T13:00:00Z"
    )
    blocker = create_event(api, owner, title="Took the slot")
    url = f"/api/events/{moved['id']}/rollback/1"

    refused = api.post(url, headers=owner.headers)

    body = assert_problem(refused, 409)
    assert [c["event_id"] for c in body["conflicts"]] == [blocker["id"]]
    assert body["conflicts"][0]["start_time"] == START
    history = api.get(f"/api/events/{moved['id']}/history", headers=owner.headers).json()
    assert [item["version"] for item in history["items"]] == [1, 2]

    allowed = api.post(url, json={"allow_conflicts": True}, headers=owner.headers)
    assert allowed.status_code == 200, allowed.text
    assert (allowed.json()["start_time"], allowed.json()["version"]) == (START, 3)


def test_roles_on_history_routes(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    viewer, editor, stranger = make_user("viewer"), make_user("editor"), make_user("stranger")
    event = create_event(api, owner)
    share(api, owner, event["id"], viewer, "viewer")
    share(api, owner, event["id"], editor, "editor")
    patch(api, editor, event["id"], title="Edited")
    base = f"/api/events/{event['id']}"
    reads = [f"{base}/history", f"{base}/history/1", f"{base}/changelog", f"{base}/diff/1/2"]

    for url in reads:
        assert api.get(url, headers=viewer.headers).status_code == 200, url
        assert_problem(api.get(url, headers=stranger.headers), 404)
        assert_problem(api.get(url), 401)
    changelog = api.get(f"{base}/changelog", headers=viewer.headers).json()
    assert changelog["items"][1]["changed_by"] == editor.id

    assert_problem(api.post(f"{base}/rollback/1", headers=viewer.headers), 403)
    assert_problem(api.post(f"{base}/rollback/1", headers=stranger.headers), 404)
    by_editor = api.post(f"{base}/rollback/1", headers=editor.headers)
    assert by_editor.status_code == 200, by_editor.text
    assert (by_editor.json()["title"], by_editor.json()["role"]) == ("Planning", "editor")
    last = api.get(f"{base}/history", headers=owner.headers).json()["items"][-1]
    assert (last["change_type"], last["changed_by"]) == ("rolled_back", editor.id)


def test_history_outlives_deletion(api: httpx.Client, owner: User) -> None:
    event = create_event(api, owner)
    patch(api, owner, event["id"], title="Last title")
    deleted = api.delete(f"/api/events/{event['id']}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    base = f"/api/events/{event['id']}"

    history = api.get(f"{base}/history", headers=owner.headers)
    changelog = api.get(f"{base}/changelog", headers=owner.headers)

    assert history.status_code == 200, history.text
    assert [i["change_type"] for i in history.json()["items"]] == ["created", "updated", "deleted"]
    assert changelog.json()["items"][-1]["changes"] == {}
    last_state = api.get(f"{base}/history/3", headers=owner.headers).json()["event"]
    assert (last_state["title"], last_state["version"]) == ("Last title", 3)
    diff = api.get(f"{base}/diff/1/3", headers=owner.headers).json()
    assert diff["changes"] == {"title": {"old": "Planning", "new": "Last title"}}
    assert_problem(api.post(f"{base}/rollback/1", headers=owner.headers), 404)


def test_bad_versions_and_unknown_events(api: httpx.Client, owner: User) -> None:
    event = create_event(api, owner)
    base = f"/api/events/{event['id']}"

    for url in (f"{base}/history/abc", f"{base}/history/0", f"{base}/history/-1"):
        body = assert_problem(api.get(url, headers=owner.headers), 422)
        assert body["errors"][0]["field"] == "version_id"
    body = assert_problem(api.get(f"{base}/diff/1/x", headers=owner.headers), 422)
    assert body["errors"][0]["field"] == "version_id2"
    assert_problem(api.post(f"{base}/rollback/1.5", headers=owner.headers), 422)
    assert_problem(api.get(f"{base}/history?limit=0", headers=owner.headers), 422)
    assert_problem(api.get(f"{base}/changelog?after=-1", headers=owner.headers), 422)

    assert_problem(api.get(f"{base}/history/2", headers=owner.headers), 404)
    assert_problem(api.get(f"{base}/diff/1/2", headers=owner.headers), 404)
    assert_problem(api.post(f"{base}/rollback/2", headers=owner.headers), 404)
    for unknown in ("00000000-0000-4000-8000-000000000000", "not-a-uuid"):
        assert_problem(api.get(f"/api/events/{unknown}/history", headers=owner.headers), 404)
        assert_problem(api.post(f"/api/events/{unknown}/rollback/1", headers=owner.headers), 404)


def test_long_histories_are_paged_with_link_headers(api: httpx.Client, owner: User) -> None:
    event = create_event(api, owner)
    for number in range(2, 6):
        patch(api, owner, event["id"], title=f"Title {number}")
    url = f"/api/events/{event['id']}/changelog?limit=2"

    seen: list[list[int]] = []
    while url:
        response = api.get(url, headers=owner.headers)
        assert response.status_code == 200, response.text
        seen.append([item["version"] for item in response.json()["items"]])
        url = response.links.get("next", {}).get("url", "")

    assert seen == [[1, 2], [3, 4], [5]]
    history = api.get(f"/api/events/{event['id']}/history?limit=4&after=2", headers=owner.headers)
    assert [item["version"] for item in history.json()["items"]] == [3, 4, 5]
