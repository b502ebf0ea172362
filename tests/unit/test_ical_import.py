"""Reading iCalendar files to import (`event_service.ical_import`): what each value
means, and where each error is."""

from datetime import UTC, datetime, timedelta

import pytest

from common.errors import InvalidArgument
from event_service.ical_import import MAX_DEPTH, read_calendar, time_zone_name


def ics(*lines: str, newline: str = "\r\n") -> bytes:
    return newline.join(["BEGIN:VCALENDAR", "VERSION:2.0", *lines, "END:VCALENDAR", ""]).encode()


def vevent(*lines: str) -> list[str]:
    return ["BEGIN:VEVENT", *lines, "END:VEVENT"]


def errors(data: bytes) -> list[dict]:
    with pytest.raises(InvalidArgument) as refused:
        read_calendar(data)
    return refused.value.extra["errors"]


def test_folded_lines_count_where_they_start() -> None:
    data = ics(
        *vevent("UID:a", "DESCRIPTION:one", " two", "\tthree", "DTSTART:20350301T090000Z",
                "DTEND:20350301T080000Z"),
    )  # fmt: skip
    assert errors(data) == [
        {"field": "vevents.0.DTEND", "line": 9, "message": "must be after start_time"}
    ]


def test_lf_line_ends_and_a_byte_order_mark_are_read() -> None:
    data = b"\xef\xbb\xbf" + ics(
        *vevent("UID:a", "DTSTART:20350301T090000Z", "DURATION:PT45M"), newline="\n"
    )
    (event,) = read_calendar(data).events
    assert event.valid.draft.end_time == datetime(2035, 3, 1, 9, 45, tzinfo=UTC)
    assert event.valid.draft.title == "(no title)"


def test_a_day_of_duration_is_a_day_on_the_wall_clock() -> None:
    """RFC 5545 §3.3.6: P1D across the start of daylight time lasts 23 hours."""
    data = ics(*vevent("UID:a", "DTSTART;TZID=Europe/Berlin:20350324T120000", "DURATION:P1D"))
    (event,) = read_calendar(data).events
    draft = event.valid.draft
    assert draft.end_time - draft.start_time == timedelta(hours=23)


def test_dates_are_utc_days_and_floating_times_utc_without_a_calendar_zone() -> None:
    data = ics(
        *vevent("UID:a", "DTSTART;VALUE=DATE:20350301"),
        *vevent("UID:b", "DTSTART:20350301T090000", "DTEND:20350301T100000"),
    )
    day, floating = read_calendar(data).events
    assert (day.valid.draft.start_time, day.valid.draft.end_time) == (
        datetime(2035, 3, 1, tzinfo=UTC), datetime(2035, 3, 2, tzinfo=UTC),
    )  # fmt: skip
    assert floating.valid.draft.start_time == datetime(2035, 3, 1, 9, tzinfo=UTC)
    assert floating.valid.draft.timezone == "UTC"


def test_the_calendar_zone_holds_floating_and_utc_times() -> None:
    data = ics(
        "X-WR-TIMEZONE:Asia/Tokyo",
        *vevent("UID:a", "DTSTART:20350301T090000", "DTEND:20350301T100000"),
        *vevent("UID:b", "DTSTART:20350301T090000Z", "DTEND:20350301T100000Z"),
    )
    floating, in_utc = read_calendar(data).events
    assert floating.valid.draft.start_time == datetime(2035, 3, 1, 0, tzinfo=UTC)
    assert in_utc.valid.draft.start_time == datetime(2035, 3, 1, 9, tzinfo=UTC)
    assert {floating.valid.draft.timezone, in_utc.valid.draft.timezone} == {"Asia/Tokyo"}


def test_an_unknown_calendar_zone_is_a_warning() -> None:
    data = ics("X-WR-TIMEZONE:Nowhere/Else", *vevent("UID:a", "DTSTART;VALUE=DATE:20350301"))
    assert read_calendar(data).warnings == [
        {"line": 3, "message": "X-WR-TIMEZONE 'Nowhere/Else' is unknown; UTC is used"}
    ]


@pytest.mark.parametrize(
    ("tzid", "zone"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Eastern Standard Time", "America/New_York"),
        ("/freeassociation.sourceforge.net/Tzfile/Europe/Paris", "Europe/Paris"),
        ("Mars/Olympus", None),
    ],
)
def test_time_zone_names(tzid: str, zone: str | None) -> None:
    assert time_zone_name(tzid) == zone


def test_an_exdate_off_the_rule_is_a_warning_and_one_on_it_a_cancellation() -> None:
    data = ics(
        *vevent("UID:a", "DTSTART:20350301T090000Z", "DTEND:20350301T100000Z",
                "RRULE:FREQ=DAILY;COUNT=5", "EXDATE:20350302T090000Z,20350302T093000Z"),
    )  # fmt: skip
    calendar = read_calendar(data)
    (event,) = calendar.events
    assert {rid: o.cancelled for rid, o in event.overrides.items()} == {
        datetime(2035, 3, 2, 9, tzinfo=UTC): True
    }
    assert [w["line"] for w in calendar.warnings] == [8]


def test_an_override_like_the_series_is_no_exception() -> None:
    data = ics(
        *vevent("UID:a", "SUMMARY:S", "DTSTART:20350301T090000Z", "DTEND:20350301T100000Z",
                "RRULE:FREQ=DAILY;COUNT=5"),
        *vevent("UID:a", "SUMMARY:S", "RECURRENCE-ID:20350302T090000Z",
                "DTSTART:20350302T090000Z"),
    )  # fmt: skip
    (event,) = read_calendar(data).events
    assert event.overrides == {}


@pytest.mark.parametrize(
    ("lines", "field", "line"),
    [
        (vevent("UID:a", "DTSTART:20350301T090000Z", "DTEND:20350301T100000Z")
         + vevent("UID:a", "DTSTART:20350302T090000Z", "DTEND:20350302T100000Z"),
         "vevents.1.UID", 9),
        (vevent("UID:a", "DTSTART:20350301T090000Z", "DTEND:20350301T100000Z",
                "RRULE:FREQ=DAILY;COUNT=5")
         + vevent("UID:a", "RECURRENCE-ID;RANGE=THISANDFUTURE:20350302T090000Z"),
         "vevents.1.RECURRENCE-ID", 11),
        (vevent("RECURRENCE-ID:20350302T090000Z", "DTSTART:20350302T090000Z"),
         "vevents.0.UID", 3),
        (vevent("UID:a", "DTSTART:20350301T090000Z"), "vevents.0.DTEND", 3),
        (vevent("UID:a", "DTSTART:20350301T090000Z", "DTEND:20350301T100000Z",
                "DURATION:PT1H"), "vevents.0.DURATION", 7),
        (vevent("UID:a", "DTSTART:18500301T090000Z", "DURATION:PT1H"), "vevents.0.DTSTART", 5),
        (vevent("UID:a", "DTSTART:20350301T090000Z", "DURATION:P99999999W"),
         "vevents.0.DURATION", 6),
        (vevent("UID:a", "DTSTART:20350301T090000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY",
                "RRULE:FREQ=WEEKLY"), "vevents.0.RRULE", 8),
        (["BEGIN:VEVENT", "UID:a", "END:VTODO"], "body", 5),
        (["END:VEVENT"], "body", 3),
        (["BEGIN:X"] * MAX_DEPTH, "body", 2 + MAX_DEPTH),
    ],
)  # fmt: skip
def test_errors_name_the_property_and_line(lines: list[str], field: str, line: int) -> None:
    found = errors(ics(*lines))
    assert (found[0]["field"], found[0]["line"]) == (field, line), found


def test_a_file_must_be_a_calendar() -> None:
    assert errors(b"BEGIN:VEVENT\r\nEND:VEVENT\r\n")[0] == {
        "field": "body", "line": 1, "message": "expected BEGIN:VCALENDAR",
    }  # fmt: skip
    assert errors(ics("BEGIN:VEVENT"))[0]["message"] == "expected END:VEVENT"
    assert errors(b"\n\n")[0]["message"] == "the file holds no VCALENDAR"


def test_several_calendars_in_one_file_are_read_in_order() -> None:
    one = ics(*vevent("UID:a", "DTSTART;VALUE=DATE:20350301"))
    two = ics(*vevent("UID:b", "DTSTART;VALUE=DATE:20350302"))
    assert [e.uid for e in read_calendar(one + two).events] == ["a", "b"]
