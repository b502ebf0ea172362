"""The Events section of API.md over HTTP against the running system."""

import concurrent.futures
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from scripts.stack import Stack, free_port
from tests.conftest import User
from tests.e2e.helpers import assert_problem, share


def event_body(
    start: str = "2026-03-02T09:00:00Z", end: str = "2026-03-02T10:00:00Z", **fields: Any
) -> dict[str, Any]:
    return {"title": "Planning", "start_time": start, "end_time": end, **fields}


def create(api: httpx.Client, user: User, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/events", headers=user.headers, json=event_body(**fields))
    assert response.status_code == 201, response.text
    return response.json()


def list_ids(api: httpx.Client, user: User, **params: Any) -> list[str]:
    response = api.get("/api/events", headers=user.headers, params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def error_fields(response: httpx.Response) -> list[str]:
    return [error["field"] for error in assert_problem(response, 422)["errors"]]


@pytest.fixture
def owner(make_user: Callable[..., User]) -> User:
    return make_user("owner")


# Create, read, replace, patch, delete


def test_create_answers_201_with_location_and_etag(api: httpx.Client, owner: User) -> None:
    response = api.post(
        "/api/events",
        headers=owner.headers,
        json=event_body(description="Quarterly", location="Room 1", unknown_field=1),
    )
    assert response.status_code == 201, response.text
    event = response.json()
    assert response.headers["location"] == f"/api/events/{event['id']}"
    assert response.headers["etag"] == '"1"'
    assert event == {
        "id": event["id"],
        "title": "Planning",
        "description": "Quarterly",
        "location": "Room 1",
        "start_time": "2026-03-02T09:00:00Z",
        "end_time": "2026-03-02T10:00:00Z",
        "timezone": "UTC",
        "is_recurring": False,
        "recurrence_rule": None,
        "owner_id": owner.id,
        "role": "owner",
        "version": 1,
        "created_at": event["created_at"],
        "updated_at": event["updated_at"],
        "overrides": {},
    }
    assert event["created_at"].endswith("Z")


def test_offsets_are_normalised_to_utc(api: httpx.Client, owner: User) -> None:
    event = create(api, owner, start="2026-03-02T09:00:00+02:00", end="2026-03-02T10:30:00+02:00")
    assert (event["start_time"], event["end_time"]) == (
        "2026-03-02T07:00:00Z",
        "2026-03-02T08:30:00Z",
    )


def test_get_honours_if_none_match(api: httpx.Client, owner: User) -> None:
    event = create(api, owner)
    url = f"/api/events/{event['id']}"
    fetched = api.get(url, headers=owner.headers)
    assert fetched.status_code == 200
    assert fetched.headers["etag"] == '"1"'
    assert fetched.json() == event
    for tag in ('"1"', 'W/"1"', '"5", "1"', "*"):
        not_modified = api.get(url, headers={**owner.headers, "If-None-Match": tag})
        assert not_modified.status_code == 304, tag
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == '"1"'
    assert api.get(url, headers={**owner.headers, "If-None-Match": '"2"'}).status_code == 200


def test_put_replaces_every_editable_field(api: httpx.Client, owner: User) -> None:
    event = create(api, owner, description="old", location="Room 1", timezone="Europe/Berlin")
    replaced = api.put(
        f"/api/events/{event['id']}",
        headers=owner.headers,
        json=event_body("2026-03-03T09:00:00Z", "2026-03-03T09:30:00Z", title="Renamed"),
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.headers["etag"] == '"2"'
    body = replaced.json()
    assert (body["title"], body["description"], body["location"], body["timezone"]) == (
        "Renamed",
        "",
        "",
        "UTC",
    )
    assert (body["start_time"], body["version"], body["created_at"]) == (
        "2026-03-03T09:00:00Z",
        2,
        event["created_at"],
    )
    assert body["updated_at"] > event["updated_at"]
    backwards = event_body("2026-03-03T09:00:00Z", "2026-03-03T08:00:00Z")
    url = f"/api/events/{event['id']}"
    assert error_fields(api.put(url, headers=owner.headers, json=backwards)) == ["end_time"]
    assert "title" in error_fields(api.put(url, headers=owner.headers, json={"start_time": "x"}))


def test_patch_changes_only_the_given_fields(api: httpx.Client, owner: User) -> None:
    event = create(api, owner, description="keep", location="Room 1")
    url = f"/api/events/{event['id']}"
    patched = api.patch(url, headers=owner.headers, json={"title": "New", "location": None})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["title"], body["description"], body["location"], body["version"]) == (
        "New",
        "keep",
        "",
        2,
    )
    assert patched.headers["etag"] == '"2"'
    made_recurring = api.patch(
        url, headers=owner.headers, json={"is_recurring": True, "recurrence_rule": "FREQ=DAILY"}
    )
    assert made_recurring.json()["recurrence_rule"] == "FREQ=DAILY"
    assert error_fields(api.patch(url, headers=owner.headers, json={"title": None})) == ["title"]
    assert error_fields(
        api.patch(url, headers=owner.headers, json={"end_time": "2026-03-02T08:00:00Z"})
    ) == ["end_time"]
    assert api.get(url, headers=owner.headers).json()["version"] == 3


def test_stale_if_match_is_412_and_changes_nothing(api: httpx.Client, owner: User) -> None:
    event = create(api, owner)
    url = f"/api/events/{event['id']}"
    assert (
        api.patch(
            url, headers={**owner.headers, "If-Match": '"1"'}, json={"title": "v2"}
        ).status_code
        == 200
    )
    stale = {**owner.headers, "If-Match": '"1"'}
    assert_problem(api.patch(url, headers=stale, json={"title": "lost"}), 412)
    assert_problem(api.put(url, headers=stale, json=event_body(title="lost")), 412)
    assert_problem(api.delete(url, headers=stale), 412)
    assert_problem(api.delete(url, headers={**owner.headers, "If-Match": 'W/"2"'}), 412)
    current = api.get(url, headers=owner.headers).json()
    assert (current["title"], current["version"]) == ("v2", 2)
    fresh = {**owner.headers, "If-Match": '"2"'}
    assert api.put(url, headers=fresh, json=event_body(title="v3")).json()["version"] == 3
    assert api.delete(url, headers={**owner.headers, "If-Match": '"3"'}).status_code == 204


@pytest.mark.parametrize(
    "tag",
    ['"9223372036854775808"', "9223372036854775808", '"99999999999999999999999"', '"\u00b9"',
     '"\uff11"', '"1.0"', '"-1"'],
)  # fmt: skip
def test_if_match_that_names_no_version_is_412(api: httpx.Client, owner: User, tag: str) -> None:
    """Only ASCII digits within int64 are a version: the rest matches nothing."""
    event = create(api, owner)
    url = f"/api/events/{event['id']}"
    headers = {**owner.headers, "If-Match": tag.encode()}
    assert_problem(api.patch(url, headers=headers, json={"title": "lost"}), 412)
    assert_problem(api.delete(url, headers=headers), 412)
    assert api.get(url, headers=owner.headers).json()["version"] == 1
    in_a_list = {**owner.headers, "If-Match": f'{tag}, "1"'.encode()}
    assert api.patch(url, headers=in_a_list, json={"title": "v2"}).status_code == 200


def test_reads_see_every_write_at_once(api: httpx.Client, owner: User) -> None:
    event = create(api, owner)
    url = f"/api/events/{event['id']}"
    for round_ in range(5):
        assert api.get(url, headers=owner.headers).json()["title"] == (
            "Planning" if round_ == 0 else f"round {round_ - 1}"
        )
        assert (
            api.patch(url, headers=owner.headers, json={"title": f"round {round_}"}).status_code
            == 200
        )
        fetched = api.get(url, headers=owner.headers)
        assert fetched.json()["title"] == f"round {round_}"
        assert fetched.headers["etag"] == f'"{round_ + 2}"'
    assert api.delete(url, headers=owner.headers).status_code == 204
    assert_problem(api.get(url, headers=owner.headers), 404)


def test_delete_then_everything_is_404(api: httpx.Client, owner: User) -> None:
    event = create(api, owner)
    url = f"/api/events/{event['id']}"
    deleted = api.delete(url, headers=owner.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(api.get(url, headers=owner.headers), 404)
    assert_problem(api.patch(url, headers=owner.headers, json={"title": "x"}), 404)
    assert_problem(api.put(url, headers=owner.headers, json=event_body()), 404)
    assert_problem(api.delete(url, headers=owner.headers), 404)
    assert event["id"] not in list_ids(api, owner)


def test_another_users_event_is_404(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    stranger = make_user("stranger")
    url = f"/api/events/{create(api, owner)['id']}"
    assert_problem(api.get(url, headers=stranger.headers), 404)
    assert_problem(api.patch(url, headers=stranger.headers, json={"title": "x"}), 404)
    assert_problem(api.put(url, headers=stranger.headers, json=event_body()), 404)
    assert_problem(api.delete(url, headers=stranger.headers), 404)
    assert_problem(
        api.get(
            url + "/occurrences",
            headers=stranger.headers,
            params={"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
        ),
        404,
    )
    for missing in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        assert_problem(api.get(f"/api/events/{missing}", headers=owner.headers), 404)


def test_roles_decide_update_and_delete(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    viewer, editor = make_user("viewer"), make_user("editor")
    event = create(api, owner)
    url = f"/api/events/{event['id']}"
    share(api, owner, event["id"], viewer, "viewer")
    share(api, owner, event["id"], editor, "editor")
    assert api.get(url, headers=viewer.headers).json()["role"] == "viewer"
    assert_problem(api.patch(url, headers=viewer.headers, json={"title": "x"}), 403)
    assert_problem(api.put(url, headers=viewer.headers, json=event_body()), 403)
    assert_problem(api.delete(url, headers=viewer.headers), 403)
    edited = api.patch(url, headers=editor.headers, json={"title": "By editor"})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["role"], edited.json()["owner_id"]) == ("editor", owner.id)
    assert_problem(api.delete(url, headers=editor.headers), 403)
    assert api.get(url, headers=viewer.headers).json()["title"] == "By editor"
    listed = api.get("/api/events", headers=viewer.headers).json()["items"]
    assert [(e["id"], e["role"]) for e in listed] == [(event["id"], "viewer")]
    assert list_ids(api, editor, role="editor") == [event["id"]]
    window = {"expand": "true", "start": "2026-03-02T00:00:00Z", "end": "2026-03-03T00:00:00Z"}
    expanded = api.get("/api/events", headers=viewer.headers, params={**window, "role": "viewer"})
    assert [o["event_id"] for o in expanded.json()["items"]] == [event["id"]]
    assert list_ids(api, editor, role="viewer") == []
    assert api.delete(url, headers=owner.headers).status_code == 204
    assert_problem(api.get(url, headers=editor.headers), 404)


# Validation


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 123}, "title"),
        ({"description": "x" * 10_001}, "description"),
        ({"start_time": "2026-03-02T09:00:00"}, "start_time"),
        ({"end_time": "2026-03-02 10:00"}, "end_time"),
        ({"start_time": "not a time"}, "start_time"),
        ({"end_time": "2026-03-02T08:00:00Z"}, "end_time"),
        ({"end_time": "2026-03-02T09:00:00Z"}, "end_time"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"is_recurring": True}, "recurrence_rule"),
        ({"recurrence_rule": "FREQ=DAILY"}, "recurrence_rule"),
        ({"is_recurring": True, "recurrence_rule": "FREQ=SOMETIMES"}, "recurrence_rule"),
        ({"is_recurring": True, "recurrence_rule": "FREQ=DAILY;COUNT=10001"}, "recurrence_rule"),
        (
            {"is_recurring": True, "recurrence_rule": "FREQ=DAILY;COUNT=2;UNTIL=20270101T000000Z"},
            "recurrence_rule",
        ),
        ({"start_time": "1899-12-31T09:00:00Z"}, "start_time"),
        ({"end_time": "2201-01-01T10:00:00Z"}, "end_time"),
        # Outside any datetime once in UTC
        ({"start_time": "0001-01-01T00:00:00+14:00"}, "start_time"),
        ({"end_time": "9999-12-31T23:59:59-14:00"}, "end_time"),
    ],
)
def test_invalid_event_is_422_naming_the_field(
    api: httpx.Client, owner: User, body: dict[str, Any], field: str
) -> None:
    response = api.post("/api/events", headers=owner.headers, json={**event_body(), **body})
    assert field in error_fields(response)
    assert list_ids(api, owner) == []


def test_missing_fields_and_malformed_json_are_422(api: httpx.Client, owner: User) -> None:
    missing = api.post("/api/events", headers=owner.headers, json={"title": "x"})
    assert set(error_fields(missing)) == {"start_time", "end_time"}
    malformed = api.post(
        "/api/events",
        headers={**owner.headers, "Content-Type": "application/json"},
        content=b'{"title": ',
    )
    assert_problem(malformed, 422)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"role": "admin"}, "role"),
        ({"start": "2026-03-01T00:00:00"}, "start"),
        ({"start": "0001-01-01T00:00:00+14:00"}, "start"),
        ({"end": "9999-12-31T23:59:59-14:00"}, "end"),
        ({"start": "1899-12-31T23:00:00Z"}, "start"),
        ({"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "end"),
        ({"cursor": "bogus"}, "cursor"),
        ({"expand": "true", "end": "2026-03-01T00:00:00Z"}, "start"),
        ({"expand": "true", "start": "2026-01-01T00:00:00Z", "end": "2027-03-01T00:00:00Z"}, "end"),
    ],
)
def test_bad_list_parameters_are_422(
    api: httpx.Client, owner: User, params: dict[str, Any], field: str
) -> None:
    assert field in error_fields(api.get("/api/events", headers=owner.headers, params=params))


def test_occurrences_window_is_required_and_at_most_a_year(api: httpx.Client, owner: User) -> None:
    url = f"/api/events/{create(api, owner)['id']}/occurrences"
    assert "start" in error_fields(
        api.get(url, headers=owner.headers, params={"end": "2026-04-01T00:00:00Z"})
    )
    too_long = {"start": "2026-01-01T00:00:00Z", "end": "2027-01-03T00:00:00Z"}
    assert error_fields(api.get(url, headers=owner.headers, params=too_long)) == ["end"]
    year_zero = {"start": "0001-01-01T00:00:00+14:00", "end": "2026-01-03T00:00:00Z"}
    assert "start" in error_fields(api.get(url, headers=owner.headers, params=year_zero))


# Recurrence


def test_weekly_new_york_meeting_stays_at_nine_across_dst(api: httpx.Client, owner: User) -> None:
    series = create(
        api,
        owner,
        start="2026-03-02T14:00:00Z",  # Monday 09:00 EST
        end="2026-03-02T15:00:00Z",
        timezone="America/New_York",
        is_recurring=True,
        recurrence_rule="FREQ=WEEKLY;BYDAY=MO",
    )
    response = api.get(
        f"/api/events/{series['id']}/occurrences",
        headers=owner.headers,
        params={"start": "2026-03-01T00:00:00Z", "end": "2026-03-17T00:00:00Z"},
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
            "description": "",
            "location": "",
        }
        for start, end in [
            ("2026-03-02T14:00:00Z", "2026-03-02T15:00:00Z"),
            ("2026-03-09T13:00:00Z", "2026-03-09T14:00:00Z"),  # EDT from March 8
            ("2026-03-16T13:00:00Z", "2026-03-16T14:00:00Z"),
        ]
    ]


def test_expand_lists_every_occurrence_by_start(api: httpx.Client, owner: User) -> None:
    daily = create(
        api,
        owner,
        start="2026-05-01T08:00:00Z",
        end="2026-05-01T08:30:00Z",
        is_recurring=True,
        recurrence_rule="FREQ=DAILY;COUNT=3",
    )
    one_off = create(api, owner, start="2026-05-02T12:00:00Z", end="2026-05-02T13:00:00Z")
    create(api, owner, start="2026-07-01T12:00:00Z", end="2026-07-01T13:00:00Z")
    response = api.get(
        "/api/events",
        headers=owner.headers,
        params={"expand": "true", "start": "2026-05-01T08:15:00Z", "end": "2026-05-10T00:00:00Z"},
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(o["event_id"], o["start_time"]) for o in items] == [
        (daily["id"], "2026-05-01T08:00:00Z"),
        (daily["id"], "2026-05-02T08:00:00Z"),
        (one_off["id"], "2026-05-02T12:00:00Z"),
        (daily["id"], "2026-05-03T08:00:00Z"),
    ]


def test_endless_series_can_be_read_far_ahead(api: httpx.Client, owner: User) -> None:
    series = create(
        api,
        owner,
        is_recurring=True,
        recurrence_rule="FREQ=MONTHLY;BYDAY=-1FR",
        start="2026-01-30T16:00:00Z",
        end="2026-01-30T17:00:00Z",
    )
    response = api.get(
        f"/api/events/{series['id']}/occurrences",
        headers=owner.headers,
        params={"start": "2150-01-01T00:00:00Z", "end": "2150-03-01T00:00:00Z"},
    )
    assert [o["start_time"] for o in response.json()["items"]] == [
        "2150-01-30T16:00:00Z",
        "2150-02-27T16:00:00Z",
    ]


def test_a_rule_that_recurs_rarely_is_its_first_occurrence_then_its_own_days(
    api: httpx.Client, owner: User
) -> None:
    """(A rule that never recurs is 422: `tests/e2e/test_costly_rules.py`.)"""
    series = create(
        api, owner, is_recurring=True, recurrence_rule="FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=29"
    )

    def starts(start: str, end: str) -> list[str]:
        response = api.get(
            f"/api/events/{series['id']}/occurrences",
            headers=owner.headers,
            params={"start": start, "end": end},
        )
        return [o["start_time"] for o in response.json()["items"]]

    assert starts("2026-01-01T00:00:00Z", "2026-12-31T00:00:00Z") == ["2026-03-02T09:00:00Z"]
    assert starts("2027-01-01T00:00:00Z", "2027-12-31T00:00:00Z") == []
    assert starts("2028-01-01T00:00:00Z", "2028-12-31T00:00:00Z") == ["2028-02-29T09:00:00Z"]


# Conflicts


def test_overlap_with_own_event_is_409_unless_allowed(api: httpx.Client, owner: User) -> None:
    existing = create(api, owner, start="2026-06-01T09:00:00Z", end="2026-06-01T10:00:00Z")
    overlapping = api.post(
        "/api/events",
        headers=owner.headers,
        json=event_body("2026-06-01T09:30:00Z", "2026-06-01T11:00:00Z"),
    )
    body = assert_problem(overlapping, 409)
    assert body["conflicts"] == [
        {
            "event_id": existing["id"],
            "start_time": "2026-06-01T09:00:00Z",
            "end_time": "2026-06-01T10:00:00Z",
        }
    ]
    containing = api.post(
        "/api/events",
        headers=owner.headers,
        json=event_body("2026-06-01T08:00:00Z", "2026-06-01T12:00:00Z"),
    )
    assert assert_problem(containing, 409)["conflicts"][0]["event_id"] == existing["id"]
    touching = api.post(
        "/api/events",
        headers=owner.headers,
        json=event_body("2026-06-01T10:00:00Z", "2026-06-01T11:00:00Z"),
    )
    assert touching.status_code == 201, touching.text
    allowed = api.post(
        "/api/events",
        headers=owner.headers,
        json=event_body("2026-06-01T09:00:00Z", "2026-06-01T09:30:00Z", allow_conflicts=True),
    )
    assert allowed.status_code == 201, allowed.text
    assert len(list_ids(api, owner)) == 3


def test_series_conflicts_by_each_occurrence(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    weekly = create(
        api,
        owner,
        start="2026-01-05T09:00:00Z",
        end="2026-01-05T10:00:00Z",
        is_recurring=True,
        recurrence_rule="FREQ=WEEKLY;BYDAY=MO",
    )
    one_off_on_a_later_monday = api.post(
        "/api/events",
        headers=owner.headers,
        json=event_body("2027-02-01T09:30:00Z", "2027-02-01T09:45:00Z"),
    )
    assert assert_problem(one_off_on_a_later_monday, 409)["conflicts"] == [
        {
            "event_id": weekly["id"],
            "start_time": "2027-02-01T09:00:00Z",
            "end_time": "2027-02-01T10:00:00Z",
            "recurrence_id": "2027-02-01T09:00:00Z",  # a series' entry names the occurrence
        }
    ]
    assert (
        api.post(
            "/api/events",
            headers=owner.headers,
            json=event_body("2027-02-02T09:30:00Z", "2027-02-02T09:45:00Z"),
        ).status_code
        == 201
    )
    daily_series = api.post(
        "/api/events",
        headers=owner.headers,
        json=event_body(
            "2026-03-01T09:30:00Z",
            "2026-03-01T09:40:00Z",
            is_recurring=True,
            recurrence_rule="FREQ=DAILY;COUNT=5",
        ),
    )
    conflicts = assert_problem(daily_series, 409)["conflicts"]
    assert [(c["event_id"], c["start_time"]) for c in conflicts] == [
        (weekly["id"], "2026-03-02T09:00:00Z")
    ]
    assert (
        api.post(
            "/api/events",
            headers=owner.headers,
            json=event_body(
                "2026-03-01T10:00:00Z",
                "2026-03-01T10:30:00Z",
                is_recurring=True,
                recurrence_rule="FREQ=DAILY",
            ),
        ).status_code
        == 201
    )
    # Another user's calendar is not checked.
    other = make_user("other")
    assert (
        api.post(
            "/api/events",
            headers=other.headers,
            json=event_body("2027-02-01T09:30:00Z", "2027-02-01T09:45:00Z"),
        ).status_code
        == 201
    )


def test_changes_are_checked_against_the_owners_calendar(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    first = create(api, owner, start="2026-08-03T09:00:00Z", end="2026-08-03T10:00:00Z")
    second = create(api, owner, start="2026-08-03T11:00:00Z", end="2026-08-03T12:00:00Z")
    editor = make_user("editor")
    share(api, owner, second["id"], editor, "editor")
    url = f"/api/events/{second['id']}"
    move_onto_first = {"start_time": "2026-08-03T09:30:00Z", "end_time": "2026-08-03T10:30:00Z"}
    body = assert_problem(api.patch(url, headers=editor.headers, json=move_onto_first), 409)
    # The editor learns when the owner is busy, not which event of the owner's it is...
    assert body["conflicts"] == [
        {"start_time": "2026-08-03T09:00:00Z", "end_time": "2026-08-03T10:00:00Z"}
    ]
    assert api.get(url, headers=owner.headers).json()["version"] == 1
    # ...unless they have a role on that event too.
    share(api, owner, first["id"], editor, "viewer")
    body = assert_problem(api.patch(url, headers=editor.headers, json=move_onto_first), 409)
    assert body["conflicts"][0]["event_id"] == first["id"]
    moved = api.patch(
        url, headers=editor.headers, json={**move_onto_first, "allow_conflicts": True}
    )
    assert moved.status_code == 200, moved.text
    # Changing other fields of an event that already overlaps is fine.
    assert api.patch(url, headers=editor.headers, json={"title": "Renamed"}).status_code == 200
    assert (
        api.patch(
            f"/api/events/{first['id']}",
            headers=owner.headers,
            json={"start_time": "2026-08-03T09:15:00Z"},
        ).status_code
        == 409
    )


def test_parallel_overlapping_creates_have_one_winner(api: httpx.Client, owner: User) -> None:
    def attempt(minute: int) -> int:
        with httpx.Client(base_url=str(api.base_url), timeout=30) as client:
            return client.post(
                "/api/events",
                headers=owner.headers,
                json=event_body(f"2026-09-01T09:{minute:02d}:00Z", "2026-09-01T10:30:00Z"),
            ).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(attempt, range(8)))
    assert statuses == [201] + [409] * 7
    assert len(list_ids(api, owner)) == 1


# Batch


def test_batch_creates_all_in_order(api: httpx.Client, owner: User) -> None:
    items = [
        event_body(f"2026-10-0{day}T09:00:00Z", f"2026-10-0{day}T10:00:00Z", title=f"Day {day}")
        for day in range(1, 6)
    ]
    response = api.post("/api/events/batch", headers=owner.headers, json={"events": items})
    assert response.status_code == 201, response.text
    created = response.json()["items"]
    assert [e["title"] for e in created] == [f"Day {day}" for day in range(1, 6)]
    assert {(e["role"], e["version"]) for e in created} == {("owner", 1)}
    assert list_ids(api, owner) == [e["id"] for e in reversed(created)]


def test_batch_is_all_or_nothing(api: httpx.Client, owner: User) -> None:
    existing = create(api, owner, start="2026-11-05T09:00:00Z", end="2026-11-05T10:00:00Z")
    fine = [event_body(f"2026-11-0{d}T12:00:00Z", f"2026-11-0{d}T13:00:00Z") for d in (1, 2)]
    batch = "/api/events/batch"

    invalid = [*fine, event_body("2026-11-03T12:00:00Z", "2026-11-03T11:00:00Z")]
    assert error_fields(api.post(batch, headers=owner.headers, json={"events": invalid})) == [
        "events.2.end_time"
    ]
    naive = [event_body("2026-11-03T12:00:00", "2026-11-03T13:00:00Z"), *fine]
    assert "events.0.start_time" in error_fields(
        api.post(batch, headers=owner.headers, json={"events": naive})
    )
    clash_inside = [
        *fine,
        event_body("2026-11-04T08:00:00Z", "2026-11-04T09:00:00Z"),
        event_body("2026-11-02T12:30:00Z", "2026-11-02T14:00:00Z"),
    ]
    body = assert_problem(
        api.post(batch, headers=owner.headers, json={"events": clash_inside}), 409
    )
    assert body["index"] == 3
    assert body["conflicts"][0]["start_time"] == "2026-11-02T12:00:00Z"
    clash_existing = [*fine, event_body("2026-11-05T09:30:00Z", "2026-11-05T10:30:00Z")]
    body = assert_problem(
        api.post(batch, headers=owner.headers, json={"events": clash_existing}), 409
    )
    assert body["index"] == 2
    assert body["conflicts"][0]["event_id"] == existing["id"]
    assert list_ids(api, owner) == [existing["id"]]

    assert error_fields(api.post(batch, headers=owner.headers, json={"events": []})) == ["events"]
    too_many = [event_body()] * 501
    assert error_fields(api.post(batch, headers=owner.headers, json={"events": too_many})) == [
        "events"
    ]
    allowed = api.post(
        batch, headers=owner.headers, json={"events": clash_existing, "allow_conflicts": True}
    )
    assert allowed.status_code == 201, allowed.text


# Listing


def test_pages_never_skip_or_repeat_while_others_write(api: httpx.Client, owner: User) -> None:
    original = [
        create(api, owner, start=f"2027-01-{d:02d}T09:00:00Z", end=f"2027-01-{d:02d}T10:00:00Z")[
            "id"
        ]
        for d in range(1, 8)
    ]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/events", headers=owner.headers, params=params).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        day = 10 + pages
        create(api, owner, start=f"2027-01-{day}T09:00:00Z", end=f"2027-01-{day}T10:00:00Z")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(original))
    assert pages == 3


def test_list_filters(api: httpx.Client, owner: User) -> None:
    monday_series = create(
        api,
        owner,
        title="Standup",
        start="2027-03-01T09:00:00Z",
        end="2027-03-01T09:15:00Z",
        is_recurring=True,
        recurrence_rule="FREQ=WEEKLY;BYDAY=MO",
    )
    one_off = create(
        api,
        owner,
        title="Dentist",
        location="Main STREET 5",
        start="2027-03-03T15:00:00Z",
        end="2027-03-03T16:00:00Z",
    )
    tuesday_to_thursday = {"start": "2027-03-09T00:00:00Z", "end": "2027-03-12T00:00:00Z"}
    assert list_ids(api, owner, **tuesday_to_thursday) == []
    assert list_ids(api, owner, start="2027-03-08T09:10:00Z", end="2027-03-09T00:00:00Z") == [
        monday_series["id"]
    ]
    assert list_ids(api, owner, start="2027-03-03T15:59:00Z") == [
        one_off["id"],
        monday_series["id"],
    ]
    assert list_ids(api, owner, end="2027-03-02T00:00:00Z") == [monday_series["id"]]
    assert list_ids(api, owner, q="street") == [one_off["id"]]
    assert list_ids(api, owner, q="STAND") == [monday_series["id"]]
    assert list_ids(api, owner, q="100%") == []
    assert list_ids(api, owner, role="owner") == [one_off["id"], monday_series["id"]]


def test_a_cached_read_needs_no_event_service(
    api: httpx.Client, owner: User, make_user, start_gateway, stack: Stack
) -> None:
    """The gateway answers a cached event and the caller's role from Redis alone: a
    gateway whose event service is unreachable still serves it (a new event is cached
    by its create), refuses a stranger as the event service would, and sends an
    uncached read on (503 here)."""
    viewer, stranger = make_user(), make_user()
    event = create(api, owner)
    share(api, owner, event["id"], viewer, "viewer")
    # A read through the event service fills the cache (event and access list).
    assert api.get(f"/api/events/{event['id']}", headers=viewer.headers).status_code == 200
    cut_off = start_gateway(EVENTHUB_EVENTS_ADDR=f"127.0.0.1:{free_port()}")

    cached = cut_off.get(f"/api/events/{event['id']}", headers=viewer.headers)
    assert cached.status_code == 200, cached.text
    assert cached.json() == {**event, "role": "viewer"}
    assert cached.headers["ETag"] == '"1"'
    again = cut_off.get(
        f"/api/events/{event['id']}", headers={**viewer.headers, "If-None-Match": '"1"'}
    )
    assert again.status_code == 304
    assert_problem(cut_off.get(f"/api/events/{event['id']}", headers=stranger.headers), 404)
    fresh = create(api, owner, allow_conflicts=True)
    assert cut_off.get(f"/api/events/{fresh['id']}", headers=owner.headers).json() == fresh
    client = redis.Redis.from_url(stack.env.get("EVENTHUB_REDIS_URL", "redis://127.0.0.1:6379/0"))
    with client:
        client.delete(f"{stack.env['EVENTHUB_NAMESPACE']}:events:event:{fresh['id']}")
    assert_problem(cut_off.get(f"/api/events/{fresh['id']}", headers=owner.headers), 503)
    # A change is seen at once: the event service replaced the entry before answering.
    api.patch(f"/api/events/{event['id']}", headers=owner.headers, json={"title": "Renamed"})
    assert cut_off.get(f"/api/events/{event['id']}", headers=viewer.headers).json()["title"] == (
        "Renamed"
    )
    api.delete(f"/api/events/{event['id']}/permissions/{viewer.id}", headers=owner.headers)
    assert_problem(cut_off.get(f"/api/events/{event['id']}", headers=viewer.headers), 404)
