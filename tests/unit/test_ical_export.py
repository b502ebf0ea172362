"""iCalendar export: the text parses, carries the properties the API names, and
expands (by `recurring_ical_events`, an independent implementation) to the same
occurrences as our own expansion of the stored event."""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events

from event_service.domain.exceptions import (
    Override,
    instances,
    overrides_from_json,
    overrides_to_json,
)
from event_service.ical_export import (
    CALENDAR_TAIL,
    PRODID,
    calendar_head,
    event_calendar,
    event_components,
)
from event_service.models import StoredEvent

NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")
CREATED = datetime(2026, 1, 5, 12, 0, 1, tzinfo=UTC)
UPDATED = datetime(2026, 1, 20, 8, 30, 2, tzinfo=UTC)
ALL_OF_2026 = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
# The 2026 transition of New York (8 March): 09:00 local is 14:00Z before, 13:00Z after.
NY_CANCELLED = datetime(2026, 3, 2, 14, tzinfo=UTC)
NY_MOVED = datetime(2026, 3, 9, 13, tzinfo=UTC)
HOUR = timedelta(hours=1)

Occurrence = tuple[datetime, datetime, str]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)  # type: ignore[misc]


def stored(
    start: datetime,
    minutes: int,
    zone: str,
    rule: str | None = None,
    overrides: dict[datetime, Override] | None = None,
    **fields: object,
) -> StoredEvent:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "owner_id": uuid.uuid4(),
        "title": "Standup",
        "description": "Daily sync",
        "location": "Room 1",
        "start_time": start,
        "end_time": start + timedelta(minutes=minutes),
        "timezone": zone,
        "is_recurring": rule is not None,
        "recurrence_rule": rule,
        "version": 4,
        "created_at": CREATED,
        "updated_at": UPDATED,
        "overrides": overrides_to_json(overrides or {}),
        **fields,
    }
    return StoredEvent(**values)  # type: ignore[arg-type]


def new_york_series() -> StoredEvent:
    """Weekly on Mondays at 09:00 New York time across the March DST change: one
    occurrence moved to Tuesday and retitled, one cancelled."""
    return stored(
        local(NEW_YORK, 2026, 2, 16, 9),
        60,
        "America/New_York",
        "FREQ=WEEKLY;BYDAY=MO;COUNT=8",
        {
            NY_CANCELLED: Override(cancelled=True),
            NY_MOVED: Override(
                title="Moved standup",
                start_time=local(NEW_YORK, 2026, 3, 10, 11),
                end_time=local(NEW_YORK, 2026, 3, 10, 12, 30),
            ),
        },
    )


def paris_one_off(**fields: object) -> StoredEvent:
    return stored(local(PARIS, 2026, 3, 28, 14), 90, "Europe/Paris", **fields)


def parse(text: bytes) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(text)


def lines(text: bytes) -> list[bytes]:
    """The content lines, unfolded."""
    return text.replace(b"\r\n ", b"").split(b"\r\n")[:-1]


def vevents(calendar: icalendar.Calendar) -> list[icalendar.Event]:
    return list(calendar.walk("VEVENT"))


def tzids(calendar: icalendar.Calendar) -> list[str]:
    return [str(zone["TZID"]) for zone in calendar.walk("VTIMEZONE")]


def exported(
    calendar: icalendar.Calendar, window: tuple[datetime, datetime], uid: str | None = None
) -> list[Occurrence]:
    return sorted(
        (
            vevent["DTSTART"].dt.astimezone(UTC),
            vevent["DTEND"].dt.astimezone(UTC),
            str(vevent["SUMMARY"]),
        )
        for vevent in recurring_ical_events.of(calendar).between(*window)
        if uid is None or str(vevent["UID"]) == uid
    )


def ours(event: StoredEvent, window: tuple[datetime, datetime]) -> list[Occurrence]:
    found = instances(event.schedule(), overrides_from_json(event.overrides), *window)
    return sorted(
        (
            i.start,
            i.end,
            event.title if i.override is None or i.override.title is None else i.override.title,
        )
        for i in found
    )


def assert_well_formed(text: bytes) -> None:
    """CRLF line ends only, lines of at most 75 octets, each valid UTF-8."""
    assert text.endswith(b"\r\n")
    assert b"\n" not in text.replace(b"\r\n", b"") and b"\r" not in text.replace(b"\r\n", b"")
    for line in text.split(b"\r\n"):
        assert len(line) <= 75, line
        line.decode()


def test_weekly_series_across_dst_with_exceptions() -> None:
    event = new_york_series()
    text = event_calendar(event)
    assert_well_formed(text)
    calendar = parse(text)
    assert str(calendar["VERSION"]) == "2.0" and str(calendar["PRODID"]) == PRODID
    assert tzids(calendar) == ["America/New_York"]

    master, moved = vevents(calendar)
    assert "RECURRENCE-ID" not in master
    for vevent in (master, moved):
        assert str(vevent["UID"]) == str(event.id)
        assert vevent["SEQUENCE"] == 3
        assert vevent["DTSTAMP"].dt == UPDATED and vevent["LAST-MODIFIED"].dt == UPDATED
        assert vevent["CREATED"].dt == CREATED
        assert vevent["DTSTART"].params["TZID"] == "America/New_York"
        assert vevent["DTEND"].params["TZID"] == "America/New_York"
    assert str(master["RRULE"].to_ical(), "ascii") == "FREQ=WEEKLY;COUNT=8;BYDAY=MO"
    assert master["DTSTART"].dt == datetime(2026, 2, 16, 9, tzinfo=NEW_YORK)
    assert (str(master["SUMMARY"]), str(master["DESCRIPTION"]), str(master["LOCATION"])) == (
        "Standup",
        "Daily sync",
        "Room 1",
    )
    # The moved occurrence: its own title and times, the series' other texts.
    assert moved["RECURRENCE-ID"].dt == NY_MOVED
    assert moved["RECURRENCE-ID"].params["TZID"] == "America/New_York"
    assert moved["DTSTART"].dt == datetime(2026, 3, 10, 11, tzinfo=NEW_YORK)
    assert moved["DTEND"].dt == datetime(2026, 3, 10, 12, 30, tzinfo=NEW_YORK)
    assert (str(moved["SUMMARY"]), str(moved["DESCRIPTION"]), str(moved["LOCATION"])) == (
        "Moved standup",
        "Daily sync",
        "Room 1",
    )
    unfolded = lines(text)
    assert unfolded.count(b"EXDATE;TZID=America/New_York:20260302T090000") == 1
    assert sum(line.startswith(b"EXDATE") for line in unfolded) == 1
    assert b"RECURRENCE-ID;TZID=America/New_York:20260309T090000" in unfolded
    assert b"DTSTAMP:20260120T083002Z" in unfolded and b"CREATED:20260105T120001Z" in unfolded

    found = exported(calendar, ALL_OF_2026)
    assert found == ours(event, ALL_OF_2026)
    assert len(found) == 7 and "Moved standup" in {title for _, _, title in found}
    assert {start.hour for start, _, title in found if title == "Standup"} == {13, 14}
    window = (utc(2026, 3, 1), utc(2026, 3, 20))
    assert exported(calendar, window) == ours(event, window)


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC"])
def test_daily_utc_series_with_count_and_cancellations_is_written_in_utc(zone: str) -> None:
    event = stored(
        utc(2026, 5, 1, 8, 30),
        45,
        zone,
        "FREQ=DAILY;COUNT=5",
        {
            utc(2026, 5, 3, 8, 30): Override(
                title="Longer", location="", end_time=utc(2026, 5, 3, 10)
            ),
            utc(2026, 5, 4, 8, 30): Override(cancelled=True),
            utc(2026, 5, 5, 8, 30): Override(cancelled=True),
        },
    )
    text = event_calendar(event)
    assert_well_formed(text)
    calendar = parse(text)
    assert tzids(calendar) == [] and b"TZID" not in text
    master, longer = vevents(calendar)
    assert str(master["LOCATION"]) == "Room 1" and str(longer["LOCATION"]) == ""
    assert str(longer["DESCRIPTION"]) == "Daily sync"
    unfolded = lines(text)
    assert b"DTSTART:20260501T083000Z" in unfolded and b"DTEND:20260501T091500Z" in unfolded
    assert b"RECURRENCE-ID:20260503T083000Z" in unfolded
    # One EXDATE per cancellation (recurring_ical_events reads that and a list alike).
    exdates = [line for line in unfolded if line.startswith(b"EXDATE")]
    assert exdates == [b"EXDATE:20260504T083000Z", b"EXDATE:20260505T083000Z"]
    assert exported(calendar, ALL_OF_2026) == ours(event, ALL_OF_2026)
    assert len(ours(event, ALL_OF_2026)) == 3


def test_one_off_event_in_paris_with_a_long_description() -> None:
    description = "Agenda: " + "présentation du budget, café; " * 20 + "fin\nMerci 🙂"
    event = paris_one_off(description=description, location="Salle 3, 2ᵉ étage")
    text = event_calendar(event)
    assert_well_formed(text)
    assert b"\r\n " in text  # the description was folded
    calendar = parse(text)
    assert tzids(calendar) == ["Europe/Paris"]
    (vevent,) = vevents(calendar)
    assert not {"RRULE", "EXDATE", "RECURRENCE-ID"} & set(vevent)
    assert vevent["DTSTART"].params["TZID"] == "Europe/Paris"
    assert vevent["DTSTART"].dt == datetime(2026, 3, 28, 14, tzinfo=PARIS)
    assert str(vevent["DESCRIPTION"]) == description
    assert str(vevent["LOCATION"]) == "Salle 3, 2ᵉ étage"
    assert vevent["SEQUENCE"] == 3
    assert exported(calendar, ALL_OF_2026) == ours(event, ALL_OF_2026)


def test_zone_that_icalendar_deems_utc_keeps_its_tzid() -> None:
    event = stored(utc(2026, 6, 1, 9), 60, "Atlantic/Reykjavik", "FREQ=WEEKLY;COUNT=3")
    text = event_calendar(event)
    assert b"DTSTART;TZID=Atlantic/Reykjavik:20260601T090000" in lines(text)
    calendar = parse(text)
    assert tzids(calendar) == ["Atlantic/Reykjavik"]
    assert exported(calendar, ALL_OF_2026) == ours(event, ALL_OF_2026)


def test_times_in_the_repeated_hour_after_the_change_are_written_in_utc() -> None:
    """01:30 on 1 November 2026 happens twice in New York; with a TZID it means the
    first (EDT), so the second (EST, 06:30Z) is written in UTC."""
    second = utc(2026, 11, 1, 6, 30)
    one_off = stored(second, 20, "America/New_York")
    assert b"DTSTART:20261101T063000Z" in lines(event_calendar(one_off))
    (vevent,) = vevents(parse(event_calendar(one_off)))
    assert vevent["DTSTART"].dt == second and vevent["DTEND"].dt == second + timedelta(minutes=20)
    series = stored(
        local(NEW_YORK, 2026, 10, 30, 9),
        60,
        "America/New_York",
        "FREQ=DAILY;COUNT=4",
        {local(NEW_YORK, 2026, 11, 1, 9): Override(start_time=second - HOUR, end_time=second)},
    )
    text = event_calendar(series)
    assert b"DTSTART;TZID=America/New_York:20261101T013000" in lines(text)  # the first 01:30
    assert b"DTEND:20261101T063000Z" in lines(text)
    assert exported(parse(text), ALL_OF_2026) == ours(series, ALL_OF_2026)
    # A series starting there keeps a local DTSTART, so that its rule is expanded on
    # New York's clock: its first occurrence is exported an hour early, no other.
    weekly = stored(second, 20, "America/New_York", "FREQ=WEEKLY;COUNT=30")
    text = event_calendar(weekly)
    assert b"DTSTART;TZID=America/New_York:20261101T013000" in lines(text)
    assert b"DTEND;TZID=America/New_York:20261101T015000" in lines(text)
    after_first = (utc(2026, 11, 2), utc(2028, 1, 1))
    assert exported(parse(text), after_first) == ours(weekly, after_first)
    assert len(ours(weekly, after_first)) == 29


def test_until_is_written_in_utc_and_keeps_the_last_local_day() -> None:
    # A date-only UNTIL takes in the whole local day (parse_rule); spaces are allowed.
    event = stored(
        local(NEW_YORK, 2026, 3, 5, 18), 30, "America/New_York", "freq=daily; until=20260310"
    )
    text = event_calendar(event)
    assert b"RRULE:FREQ=DAILY;UNTIL=20260311T035959Z" in lines(text)
    found = exported(parse(text), ALL_OF_2026)
    assert found == ours(event, ALL_OF_2026)
    assert found[-1][0] == local(NEW_YORK, 2026, 3, 10, 18)


def stream(events: Iterable[StoredEvent], zones: Iterable[str]) -> bytes:
    return calendar_head(zones) + b"".join(event_components(e) for e in events) + CALENDAR_TAIL


def test_streamed_calendar_of_events_in_two_zones() -> None:
    events = [new_york_series(), paris_one_off(), paris_one_off(title="Dinner")]
    text = stream(events, [e.timezone for e in events])
    assert_well_formed(text)
    calendar = parse(text)
    assert tzids(calendar) == ["America/New_York", "Europe/Paris"]
    assert len(vevents(calendar)) == 4
    for event in events:
        assert exported(calendar, ALL_OF_2026, str(event.id)) == ours(event, ALL_OF_2026)
        assert stream([event], [event.timezone]) == event_calendar(event)


def test_head_skips_utc_and_duplicates_and_sorts_zones() -> None:
    head = calendar_head(["UTC", "Europe/Paris", "America/New_York", "Europe/Paris", "Etc/UTC"])
    assert head.startswith(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert not head.endswith(CALENDAR_TAIL)
    assert tzids(parse(head + CALENDAR_TAIL)) == ["America/New_York", "Europe/Paris"]
    empty = parse(calendar_head([]) + CALENDAR_TAIL)
    assert tzids(empty) == [] and str(empty["PRODID"]) == PRODID


def test_vtimezone_covers_every_year_the_api_takes() -> None:
    """A client that reads the VTIMEZONE rather than the IANA name (icalendar's own
    default covers 1970-2037 only) still has summer time in 2150."""
    (zone,) = parse(calendar_head(["America/New_York"]) + CALENDAR_TAIL).walk("VTIMEZONE")
    from_definition = zone.to_tz(lookup_tzid=False)
    for year in (1950, 2026, 2150, 2200):
        assert from_definition.utcoffset(datetime(year, 7, 1, 12)) == timedelta(hours=-4)
        assert from_definition.utcoffset(datetime(year, 1, 1, 12)) == timedelta(hours=-5)
