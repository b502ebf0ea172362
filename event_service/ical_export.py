"""iCalendar (RFC 5545) export of events, written by the `icalendar` library.

A calendar can be sent whole (`event_calendar`) or streamed: `calendar_head` for the
zones of every event to come, each event's `event_components`, then `CALENDAR_TAIL`.
Both give the same text for one event. Times are in the event's zone (`TZID`), or in
UTC (`Z`) for a UTC event; creation and modification stamps always in UTC.
"""

from collections.abc import Iterable
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import icalendar

from common.timeutil import MAX_YEAR, MIN_YEAR
from event_service.domain.exceptions import SeriesValues, effective_times, overrides_from_json
from event_service.domain.recurrence import UTC_ZONES, Schedule
from event_service.models import StoredEvent

PRODID = "-//EventHub//EventHub API//EN"
CALENDAR_TAIL = b"END:VCALENDAR\r\n"
# icalendar describes a zone from 1970 to 2037 unless told otherwise; clients that
# read VTIMEZONE rather than the IANA name (Outlook) would misplace later events.
# Every year the API takes: about 10 kB for a zone with daylight saving time.
_ZONE_FIRST_DATE = date(MIN_YEAR, 1, 1)
_ZONE_LAST_DATE = date(MAX_YEAR + 1, 1, 1)


def event_calendar(event: StoredEvent) -> bytes:
    """A whole VCALENDAR for one event (its VTIMEZONE if not UTC, its VEVENTs)."""
    return calendar_head([event.timezone]) + event_components(event) + CALENDAR_TAIL


def calendar_head(timezones: Iterable[str]) -> bytes:
    """BEGIN:VCALENDAR, VERSION, PRODID and one VTIMEZONE per zone given (UTC and
    duplicates skipped, sorted), without END:VCALENDAR: the start of a calendar
    streamed event by event."""
    return _head(tuple(sorted(set(timezones) - UTC_ZONES)))


@lru_cache(maxsize=256)
def _head(zones: tuple[str, ...]) -> bytes:
    # Cached: a zone's VTIMEZONE takes icalendar some 20 ms to build and 6 ms to write.
    calendar = icalendar.Calendar()
    calendar.add("version", "2.0")
    calendar.add("prodid", PRODID)
    for zone in zones:
        calendar.add_component(
            icalendar.Timezone.from_tzid(
                zone, first_date=_ZONE_FIRST_DATE, last_date=_ZONE_LAST_DATE
            )
        )
    text = calendar.to_ical()
    assert text.endswith(CALENDAR_TAIL), text[-40:]
    return text.removesuffix(CALENDAR_TAIL)


def event_components(event: StoredEvent) -> bytes:
    """The event's VEVENTs (the master, then one per override that is not a
    cancellation, by recurrence id), ready to go between calendar_head and CALENDAR_TAIL."""
    zone = None if event.timezone in UTC_ZONES else ZoneInfo(event.timezone)
    series = SeriesValues(event.title, event.description, event.location)
    start, end = event.start_time, event.end_time
    if event.recurrence_rule is not None and zone is not None:
        # A series' start stays local (in UTC the rule would be expanded on UTC's
        # clock): in the hour repeated when clocks go back, that is its first meaning.
        start = start.astimezone(zone).replace(fold=0).astimezone(UTC)
        end = start + (event.end_time - event.start_time)
    master = _vevent(event, series)
    _add_time(master, "dtstart", start, zone)
    _add_time(master, "dtend", end, zone)
    vevents = [master]
    if event.recurrence_rule is not None:
        schedule = event.schedule()
        master.add("rrule", _rrule(event.recurrence_rule, schedule))
        overrides = overrides_from_json(event.overrides)
        for recurrence_id in sorted(overrides):
            override = overrides[recurrence_id]
            if override.cancelled:
                _add_time(master, "exdate", recurrence_id, zone)
                continue
            start, end = effective_times(override, recurrence_id, schedule.duration)
            vevent = _vevent(event, series.under(override))
            _add_time(vevent, "recurrence-id", recurrence_id, zone)
            _add_time(vevent, "dtstart", start, zone)
            _add_time(vevent, "dtend", end, zone)
            vevents.append(vevent)
    return b"".join(vevent.to_ical() for vevent in vevents)


def _vevent(event: StoredEvent, values: SeriesValues) -> icalendar.Event:
    """A VEVENT with the event's UID, revision stamps and the given effective texts.
    Empty texts are written too: an override VEVENT replaces its occurrence whole."""
    vevent = icalendar.Event()
    vevent.add("uid", str(event.id))
    vevent.add("summary", values.title)
    vevent.add("description", values.description)
    vevent.add("location", values.location)
    vevent.add("sequence", event.version - 1)
    vevent.add("created", event.created_at.astimezone(UTC))
    # Without a METHOD, DTSTAMP is the revision's time (RFC 5545 3.8.7.2).
    vevent.add("dtstamp", event.updated_at.astimezone(UTC))
    vevent.add("last-modified", event.updated_at.astimezone(UTC))
    return vevent


def _add_time(vevent: icalendar.Event, name: str, instant: datetime, zone: ZoneInfo | None) -> None:
    """`instant` as local time with TZID = the zone's name, or in UTC (`Z`) for a UTC
    event and in the hour repeated when clocks go back, after the change: a local time
    there means the first one (RFC 5545 3.3.5).

    The TZID is given explicitly: from an aware time icalendar writes `Z` for any zone
    it deems equivalent to UTC, Atlantic/Reykjavik or Africa/Abidjan among them."""
    local = instant if zone is None else instant.astimezone(zone)
    if zone is None or local.fold:
        vevent.add(name, instant.astimezone(UTC))
    else:
        vevent.add(name, local.replace(tzinfo=None), parameters={"TZID": zone.key})


def _rrule(text: str, schedule: Schedule) -> icalendar.vRecur:
    """The stored rule with UNTIL in UTC: RFC 5545 requires that when DTSTART has a
    TZID, and a date-only UNTIL takes in that whole local day here (`parse_rule`)
    where clients would end the series as the day begins."""
    body = "".join(text.split()).upper()  # parse_rule allows spaces, icalendar does not
    recur = icalendar.vRecur.from_ical(body.removeprefix("RRULE:"))
    if schedule.rule is not None and schedule.rule.until is not None:
        # The parsed UNTIL is local wall-clock time; an ambiguous one is taken first.
        recur["UNTIL"] = [schedule.rule.until.replace(tzinfo=schedule.tz).astimezone(UTC)]
    return recur
