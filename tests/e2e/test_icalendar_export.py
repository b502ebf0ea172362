"""iCalendar exports over HTTP (API.md, "iCalendar (RFC 5545)"): every export is parsed
with `icalendar` and expanded with `recurring-ical-events`, an independent reading of
RFC 5545, and must give the occurrences the API lists."""

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import icalendar
import pytest
import recurring_ical_events
import redis

from tests.conftest import User
from tests.e2e.helpers import assert_problem, share

WINDOW = (datetime(2035, 3, 1, tzinfo=UTC), datetime(2035, 5, 1, tzinfo=UTC))


def create(api: httpx.Client, user: User, **fields: Any) -> dict:
    body = {
        "title": "Export me",
        "start_time": "2035-03-05T09:00:00Z",
        "end_time": "2035-03-05T10:00:00Z",
        "allow_conflicts": True,
        **fields,
    }
    response = api.post("/api/events", headers=user.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def calendar_of(response: httpx.Response) -> icalendar.Calendar:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    assert b"\r\n" in response.content and all(
        len(line) <= 75 for line in response.content.split(b"\r\n")
    )
    return icalendar.Calendar.from_ical(response.content)


def masters(calendar: icalendar.Calendar) -> dict[str, icalendar.Event]:
    return {
        str(event["UID"]): event
        for event in calendar.walk("VEVENT")
        if "RECURRENCE-ID" not in event
    }


@pytest.fixture
def owner(make_user: Callable[..., User]) -> User:
    return make_user("exporter")


def test_one_event_with_its_entity_tag(api: httpx.Client, owner: User) -> None:
    event = create(api, owner, description="Line one\nline two " + "long " * 30)
    url = f"/api/events/{event['id']}.ics"
    exported = api.get(url, headers=owner.headers)
    vevent = masters(calendar_of(exported))[event["id"]]
    assert exported.headers["etag"] == '"1"'
    assert (str(vevent["SUMMARY"]), int(vevent["SEQUENCE"])) == ("Export me", 0)
    assert str(vevent["DESCRIPTION"]) == event["description"]
    assert vevent.decoded("DTSTART") == datetime(2035, 3, 5, 9, tzinfo=UTC)

    unchanged = api.get(url, headers={**owner.headers, "If-None-Match": '"1"'})
    assert unchanged.status_code == 304
    assert unchanged.headers["etag"] == '"1"'
    api.patch(f"/api/events/{event['id']}", headers=owner.headers, json={"title": "Renamed"})
    changed = api.get(url, headers={**owner.headers, "If-None-Match": '"1"'})
    assert changed.headers["etag"] == '"2"'
    assert int(masters(calendar_of(changed))[event["id"]]["SEQUENCE"]) == 1


def test_a_series_exports_the_occurrences_the_api_lists(api: httpx.Client, owner: User) -> None:
    series = create(
        api,
        owner,
        title="Stand-up",
        start_time="2035-03-05T14:00:00Z",
        end_time="2035-03-05T14:15:00Z",
        timezone="America/New_York",
        is_recurring=True,
        recurrence_rule="FREQ=WEEKLY;COUNT=8",
    )
    occurrence = f"/api/events/{series['id']}/occurrences"
    moved = api.patch(
        f"{occurrence}/2035-03-19T13:00:00Z",
        headers=owner.headers,
        json={"title": "Moved", "start_time": "2035-03-20T15:00:00Z",
              "end_time": "2035-03-20T15:30:00Z"},
    )  # fmt: skip
    assert moved.status_code == 200, moved.text
    cancelled = api.delete(f"{occurrence}/2035-04-02T13:00:00Z", headers=owner.headers)
    assert cancelled.status_code == 204, cancelled.text

    calendar = calendar_of(api.get(f"/api/events/{series['id']}.ics", headers=owner.headers))
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["America/New_York"]
    expanded = sorted(
        (item.decoded("DTSTART").astimezone(UTC), item.decoded("DTEND").astimezone(UTC),
         str(item["SUMMARY"]))
        for item in recurring_ical_events.of(calendar).between(*WINDOW)
    )  # fmt: skip
    window = {"start": WINDOW[0].isoformat(), "end": WINDOW[1].isoformat()}
    listed = api.get(occurrence, headers=owner.headers, params=window).json()["items"]
    assert expanded == [
        (datetime.fromisoformat(o["start_time"]), datetime.fromisoformat(o["end_time"]),
         o["title"])
        for o in listed
    ]  # fmt: skip
    assert len(expanded) == 7  # eight, one cancelled


def test_a_stranger_cannot_export_an_event(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    event = create(api, owner)
    stranger = make_user("stranger")
    assert_problem(api.get(f"/api/events/{event['id']}.ics", headers=stranger.headers), 404)
    assert_problem(api.get(f"/api/events/{event['id']}.ics"), 401)


def test_the_calendar_holds_every_visible_event_across_pages(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    """More events than one page of the export (500), in several zones, with an event
    shared with the owner and none of a stranger's."""
    start = datetime(2036, 1, 1, 9, tzinfo=UTC)
    zones = ["UTC", "Europe/Paris", "Asia/Tokyo"]
    items = [
        {"title": f"e{n}", "start_time": (start + timedelta(hours=n)).isoformat(),
         "end_time": (start + timedelta(hours=n, minutes=30)).isoformat(),
         "timezone": zones[n % 3]}
        for n in range(520)
    ]  # fmt: skip
    ids = []
    for first in (0, 500):
        batch = {"events": items[first : first + 500], "allow_conflicts": True}
        made = api.post("/api/events/batch", headers=owner.headers, json=batch)
        assert made.status_code == 201, made.text
        ids += [event["id"] for event in made.json()["items"]]
    friend, stranger = make_user("friend"), make_user("stranger")
    shared = create(api, friend, timezone="Australia/Sydney")
    share(api, friend, shared["id"], owner, "viewer")
    create(api, stranger, title="Not yours")

    exported = api.get("/api/calendar.ics", headers=owner.headers)
    calendar = calendar_of(exported)
    assert set(masters(calendar)) == {*ids, shared["id"]}
    assert sorted(str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")) == [
        "Asia/Tokyo", "Australia/Sydney", "Europe/Paris",
    ]  # fmt: skip
    assert exported.content.endswith(b"END:VCALENDAR\r\n")
    assert_problem(api.get("/api/calendar.ics"), 401)


def feed_path(url: str) -> str:
    parsed = urlsplit(url)
    assert parsed.scheme == "http" and parsed.path.startswith("/api/calendar/feed/"), url
    secret = parsed.path.removeprefix("/api/calendar/feed/").removesuffix(".ics")
    assert len(base64.urlsafe_b64decode(secret + "==")) * 8 >= 128, url
    return parsed.path


def test_a_feed_serves_the_calendar_without_a_token_until_replaced(
    api: httpx.Client, owner: User
) -> None:
    event = create(api, owner)
    made = api.post("/api/calendar/feed", headers=owner.headers)
    assert made.status_code == 201, made.text
    first = feed_path(made.json()["url"])
    assert set(masters(calendar_of(api.get(first)))) == {event["id"]}

    later = create(api, owner, title="Later")  # the feed is the calendar as of now
    assert set(masters(calendar_of(api.get(first)))) == {event["id"], later["id"]}
    rotated = feed_path(api.post("/api/calendar/feed", headers=owner.headers).json()["url"])
    assert rotated != first
    assert_problem(api.get(first), 404)
    assert calendar_of(api.get(rotated))

    assert api.delete("/api/calendar/feed", headers=owner.headers).status_code == 204
    assert_problem(api.get(rotated), 404)
    assert_problem(api.delete("/api/calendar/feed", headers=owner.headers), 404)
    assert_problem(api.get("/api/calendar/feed/" + "A" * 32 + ".ics"), 404)


def test_a_repeated_rotation_answers_the_same_url_which_redis_does_not_hold(
    api: httpx.Client, owner: User, stack, namespace: str
) -> None:
    headers = {**owner.headers, "Idempotency-Key": "rotate-once"}
    first = api.post("/api/calendar/feed", headers=headers)
    again = api.post("/api/calendar/feed", headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    secret = feed_path(first.json()["url"]).removeprefix("/api/calendar/feed/")
    store = redis.Redis.from_url(stack.env["EVENTHUB_REDIS_URL"])
    stored = [store.get(key) for key in store.scan_iter(f"{namespace}:idempotency:*")]
    assert stored and not any(secret.removesuffix(".ics").encode() in value for value in stored)


def test_logging_out_does_not_end_a_feed(api: httpx.Client, owner: User) -> None:
    path = feed_path(api.post("/api/calendar/feed", headers=owner.headers).json()["url"])
    assert api.post("/api/auth/logout", headers=owner.headers).status_code == 204
    assert calendar_of(api.get(path))


def test_each_feed_has_its_own_rate_budget(
    start_gateway: Callable[..., httpx.Client], owner: User, make_user: Callable[..., User]
) -> None:
    strict = start_gateway(EVENTHUB_RATE_LIMIT_FEED="2/minute")
    other = make_user("other")
    paths = [
        feed_path(strict.post("/api/calendar/feed", headers=user.headers).json()["url"])
        for user in (owner, other)
    ]
    for _ in range(2):
        served = strict.get(paths[0])
        assert served.status_code == 200
        assert served.headers["ratelimit-limit"] == "2"
    refused = assert_problem(strict.get(paths[0]), 429)
    assert refused["status"] == 429
    assert int(strict.get(paths[0]).headers["retry-after"]) >= 1
    assert strict.get(paths[1]).status_code == 200
