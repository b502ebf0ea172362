"""The section "Recurring exceptions" of API.md over HTTP: what every answer shows of
a series' exceptions, and addressing one occurrence by its recurrence id."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import psycopg
import pytest
import redis

from common.timeutil import rfc3339
from event_service.domain.exceptions import MAX_EXCEPTIONS
from scripts.stack import Stack, wait_until
from tests.conftest import User
from tests.e2e.helpers import assert_problem
from tests.e2e.test_events import create

WINDOW = {"start": "2026-03-01T00:00:00Z", "end": "2026-03-17T00:00:00Z"}


@pytest.fixture
def owner(make_user: Callable[..., User]) -> User:
    return make_user("owner")


def weekly_series(api: httpx.Client, owner: User) -> dict:
    return create(
        api,
        owner,
        start="2026-03-02T14:00:00Z",  # Monday 09:00 EST; EDT from March 8
        end="2026-03-02T15:00:00Z",
        timezone="America/New_York",
        is_recurring=True,
        recurrence_rule="FREQ=WEEKLY;BYDAY=MO",
        description="Weekly",
        location="Room 1",
    )


def test_events_answer_their_exceptions_and_none_is_empty(api: httpx.Client, owner: User) -> None:
    series = weekly_series(api, owner)
    assert series["overrides"] == {}
    url = f"/api/events/{series['id']}"
    assert api.get(url, headers=owner.headers).json()["overrides"] == {}
    assert api.patch(url, headers=owner.headers, json={"title": "x"}).json()["overrides"] == {}
    listed = api.get("/api/events", headers=owner.headers).json()["items"]
    assert [item["overrides"] for item in listed] == [{}]


def test_occurrences_show_their_original_start_status_and_series_values(
    api: httpx.Client, owner: User
) -> None:
    series = weekly_series(api, owner)
    for show_cancelled in ("false", "true"):
        response = api.get(
            f"/api/events/{series['id']}/occurrences",
            headers=owner.headers,
            params={**WINDOW, "show_cancelled": show_cancelled},
        )
        assert response.status_code == 200, response.text
        assert response.json()["items"] == [
            {
                "event_id": series["id"],
                "title": "Planning",
                "start_time": start,
                "end_time": end,
                "recurrence_id": start,
                "original_start_time": start,
                "status": "confirmed",
                "is_override": False,
                "description": "Weekly",
                "location": "Room 1",
            }
            for start, end in [
                ("2026-03-02T14:00:00Z", "2026-03-02T15:00:00Z"),
                ("2026-03-09T13:00:00Z", "2026-03-09T14:00:00Z"),
                ("2026-03-16T13:00:00Z", "2026-03-16T14:00:00Z"),
            ]
        ]
    expanded = api.get(
        "/api/events",
        headers=owner.headers,
        params={**WINDOW, "expand": "true", "show_cancelled": "true"},
    )
    assert [item["status"] for item in expanded.json()["items"]] == ["confirmed"] * 3


@pytest.mark.parametrize(
    "recurrence_id",
    ["2026-03-09T13:00:00Z", "2026-03-09T13:00:00z", "2026-03-09T09:00:00-04:00"],
)
def test_one_occurrence_by_its_recurrence_id(
    api: httpx.Client, owner: User, recurrence_id: str
) -> None:
    series = weekly_series(api, owner)
    response = api.get(
        f"/api/events/{series['id']}/occurrences/{quote(recurrence_id)}", headers=owner.headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"1"'
    occurrence = response.json()
    assert occurrence["recurrence_id"] == "2026-03-09T13:00:00Z"
    assert (occurrence["start_time"], occurrence["end_time"]) == (
        "2026-03-09T13:00:00Z",
        "2026-03-09T14:00:00Z",
    )
    assert occurrence["status"] == "confirmed"


def test_a_one_off_events_occurrence_is_its_start(api: httpx.Client, owner: User) -> None:
    event = create(api, owner)
    url = f"/api/events/{event['id']}/occurrences"
    found = api.get(f"{url}/{event['start_time']}", headers=owner.headers)
    assert found.status_code == 200, found.text
    assert found.json()["recurrence_id"] == event["start_time"]
    assert_problem(api.get(f"{url}/2026-03-02T09:30:00Z", headers=owner.headers), 404)


@pytest.mark.parametrize(
    "recurrence_id, status",
    [
        ("2026-03-10T13:00:00Z", 404),  # a Tuesday: not generated
        ("2026-03-09T13:00:30Z", 404),  # 30 s off
        ("2026-03-02T14:00:00Z", 200),  # the first
        ("2026-03-09T13:00:00", 422),  # no offset
        ("yesterday", 422),
        ("2026-02-30T13:00:00Z", 422),
    ],
)
def test_recurrence_ids_the_series_does_not_generate_are_404_and_malformed_ones_422(
    api: httpx.Client, owner: User, recurrence_id: str, status: int
) -> None:
    series = weekly_series(api, owner)
    response = api.get(
        f"/api/events/{series['id']}/occurrences/{quote(recurrence_id)}", headers=owner.headers
    )
    if status == 200:
        assert response.status_code == 200, response.text
        return
    body = assert_problem(response, status)
    if status == 422:
        assert [error["field"] for error in body["errors"]] == ["recurrence_id"]


def test_a_stranger_cannot_learn_an_occurrence_exists(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    series = weekly_series(api, owner)
    stranger = make_user("stranger")
    url = f"/api/events/{series['id']}/occurrences/2026-03-09T13:00:00Z"
    assert_problem(api.get(url, headers=stranger.headers), 404)


# Exception writes

SECOND = "2026-03-09T13:00:00Z"  # the series' second occurrence (09:00 EDT)


def occurrence_url(series: dict, recurrence_id: str = SECOND) -> str:
    return f"/api/events/{series['id']}/occurrences/{recurrence_id}"


def occurrences(api: httpx.Client, user: User, series: dict, **params: str) -> list[dict]:
    response = api.get(
        f"/api/events/{series['id']}/occurrences", headers=user.headers, params={**WINDOW, **params}
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


def changelog(api: httpx.Client, user: User, series: dict) -> list[dict]:
    response = api.get(f"/api/events/{series['id']}/changelog", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_an_occurrence_changed_and_moved_is_a_version_of_the_series(
    api: httpx.Client, owner: User
) -> None:
    series = weekly_series(api, owner)
    changed = api.patch(
        occurrence_url(series),
        headers=owner.headers,
        json={
            "title": "Moved",
            "start_time": "2026-03-10T15:00:00Z",
            "end_time": "2026-03-10T16:30:00Z",
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"'
    assert changed.json() == {
        "event_id": series["id"],
        "title": "Moved",
        "start_time": "2026-03-10T15:00:00Z",
        "end_time": "2026-03-10T16:30:00Z",
        "recurrence_id": SECOND,
        "original_start_time": SECOND,
        "status": "confirmed",
        "is_override": True,
        "description": "Weekly",
        "location": "Room 1",
    }
    event = api.get(f"/api/events/{series['id']}", headers=owner.headers).json()
    assert event["version"] == 2
    assert event["overrides"] == {
        SECOND: {
            "title": "Moved",
            "start_time": "2026-03-10T15:00:00Z",
            "end_time": "2026-03-10T16:30:00Z",
        }
    }
    listed = occurrences(api, owner, series)
    assert [(o["start_time"], o["title"]) for o in listed] == [
        ("2026-03-02T14:00:00Z", "Planning"),
        ("2026-03-10T15:00:00Z", "Moved"),
        ("2026-03-16T13:00:00Z", "Planning"),
    ]
    # Only its new time is in a window that holds it now.
    moved_window = {"start": "2026-03-10T00:00:00Z", "end": "2026-03-11T00:00:00Z"}
    assert [o["recurrence_id"] for o in occurrences(api, owner, series, **moved_window)] == [SECOND]
    old_window = {"start": "2026-03-09T00:00:00Z", "end": "2026-03-10T00:00:00Z"}
    assert occurrences(api, owner, series, **old_window) == []
    entry = changelog(api, owner, series)[-1]
    assert entry["change_type"] == "updated"
    assert entry["changes"] == {
        f"overrides.{SECOND}": {"old": None, "new": event["overrides"][SECOND]}
    }


def test_a_change_to_the_series_values_makes_no_version(api: httpx.Client, owner: User) -> None:
    series = weekly_series(api, owner)
    same = api.patch(
        occurrence_url(series),
        headers=owner.headers,
        json={"title": "Planning", "start_time": SECOND, "location": "Room 1"},
    )
    assert same.status_code == 200, same.text
    assert same.headers["etag"] == '"1"'
    assert same.json()["is_override"] is False
    assert len(changelog(api, owner, series)) == 1


def test_cancel_hides_an_occurrence_and_undo_brings_it_back(api: httpx.Client, owner: User) -> None:
    series = weekly_series(api, owner)
    patched = api.patch(occurrence_url(series), headers=owner.headers, json={"title": "Special"})
    assert patched.headers["etag"] == '"2"'
    cancelled = api.delete(occurrence_url(series), headers=owner.headers)
    assert cancelled.status_code == 204, cancelled.text
    assert cancelled.headers["etag"] == '"3"'
    event = api.get(f"/api/events/{series['id']}", headers=owner.headers).json()
    assert event["overrides"] == {SECOND: {"status": "cancelled"}}
    assert SECOND not in [o["recurrence_id"] for o in occurrences(api, owner, series)]
    shown = [
        o
        for o in occurrences(api, owner, series, show_cancelled="true")
        if o["recurrence_id"] == SECOND
    ]
    assert shown == [
        {
            "event_id": series["id"],
            "title": "Planning",
            "start_time": SECOND,
            "end_time": "2026-03-09T14:00:00Z",
            "recurrence_id": SECOND,
            "original_start_time": SECOND,
            "status": "cancelled",
            "is_override": False,
            "description": "Weekly",
            "location": "Room 1",
        }
    ]
    expanded = api.get(
        "/api/events", headers=owner.headers, params={**WINDOW, "expand": "true"}
    ).json()["items"]
    assert SECOND not in [o["recurrence_id"] for o in expanded]
    again = api.delete(occurrence_url(series), headers=owner.headers)
    assert again.status_code == 204 and again.headers["etag"] == '"3"'  # no version

    undone = api.delete(occurrence_url(series) + "/override", headers=owner.headers)
    assert undone.status_code == 204, undone.text
    assert undone.headers["etag"] == '"4"'
    assert api.get(f"/api/events/{series['id']}", headers=owner.headers).json()["overrides"] == {}
    assert SECOND in [o["recurrence_id"] for o in occurrences(api, owner, series)]
    assert_problem(api.delete(occurrence_url(series) + "/override", headers=owner.headers), 404)
    changes = [entry["changes"] for entry in changelog(api, owner, series)[1:]]
    assert changes == [
        {f"overrides.{SECOND}": {"old": None, "new": {"title": "Special"}}},
        {f"overrides.{SECOND}": {"old": {"title": "Special"}, "new": {"status": "cancelled"}}},
        {f"overrides.{SECOND}": {"old": {"status": "cancelled"}, "new": None}},
    ]


def test_a_patch_reinstates_a_cancelled_occurrence(api: httpx.Client, owner: User) -> None:
    series = weekly_series(api, owner)
    api.delete(occurrence_url(series), headers=owner.headers)
    reinstated = api.patch(
        occurrence_url(series), headers=owner.headers, json={"location": "Room 2"}
    )
    assert reinstated.status_code == 200, reinstated.text
    assert reinstated.json()["status"] == "confirmed"
    assert reinstated.json()["location"] == "Room 2"


def test_exception_writes_follow_the_series_roles_and_if_match(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    from tests.e2e.test_events import share

    series = weekly_series(api, owner)
    viewer, editor, stranger = make_user("viewer"), make_user("editor"), make_user("stranger")
    share(api, owner, series["id"], viewer, "viewer")
    share(api, owner, series["id"], editor, "editor")
    url = occurrence_url(series)
    assert_problem(api.patch(url, headers=viewer.headers, json={"title": "x"}), 403)
    assert_problem(api.delete(url, headers=viewer.headers), 403)
    assert_problem(api.patch(url, headers=stranger.headers, json={"title": "x"}), 404)
    assert_problem(api.delete(url + "/override", headers=stranger.headers), 404)
    stale = api.patch(url, headers={**editor.headers, "If-Match": '"7"'}, json={"title": "x"})
    assert_problem(stale, 412)
    fresh = api.patch(url, headers={**editor.headers, "If-Match": '"1"'}, json={"title": "x"})
    assert fresh.status_code == 200, fresh.text
    assert_problem(api.delete(url, headers={**editor.headers, "If-Match": '"1"'}), 412)
    assert api.delete(url, headers={**editor.headers, "If-Match": '"2"'}).status_code == 204


def test_bad_exception_writes_change_nothing(api: httpx.Client, owner: User) -> None:
    series = weekly_series(api, owner)
    one_off = create(api, owner, start="2026-04-01T09:00:00Z", end="2026-04-01T10:00:00Z")
    one_off_url = f"/api/events/{one_off['id']}/occurrences/2026-04-01T09:00:00Z"
    for response in (
        api.patch(one_off_url, headers=owner.headers, json={"title": "x"}),
        api.delete(one_off_url, headers=owner.headers),
        api.delete(one_off_url + "/override", headers=owner.headers),
        api.patch(
            occurrence_url(series), headers=owner.headers, json={"end_time": "2026-03-09T12:00:00Z"}
        ),
        api.patch(occurrence_url(series), headers=owner.headers, json={"title": None}),
        api.patch(occurrence_url(series, "not-a-time"), headers=owner.headers, json={"title": "x"}),
    ):
        assert_problem(response, 422)
    assert_problem(
        api.patch(
            occurrence_url(series, "2026-03-10T13:00:00Z"),
            headers=owner.headers,
            json={"title": "x"},
        ),
        404,
    )
    assert api.get(f"/api/events/{series['id']}", headers=owner.headers).json()["version"] == 1


def test_conflicts_use_effective_times(api: httpx.Client, owner: User) -> None:
    series = weekly_series(api, owner)
    lunch = create(api, owner, start="2026-03-10T15:00:00Z", end="2026-03-10T16:00:00Z")
    moved = {"start_time": "2026-03-10T15:30:00Z", "end_time": "2026-03-10T16:30:00Z"}
    clash = assert_problem(
        api.patch(occurrence_url(series), headers=owner.headers, json=moved), 409
    )
    assert clash["conflicts"] == [
        {
            "event_id": lunch["id"],
            "start_time": "2026-03-10T15:00:00Z",
            "end_time": "2026-03-10T16:00:00Z",
        }
    ]
    accepted = api.patch(
        occurrence_url(series), headers=owner.headers, json={**moved, "allow_conflicts": True}
    )
    assert accepted.status_code == 200, accepted.text
    # The moved occurrence blocks its new time, no longer its old one; a series'
    # conflict entry names the occurrence.
    at_new = api.post(
        "/api/events",
        headers=owner.headers,
        json={
            "title": "x",
            "start_time": "2026-03-10T16:00:00Z",
            "end_time": "2026-03-10T17:00:00Z",
        },
    )
    assert assert_problem(at_new, 409)["conflicts"] == [
        {
            "event_id": series["id"],
            "start_time": "2026-03-10T15:30:00Z",
            "end_time": "2026-03-10T16:30:00Z",
            "recurrence_id": SECOND,
        }
    ]
    at_old = create(api, owner, start="2026-03-09T13:00:00Z", end="2026-03-09T14:00:00Z")
    # Undo would bring it back onto `at_old`.
    undo = occurrence_url(series) + "/override"
    assert_problem(api.delete(undo, headers=owner.headers), 409)
    assert (
        api.delete(undo, headers=owner.headers, params={"allow_conflicts": "true"}).status_code
        == 204
    )
    # A cancelled occurrence blocks nothing.
    third = occurrence_url(series, "2026-03-16T13:00:00Z")
    assert api.delete(third, headers=owner.headers).status_code == 204
    create(api, owner, start="2026-03-16T13:00:00Z", end="2026-03-16T14:00:00Z")
    assert at_old["id"]


def test_rollback_and_diff_restore_and_show_exceptions(api: httpx.Client, owner: User) -> None:
    series = weekly_series(api, owner)
    api.patch(occurrence_url(series), headers=owner.headers, json={"title": "Special"})
    api.delete(occurrence_url(series, "2026-03-16T13:00:00Z"), headers=owner.headers)
    diff = api.get(f"/api/events/{series['id']}/diff/1/3", headers=owner.headers).json()
    assert diff["changes"] == {
        f"overrides.{SECOND}": {"old": None, "new": {"title": "Special"}},
        "overrides.2026-03-16T13:00:00Z": {"old": None, "new": {"status": "cancelled"}},
    }
    rolled = api.post(f"/api/events/{series['id']}/rollback/2", headers=owner.headers)
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["overrides"] == {SECOND: {"title": "Special"}}
    assert changelog(api, owner, series)[-1]["changes"] == {
        "overrides.2026-03-16T13:00:00Z": {"old": {"status": "cancelled"}, "new": None}
    }


def test_moving_the_series_carries_exceptions_to_the_same_local_date(
    api: httpx.Client, owner: User
) -> None:
    series = weekly_series(api, owner)
    api.patch(occurrence_url(series), headers=owner.headers, json={"title": "Special"})
    url = f"/api/events/{series['id']}"
    later = api.patch(
        url,
        headers=owner.headers,
        json={"start_time": "2026-03-02T15:00:00Z", "end_time": "2026-03-02T16:00:00Z"},
    )
    assert later.status_code == 200, later.text
    assert later.json()["overrides"] == {"2026-03-09T14:00:00Z": {"title": "Special"}}
    assert changelog(api, owner, series)[-1]["changes"][f"overrides.{SECOND}"] == {
        "old": {"title": "Special"},
        "new": None,
    }
    single = api.patch(
        url, headers=owner.headers, json={"is_recurring": False, "recurrence_rule": None}
    )
    assert single.status_code == 200, single.text
    assert single.json()["overrides"] == {}


# This and following


def test_this_and_following_splits_the_series_in_two(
    api: httpx.Client, owner: User, make_user: Callable[..., User], stack: Stack
) -> None:
    from tests.e2e.test_events import share

    series = create(
        api,
        owner,
        start="2026-03-02T14:00:00Z",
        end="2026-03-02T15:00:00Z",
        timezone="America/New_York",
        is_recurring=True,
        recurrence_rule="FREQ=WEEKLY;BYDAY=MO;COUNT=6",
    )
    editor = make_user("editor")
    share(api, owner, series["id"], editor, "editor")
    third = "2026-03-16T13:00:00Z"
    api.patch(occurrence_url(series), headers=owner.headers, json={"title": "Second"})
    api.patch(
        occurrence_url(series, "2026-03-23T13:00:00Z"),
        headers=owner.headers,
        json={"title": "Fourth"},
    )
    split = api.patch(
        f"/api/events/{series['id']}",
        headers={**editor.headers, "If-Match": '"3"'},
        params={"scope": "this_and_following", "from": third},
        json={"title": "Renamed", "location": "Room 9"},
    )
    assert split.status_code == 201, split.text
    updated, created = split.json()["updated"], split.json()["created"]
    assert split.headers["location"] == f"/api/events/{created['id']}"
    assert updated["id"] == series["id"] and updated["version"] == 4
    assert updated["recurrence_rule"] == "FREQ=WEEKLY;BYDAY=MO;COUNT=2"
    assert updated["overrides"] == {SECOND: {"title": "Second"}}
    assert created["id"] != series["id"]
    assert (created["version"], created["owner_id"], created["role"]) == (1, owner.id, "editor")
    assert (created["start_time"], created["end_time"]) == (third, "2026-03-16T14:00:00Z")
    assert (created["title"], created["location"]) == ("Renamed", "Room 9")
    assert created["recurrence_rule"] == "FREQ=WEEKLY;BYDAY=MO;COUNT=4"
    assert created["overrides"] == {"2026-03-23T13:00:00Z": {"title": "Fourth"}}
    # Together they hold the six occurrences, as before.
    window = {"start": "2026-03-01T00:00:00Z", "end": "2026-05-01T00:00:00Z"}
    expanded = api.get("/api/events", headers=owner.headers, params={**window, "expand": "true"})
    assert [(o["event_id"] == created["id"], o["title"]) for o in expanded.json()["items"]] == [
        (False, "Planning"),
        (False, "Second"),
        (True, "Renamed"),
        (True, "Fourth"),
        (True, "Renamed"),
        (True, "Renamed"),
    ]
    # Same access list; its own history from version 1; the old one records the split.
    permissions = api.get(f"/api/events/{created['id']}/permissions", headers=owner.headers)
    assert sorted((p["user_id"], p["role"]) for p in permissions.json()["items"]) == sorted(
        [(owner.id, "owner"), (editor.id, "editor")]
    )
    assert [
        v["version"]
        for v in api.get(f"/api/events/{created['id']}/history", headers=owner.headers).json()[
            "items"
        ]
    ] == [1]
    # The audit trail records the copied grants as the new series' access list.
    database = stack.env["EVENTHUB_DATABASE_URL"].replace("+psycopg", "")

    def audited() -> list[tuple]:
        with psycopg.connect(database) as conn:
            return conn.execute(
                "SELECT sequence, user_id::text, role FROM sharing.permission_changes"
                " WHERE event_id = %s ORDER BY sequence",
                (created["id"],),
            ).fetchall()

    wait_until(lambda: len(audited()) == 2, 15, "the audit records of the new series")
    assert sorted((user, role) for _, user, role in audited()) == sorted(
        [(owner.id, "owner"), (editor.id, "editor")]
    )
    last = changelog(api, owner, series)[-1]
    assert last["changes"]["recurrence_rule"] == {
        "old": "FREQ=WEEKLY;BYDAY=MO;COUNT=6",
        "new": "FREQ=WEEKLY;BYDAY=MO;COUNT=2",
    }
    assert last["changes"]["overrides.2026-03-23T13:00:00Z"] == {
        "old": {"title": "Fourth"},
        "new": None,
    }


def test_a_split_without_count_ends_the_old_series_by_until(api: httpx.Client, owner: User) -> None:
    series = weekly_series(api, owner)
    split = api.patch(
        f"/api/events/{series['id']}",
        headers=owner.headers,
        params={"scope": "this_and_following", "from": "2026-03-16T13:00:00Z"},
        json={
            "start_time": "2026-03-17T13:00:00Z",
            "end_time": "2026-03-17T14:00:00Z",
            "recurrence_rule": "FREQ=WEEKLY;BYDAY=TU",
        },
    )
    assert split.status_code == 201, split.text
    assert (
        split.json()["updated"]["recurrence_rule"] == "FREQ=WEEKLY;BYDAY=MO;UNTIL=20260316T125959Z"
    )
    created = split.json()["created"]
    assert (created["start_time"], created["recurrence_rule"]) == (
        "2026-03-17T13:00:00Z",
        "FREQ=WEEKLY;BYDAY=TU",
    )


def test_bad_splits_change_nothing(api: httpx.Client, owner: User) -> None:
    series = weekly_series(api, owner)
    url = f"/api/events/{series['id']}"
    for params, field in (
        ({"scope": "this_and_following", "from": "2026-03-02T14:00:00Z"}, "from"),  # the first
        ({"scope": "this_and_following", "from": "2026-03-10T13:00:00Z"}, "from"),  # not generated
        ({"scope": "this_and_following"}, "from"),
        ({"scope": "some", "from": SECOND}, "scope"),
    ):
        response = api.patch(url, headers=owner.headers, params=params, json={"title": "x"})
        assert [e["field"] for e in assert_problem(response, 422)["errors"]] == [field]
    stale = api.patch(
        url,
        headers={**owner.headers, "If-Match": '"9"'},
        params={"scope": "this_and_following", "from": SECOND},
        json={"title": "x"},
    )
    assert_problem(stale, 412)
    one_off = create(api, owner, start="2026-04-01T09:00:00Z", end="2026-04-01T10:00:00Z")
    assert_problem(
        api.patch(
            f"/api/events/{one_off['id']}",
            headers=owner.headers,
            params={"scope": "this_and_following", "from": "2026-04-01T09:00:00Z"},
            json={"title": "x"},
        ),
        422,
    )
    assert api.get(url, headers=owner.headers).json()["version"] == 1
    assert len(api.get("/api/events", headers=owner.headers).json()["items"]) == 2


def test_a_split_that_would_clash_changes_neither_series(api: httpx.Client, owner: User) -> None:
    series = weekly_series(api, owner)
    create(api, owner, start="2026-03-17T13:00:00Z", end="2026-03-17T14:00:00Z")
    moved = {"start_time": "2026-03-17T13:30:00Z", "end_time": "2026-03-17T14:30:00Z"}
    refused = api.patch(
        f"/api/events/{series['id']}",
        headers=owner.headers,
        params={"scope": "this_and_following", "from": "2026-03-16T13:00:00Z"},
        json=moved,
    )
    assert len(assert_problem(refused, 409)["conflicts"]) == 1
    assert api.get(f"/api/events/{series['id']}", headers=owner.headers).json()["version"] == 1
    assert len(api.get("/api/events", headers=owner.headers).json()["items"]) == 2


def test_a_series_holds_at_most_a_thousand_exceptions(
    api: httpx.Client, owner: User, stack: Stack
) -> None:
    series = create(
        api,
        owner,
        start="2026-01-01T09:00:00Z",
        end="2026-01-01T09:15:00Z",
        is_recurring=True,
        recurrence_rule="FREQ=DAILY;COUNT=1100",
    )
    first = datetime(2026, 1, 1, 9, tzinfo=UTC)
    day = [rfc3339(first + timedelta(days=n)) for n in range(1001)]
    full = {recurrence_id: {"status": "cancelled"} for recurrence_id in day[:MAX_EXCEPTIONS]}
    # A thousand exception writes through the API would take a while: stored as the
    # event service stores them, with the cached copy dropped.
    database = stack.env["EVENTHUB_DATABASE_URL"].replace("+psycopg", "")
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "UPDATE events.events SET overrides = %s::jsonb, version = 2 WHERE id = %s",
            (json.dumps(full), series["id"]),
        )
    cache = redis.Redis.from_url(stack.env["EVENTHUB_REDIS_URL"])
    cache.delete(f"{stack.env['EVENTHUB_NAMESPACE']}:events:event:{series['id']}")
    cache.close()

    one_more = api.patch(
        occurrence_url(series, day[1000]), headers=owner.headers, json={"title": "x"}
    )
    assert [e["field"] for e in assert_problem(one_more, 422)["errors"]] == ["overrides"]
    # Changing one it has is still allowed, and so is dropping one.
    assert (
        api.patch(
            occurrence_url(series, day[5]), headers=owner.headers, json={"title": "x"}
        ).status_code
        == 200
    )
    assert (
        api.delete(occurrence_url(series, day[6]) + "/override", headers=owner.headers).status_code
        == 204
    )
    assert api.get(f"/api/events/{series['id']}", headers=owner.headers).json()["version"] == 4


def test_a_listings_window_selects_by_effective_times(api: httpx.Client, owner: User) -> None:
    series = create(
        api,
        owner,
        start="2026-03-02T14:00:00Z",
        end="2026-03-02T15:00:00Z",
        is_recurring=True,
        recurrence_rule="FREQ=WEEKLY;COUNT=2",
    )
    # Its second occurrence moves from 9 March to 20 March, after the rule's last.
    moved = {"start_time": "2026-03-20T10:00:00Z", "end_time": "2026-03-20T11:00:00Z"}
    assert (
        api.patch(
            occurrence_url(series, "2026-03-09T14:00:00Z"), headers=owner.headers, json=moved
        ).status_code
        == 200
    )

    def listed(start: str, end: str) -> list[str]:
        response = api.get(
            "/api/events", headers=owner.headers, params={"start": start, "end": end}
        )
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert listed("2026-03-19T00:00:00Z", "2026-03-21T00:00:00Z") == [series["id"]]
    assert listed("2026-03-09T00:00:00Z", "2026-03-10T00:00:00Z") == []
    api.delete(occurrence_url(series, "2026-03-02T14:00:00Z"), headers=owner.headers)
    assert listed("2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z") == []


def test_a_moved_series_keeps_the_times_an_exception_set_itself(
    api: httpx.Client, owner: User
) -> None:
    series = weekly_series(api, owner)
    own_time = {"start_time": "2026-03-09T18:00:00Z", "end_time": "2026-03-09T19:00:00Z"}
    api.patch(occurrence_url(series), headers=owner.headers, json=own_time)
    api.delete(occurrence_url(series, "2026-03-16T13:00:00Z"), headers=owner.headers)
    # 09:00 in Chicago instead of New York: each exception goes to the occurrence on
    # its local date (9 and 16 March), the moved one keeping its own times.
    later = api.patch(
        f"/api/events/{series['id']}",
        headers=owner.headers,
        json={
            "timezone": "America/Chicago",
            "start_time": "2026-03-02T15:00:00Z",
            "end_time": "2026-03-02T16:00:00Z",
        },
    )
    assert later.status_code == 200, later.text
    assert later.json()["overrides"] == {
        "2026-03-09T14:00:00Z": own_time,
        "2026-03-16T14:00:00Z": {"status": "cancelled"},
    }
    listed = occurrences(api, owner, series)
    assert [(o["recurrence_id"], o["start_time"]) for o in listed] == [
        ("2026-03-02T15:00:00Z", "2026-03-02T15:00:00Z"),
        ("2026-03-09T14:00:00Z", "2026-03-09T18:00:00Z"),
    ]


def test_occurrences_at_the_same_time_sort_by_recurrence_id(api: httpx.Client, owner: User) -> None:
    series = weekly_series(api, owner)
    # The second occurrence moves onto the first's time: a tie, broken by recurrence id.
    onto_first = {"start_time": "2026-03-02T14:00:00Z", "end_time": "2026-03-02T15:00:00Z"}
    moved = api.patch(occurrence_url(series), headers=owner.headers, json=onto_first)
    assert moved.status_code == 200, moved.text  # a series never clashes with itself
    listed = occurrences(api, owner, series)
    assert [(o["start_time"], o["recurrence_id"]) for o in listed] == [
        ("2026-03-02T14:00:00Z", "2026-03-02T14:00:00Z"),
        ("2026-03-02T14:00:00Z", SECOND),
        ("2026-03-16T13:00:00Z", "2026-03-16T13:00:00Z"),
    ]
