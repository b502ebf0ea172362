"""iCalendar imports over HTTP (API.md, "iCalendar (RFC 5545)"). Files written as
Google Calendar, Outlook and Apple Calendar write them (tests/fixtures/) must give the
occurrences that `recurring-ical-events` reads in them (with `x-wr-timezone` for the
calendar-wide zone Google and Apple name), and an export imported by another user the
occurrences of the original."""

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import httpx
import icalendar
import pytest
import recurring_ical_events
import x_wr_timezone

from tests.conftest import User
from tests.e2e.helpers import assert_problem

FIXTURES = Path(__file__).parent.parent / "fixtures"
WINDOW = (datetime(2035, 3, 1, tzinfo=UTC), datetime(2035, 5, 15, tzinfo=UTC))
CALENDAR = {"Content-Type": "text/calendar; charset=utf-8"}


def post_file(api: httpx.Client, user: User, data: bytes, **params: Any) -> httpx.Response:
    return api.post(
        "/api/events/import",
        headers={**user.headers, **CALENDAR},
        content=data,
        params=params,
    )


def imported(api: httpx.Client, user: User, data: bytes, **params: Any) -> dict[str, Any]:
    response = post_file(api, user, data, **params)
    assert response.status_code == 201, response.text
    return response.json()


def calendar(*vevents: str, head: str = "") -> bytes:
    """A VCALENDAR around VEVENT bodies (lines joined with CRLF)."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//EventHub tests//EN", *head.split()]
    for body in vevents:
        lines += ["BEGIN:VEVENT", *body.strip().splitlines(), "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(line.strip() for line in lines if line.strip()) + "\r\n").encode()


def one_off(uid: str, start: str, end: str, summary: str = "Meeting") -> str:
    return f"UID:{uid}\nDTSTART:{start}\nDTEND:{end}\nSUMMARY:{summary}"


def utc(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(), UTC)


Occurrence = tuple[str, datetime, datetime, str, str, str]


def oracle(data: bytes) -> set[Occurrence]:
    """The occurrences in WINDOW as RFC 5545 libraries read the file: (UID, start, end,
    title, description, location), times in UTC (dates as UTC midnights)."""
    read = x_wr_timezone.to_standard(icalendar.Calendar.from_ical(data))
    return {
        (str(item["UID"]), utc(item.decoded("DTSTART")), utc(item.decoded("DTEND")),
         str(item.get("SUMMARY", "(no title)")), str(item.get("DESCRIPTION", "")),
         str(item.get("LOCATION", "")))
        for item in recurring_ical_events.of(read).between(*WINDOW)
        if item.get("STATUS") != "CANCELLED"
    }  # fmt: skip


def listed(
    api: httpx.Client, user: User, events: dict[str, str], show_cancelled: bool = False
) -> set[Occurrence]:
    """The API's occurrences in WINDOW of each event (UID → event id)."""
    window = {"start": WINDOW[0].isoformat(), "end": WINDOW[1].isoformat()}
    if show_cancelled:
        window["show_cancelled"] = "true"
    found = set()
    for uid, event_id in events.items():
        answer = api.get(f"/api/events/{event_id}/occurrences", headers=user.headers, params=window)
        assert answer.status_code == 200, answer.text
        found |= {
            (uid, datetime.fromisoformat(o["start_time"]), datetime.fromisoformat(o["end_time"]),
             o["title"], o["description"], o["location"])
            for o in answer.json()["items"]
        }  # fmt: skip
    return found


def master_uids(data: bytes) -> list[str]:
    read = icalendar.Calendar.from_ical(data)
    return [str(e["UID"]) for e in read.walk("VEVENT") if "RECURRENCE-ID" not in e]


def listing(api: httpx.Client, user: User) -> list[dict[str, Any]]:
    answer = api.get("/api/events", headers=user.headers, params={"limit": 200})
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


@pytest.fixture
def owner(make_user: Callable[..., User]) -> User:
    return make_user("importer")


@pytest.mark.parametrize(
    ("fixture", "zones", "warnings"),
    [
        ("google_export.ics", ["America/New_York"] * 3 + ["UTC"], [43]),
        ("outlook_export.ics", ["Europe/Berlin", "America/Los_Angeles", "UTC"], [66]),
        ("apple_export.ics", ["Europe/London", "UTC", "Europe/London"], [40, 82]),
    ],
)
def test_files_of_calendar_apps_give_the_occurrences_they_mean(
    api: httpx.Client, owner: User, fixture: str, zones: list[str], warnings: list[int]
) -> None:
    data = (FIXTURES / fixture).read_bytes()
    answer = imported(api, owner, data)
    items = answer["items"]
    assert [item["timezone"] for item in items] == zones
    assert all(item["role"] == "owner" and item["version"] == 1 for item in items)
    assert [warning["line"] for warning in answer["warnings"]] == warnings
    events = dict(zip(master_uids(data), [item["id"] for item in items], strict=True))
    expected = oracle(data)
    assert len(expected) >= 6
    assert listed(api, owner, events) == expected


def test_google_utc_times_recur_in_the_calendar_zone_across_dst(
    api: httpx.Client, owner: User
) -> None:
    """Google writes one-off and some series' times in UTC and names the calendar's
    zone in X-WR-TIMEZONE: a Tuesday 10:00 New York series stays at 10:00 local after
    the change to daylight time (2035-03-11), i.e. 15:00Z, then 14:00Z."""
    items = imported(api, owner, (FIXTURES / "google_export.ics").read_bytes())["items"]
    series = next(item for item in items if item["title"] == "1:1 with Sam")
    window = {"start": "2035-03-01T00:00:00Z", "end": "2035-03-31T00:00:00Z"}
    answer = api.get(
        f"/api/events/{series['id']}/occurrences", headers=owner.headers, params=window
    )
    starts = [o["start_time"] for o in answer.json()["items"]]
    assert starts == [
        "2035-03-06T15:00:00Z", "2035-03-13T14:00:00Z", "2035-03-20T14:00:00Z",
        "2035-03-27T14:00:00Z",
    ]  # fmt: skip


def test_exceptions_become_cancellations_and_overrides(api: httpx.Client, owner: User) -> None:
    items = imported(api, owner, (FIXTURES / "google_export.ics").read_bytes())["items"]
    assert items[0]["overrides"] == {
        "2035-03-12T13:30:00Z": {"status": "cancelled"},
        "2035-03-21T13:30:00Z": {
            "title": "Stand-up (afternoon)",
            "description": "Moved to the afternoon this week.",
            "start_time": "2035-03-21T18:00:00Z",
            "end_time": "2035-03-21T19:00:00Z",
        },
        "2035-03-26T13:30:00Z": {"status": "cancelled"},
    }
    assert items[0]["description"] == (
        "Daily sync, bring your updates.\nAgenda: https://example.com/agenda"
    )


def test_an_export_imported_by_another_user_gives_the_same_occurrences(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    made = api.post(
        "/api/events/batch",
        headers=owner.headers,
        json={
            "allow_conflicts": True,
            "events": [
                {"title": "Weekly", "description": "Notes\nmore, and; more",
                 "location": "Room 1", "start_time": "2035-03-05T14:00:00Z",
                 "end_time": "2035-03-05T15:00:00Z", "timezone": "America/New_York",
                 "is_recurring": True, "recurrence_rule": "FREQ=WEEKLY;BYDAY=MO,TH;COUNT=20"},
                {"title": "Once", "start_time": "2035-03-09T23:30:00Z",
                 "end_time": "2035-03-10T01:00:00Z", "timezone": "Asia/Kolkata"},
                {"title": "Monthly", "start_time": "2035-03-31T08:00:00Z",
                 "end_time": "2035-03-31T09:00:00Z", "timezone": "Europe/Paris",
                 "is_recurring": True, "recurrence_rule": "FREQ=MONTHLY;BYMONTHDAY=-1"},
            ],
        },
    )  # fmt: skip
    assert made.status_code == 201, made.text
    series = made.json()["items"][0]["id"]
    occurrences = f"/api/events/{series}/occurrences"
    moved = api.patch(
        f"{occurrences}/2035-03-15T13:00:00Z",
        headers=owner.headers,
        json={"title": "Moved", "location": "Room 2", "start_time": "2035-03-16T16:00:00Z",
              "end_time": "2035-03-16T17:30:00Z"},
    )  # fmt: skip
    assert moved.status_code == 200, moved.text
    cancelled = api.delete(f"{occurrences}/2035-03-19T13:00:00Z", headers=owner.headers)
    assert cancelled.status_code == 204
    export = api.get("/api/calendar.ics", headers=owner.headers)
    assert export.status_code == 200

    other = make_user("copier")
    items = imported(api, other, export.content)["items"]
    assert {item["owner_id"] for item in items} == {other.id}
    originals = dict(zip(master_uids(export.content), master_uids(export.content), strict=True))
    copies = dict(zip(master_uids(export.content), [i["id"] for i in items], strict=True))
    assert originals.keys() == {event["id"] for event in made.json()["items"]}
    assert listed(api, other, copies, show_cancelled=True) == listed(
        api, owner, originals, show_cancelled=True
    )
    assert [i["overrides"] for i in items if i["title"] == "Weekly"] == [
        api.get(f"/api/events/{series}", headers=owner.headers).json()["overrides"]
    ]


def test_a_reimport_updates_what_it_imported(api: httpx.Client, owner: User) -> None:
    data = (FIXTURES / "apple_export.ics").read_bytes()
    first = imported(api, owner, data)["items"]
    again = imported(api, owner, data)["items"]
    assert [(i["id"], i["version"]) for i in again] == [(i["id"], 1) for i in first]

    renamed = data.replace(b"SUMMARY:Dentist", b"SUMMARY:Dentist (moved)").replace(
        b"20350311T10", b"20350312T10"
    )
    changed = imported(api, owner, renamed)["items"]
    assert [i["id"] for i in changed] == [i["id"] for i in first]
    dentist = changed[2]
    assert (dentist["title"], dentist["version"]) == ("Dentist (moved)", 2)
    assert dentist["start_time"] == "2035-03-12T10:00:00Z"
    assert [i["version"] for i in changed[:2]] == [1, 1]
    assert len(listing(api, owner)) == 3
    changelog = api.get(f"/api/events/{dentist['id']}/changelog", headers=owner.headers).json()
    renaming = changelog["items"][-1]["changes"]["title"]
    assert renaming == {"old": "Dentist", "new": "Dentist (moved)"}


def test_a_uid_that_is_the_id_of_an_owned_event_updates_it(
    api: httpx.Client, owner: User, make_user: Callable[..., User]
) -> None:
    event = api.post(
        "/api/events",
        headers=owner.headers,
        json={"title": "Mine", "start_time": "2035-03-05T09:00:00Z",
              "end_time": "2035-03-05T10:00:00Z"},
    ).json()  # fmt: skip
    exported = api.get(f"/api/events/{event['id']}.ics", headers=owner.headers).content
    edited = exported.replace(b"SUMMARY:Mine", b"SUMMARY:Mine, edited elsewhere")
    (updated,) = imported(api, owner, edited)["items"]
    assert (updated["id"], updated["title"], updated["version"]) == (
        event["id"], "Mine, edited elsewhere", 2,
    )  # fmt: skip

    # Another user's import of the same file makes their own copy.
    other = make_user("other")
    (copy,) = imported(api, other, edited)["items"]
    assert copy["id"] != event["id"] and copy["owner_id"] == other.id
    assert api.get(f"/api/events/{event['id']}", headers=owner.headers).json()["version"] == 2


def test_a_file_that_clashes_imports_nothing(api: httpx.Client, owner: User) -> None:
    busy = api.post(
        "/api/events",
        headers=owner.headers,
        json={"title": "Busy", "start_time": "2035-03-05T09:30:00Z",
              "end_time": "2035-03-05T10:30:00Z"},
    ).json()  # fmt: skip
    data = calendar(
        one_off("a", "20350304T090000Z", "20350304T100000Z"),
        one_off("b", "20350305T090000Z", "20350305T100000Z"),
    )
    clash = assert_problem(post_file(api, owner, data), 409)
    assert clash["index"] == 1
    assert clash["conflicts"][0]["event_id"] == busy["id"]
    assert len(listing(api, owner)) == 1

    within = calendar(
        one_off("c", "20350306T090000Z", "20350306T100000Z"),
        "UID:c\nRECURRENCE-ID:20350306T090000Z\nDTSTART:20350306T090000Z\nSTATUS:CANCELLED",
        one_off("d", "20350306T093000Z", "20350306T094500Z"),
    )
    # VEVENT 1 overrides an occurrence of c, which does not recur: the error names it.
    assert assert_problem(post_file(api, owner, within), 422)["errors"][0]["field"] == (
        "vevents.1.RECURRENCE-ID"
    )
    within = calendar(
        one_off("c", "20350306T090000Z", "20350306T100000Z"),
        one_off("d", "20350306T093000Z", "20350306T094500Z"),
    )
    assert assert_problem(post_file(api, owner, within), 409)["index"] == 1
    assert len(imported(api, owner, data, allow_conflicts="true")["items"]) == 2
    assert len(listing(api, owner)) == 3


def test_a_reimport_does_not_clash_with_what_it_replaces(api: httpx.Client, owner: User) -> None:
    data = calendar(one_off("slot", "20350304T090000Z", "20350304T100000Z"))
    first = imported(api, owner, data)["items"][0]
    later = data.replace(b"20350304T100000Z", b"20350304T103000Z")
    moved = imported(api, owner, later)["items"][0]
    assert (moved["id"], moved["end_time"], moved["version"]) == (
        first["id"], "2035-03-04T10:30:00Z", 2,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("vevents", "field", "line"),
    [
        (["UID:x\nDTSTART:20350304T090000Z\nDTEND:20350304T100000Z\nRDATE:20350305T090000Z"],
         "vevents.0.RDATE", 8),
        (["UID:x\nDTSTART:20350304T090000Z\nDTEND:20350304T100000Z\nRRULE:FREQ=DAILY\n"
          "EXRULE:FREQ=WEEKLY"], "vevents.0.EXRULE", 9),
        (["UID:x\nDTSTART:20350304T090000Z\nDTEND:20350304T100000Z",
          "UID:y\nRECURRENCE-ID:20350304T090000Z\nDTSTART:20350304T090000Z"],
         "vevents.1.RECURRENCE-ID", 11),
        (["UID:x\nDTSTART:20350304T090000Z\nDTEND:20350304T100000Z\nRRULE:FREQ=DAILY;COUNT=3",
          "UID:x\nRECURRENCE-ID:20350304T093000Z\nDTSTART:20350304T093000Z"],
         "vevents.1.RECURRENCE-ID", 12),
        (["UID:x\nDTSTART;TZID=Mars/Olympus:20350304T090000\nDTEND:20350304T100000Z"],
         "vevents.0.DTSTART", 6),
        (["UID:x\nDTSTART:20350304T090000Z\nDTEND:20350304T080000Z"], "vevents.0.DTEND", 7),
        (["UID:x\nDTSTART:20350304T090000Z\nDTEND:20350304T100000Z\nRRULE:FREQ=SOMETIMES"],
         "vevents.0.RRULE", 8),
        (["UID:x\nSUMMARY:" + "t" * 201 + "\nDTSTART:20350304T090000Z\nDURATION:PT1H"],
         "vevents.0.SUMMARY", 6),
        (["UID:x\nDTSTART:20350304T090000Z\nDTEND:20350304T100000Z\nthis is not a line"],
         "body", 8),
        (["UID:x\nDTSTART:2035-03-04\nDTEND:20350304T100000Z"], "vevents.0.DTSTART", 6),
    ],
)  # fmt: skip
def test_bad_files_name_the_vevent_property_and_line(
    api: httpx.Client, owner: User, vevents: list[str], field: str, line: int
) -> None:
    good = one_off("fine", "20350301T090000Z", "20350301T100000Z")
    data = calendar(*vevents, good)
    problem = assert_problem(post_file(api, owner, data), 422)
    assert problem["errors"][0]["field"] == field, problem
    assert problem["errors"][0]["line"] == line, problem
    assert problem["errors"][0]["message"]
    assert data.split(b"\r\n")[line - 1]  # the line exists
    assert listing(api, owner) == []


def test_what_is_not_a_calendar_is_refused(api: httpx.Client, owner: User) -> None:
    data = calendar(one_off("a", "20350304T090000Z", "20350304T100000Z"))
    as_json = api.post(
        "/api/events/import", headers={**owner.headers, "Content-Type": "application/json"},
        content=data,
    )  # fmt: skip
    assert_problem(as_json, 415)
    assert_problem(api.post("/api/events/import", headers=owner.headers, content=data), 415)
    assert assert_problem(post_file(api, owner, b""), 422)["errors"][0]["field"] == "body"
    assert assert_problem(post_file(api, owner, b"\xff\xfe"), 422)["errors"][0]["line"] == 1
    truncated = data.removesuffix(b"END:VCALENDAR\r\n")
    assert assert_problem(post_file(api, owner, truncated), 422)["errors"][0]["field"] == "body"
    assert_problem(post_file(api, owner, data + b"X" * (1024 * 1024)), 413)
    assert_problem(api.post("/api/events/import", headers=CALENDAR, content=data), 401)
    assert listing(api, owner) == []


def test_at_most_500_events_a_file(api: httpx.Client, owner: User) -> None:
    events = [
        one_off(f"e{n}", f"2035{1 + n // 28:02d}{1 + n % 28:02d}T090000Z",
                f"2035{1 + n // 28:02d}{1 + n % 28:02d}T093000Z")
        for n in range(336)
    ]  # fmt: skip
    events += [e.replace("T09", "T10").replace("UID:e", "UID:f") for e in events[:165]]
    problem = assert_problem(post_file(api, owner, calendar(*events)), 422)
    assert problem["errors"][0]["field"] == "vevents"
    assert len(imported(api, owner, calendar(*events[:500]))["items"]) == 500


def test_an_import_with_an_idempotency_key_is_applied_once(api: httpx.Client, owner: User) -> None:
    data = calendar(one_off("once", "20350304T090000Z", "20350304T100000Z"))
    headers = {**owner.headers, **CALENDAR, "Idempotency-Key": "import-1"}
    first = api.post("/api/events/import", headers=headers, content=data)
    again = api.post("/api/events/import", headers=headers, content=data)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    other = api.post("/api/events/import", headers=headers, content=data + b"\r\n")
    assert_problem(other, 422)
    assert [e["version"] for e in listing(api, owner)] == [1]
