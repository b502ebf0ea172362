"""Reading an iCalendar (RFC 5545) file to import: its VEVENTs as event drafts with
their exceptions, every error with the VEVENT's property and the file's line.

The file is read in two steps. First its structure: content lines unfolded, each
with the line it starts on, split into components by `icalendar`'s content-line
parser (bad syntax and unbalanced BEGIN/END are errors of the `body`). Then each VEVENT
of a VCALENDAR (numbered from 0 in file order): its values decoded by `icalendar`'s
value types and turned into the event's fields. Overrides (VEVENTs with
RECURRENCE-ID) join the VEVENT with their UID that has none (the master).

Times: a TZID is an IANA name, a Windows name (CLDR's mapping, as `icalendar` keeps
it) or a vendor-prefixed IANA name; UTC and floating times are in the calendar's
X-WR-TIMEZONE if it has one (as Google and Apple mean it), else UTC; dates are UTC
midnights.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from icalendar.parser import Contentline
from icalendar.prop import vDDDLists, vDuration
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from common.errors import InvalidArgument
from common.timeutil import MAX_YEAR, MIN_YEAR
from event_service.domain.events import (
    DESCRIPTION_MAX,
    TITLE_MAX,
    EventDraft,
    ValidEvent,
    field_errors,
    is_time_zone,
    schedule_of,
)
from event_service.domain.exceptions import (
    MAX_EXCEPTIONS,
    Override,
    SeriesValues,
    is_generated,
    merged_override,
    recurrence_id_text,
)
from event_service.domain.recurrence import Schedule, SearchBudget

MAX_MASTERS = 500
NO_TITLE = "(no title)"
MAX_UID = 1_000
MAX_DEPTH = 8  # VCALENDAR > VEVENT > VALARM is 3
MAX_ERRORS = 100
MAX_DURATION = timedelta(days=36_525)
_UNSUPPORTED = {
    "RDATE": "RDATE is not supported: give the extra occurrences as events of their own",
    "EXRULE": "EXRULE is not supported (RFC 5545 deprecated it): use EXDATE",
}
# The property of an event field's value, for errors (DTEND: or DURATION, see `_field`).
_PROPERTY_OF_FIELD = {
    "title": "SUMMARY",
    "description": "DESCRIPTION",
    "location": "LOCATION",
    "start_time": "DTSTART",
    "end_time": "DTEND",
    "timezone": "DTSTART",
    "is_recurring": "RRULE",
    "recurrence_rule": "RRULE",
}


@dataclass(frozen=True, slots=True)
class ImportedEvent:
    """A master VEVENT as a valid event with its exceptions."""

    number: int  # the VEVENT's, counting every VEVENT of the file from 0
    uid: str | None
    valid: ValidEvent
    overrides: dict[datetime, Override]
    lines: dict[str, int]  # each property's first line; "" the line of BEGIN:VEVENT

    def error(self, name: str, message: str) -> dict[str, Any]:
        """An error of the property `name`, as InvalidArgument lists it."""
        return {
            "field": f"vevents.{self.number}.{name}",
            "line": self.lines.get(name, self.lines[""]),
            "message": message,
        }


@dataclass(frozen=True, slots=True)
class ImportedCalendar:
    events: list[ImportedEvent]
    warnings: list[dict[str, Any]]  # {"line", "message"}: what was skipped


def read_calendar(data: bytes) -> ImportedCalendar:
    """The file's master VEVENTs as events, in file order, or InvalidArgument listing
    what is wrong and where (`field` `body` or `vevents.<n>.<PROPERTY>`, `line`)."""
    calendars = _components(_content_lines(_text(data)))
    reading = _Reading()
    for calendar in calendars:
        reading.calendar(calendar)
    return reading.result()


# -- structure ----------------------------------------------------------------------


def _body_error(line: int, message: str) -> InvalidArgument:
    return InvalidArgument([{"field": "body", "line": line, "message": message}])


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise _body_error(line, "the file is not UTF-8 text") from None


def _content_lines(text: str) -> Iterator[tuple[int, str]]:
    """Each unfolded content line with the line it starts on (1-based); blank lines
    skipped (some writers end files with them)."""
    start, parts = 0, []
    for number, physical in enumerate(text.split("\n"), start=1):
        physical = physical.removesuffix("\r")
        if physical[:1] in (" ", "\t") and parts:
            parts.append(physical[1:])
            continue
        if parts:
            yield start, "".join(parts)
        start, parts = number, [physical] if physical.strip() else []
    if parts:
        yield start, "".join(parts)


@dataclass(slots=True)
class _Property:
    name: str
    params: dict[str, str]
    value: str
    line: int


@dataclass(slots=True)
class _Component:
    name: str
    line: int
    properties: list[_Property] = field(default_factory=list)
    children: list["_Component"] = field(default_factory=list)

    def first(self, name: str) -> _Property | None:
        return next((p for p in self.properties if p.name == name), None)


def _components(lines: Iterator[tuple[int, str]]) -> list[_Component]:
    """The file's VCALENDARs. Bad syntax or structure: InvalidArgument (`body`)."""
    calendars: list[_Component] = []
    stack: list[_Component] = []
    masters = 0
    last = 1
    for number, text in lines:
        last = number
        try:
            name, params, value = Contentline(text).parts()
        except ValueError:
            raise _body_error(number, "not an iCalendar content line (NAME;PARAMS:VALUE)") from None
        name = name.upper()
        if name == "BEGIN":
            if not stack and value.upper() != "VCALENDAR":
                raise _body_error(number, "expected BEGIN:VCALENDAR")
            if len(stack) >= MAX_DEPTH:
                raise _body_error(number, f"components nest deeper than {MAX_DEPTH}")
            stack.append(_Component(value.upper(), number))
        elif name == "END":
            if not stack or stack[-1].name != value.upper():
                expected = f"END:{stack[-1].name}" if stack else "BEGIN:VCALENDAR"
                raise _body_error(number, f"expected {expected}")
            done = stack.pop()
            if stack:
                stack[-1].children.append(done)
            else:
                calendars.append(done)
            if len(stack) == 1 and done.name == "VEVENT" and not done.first("RECURRENCE-ID"):
                masters += 1
                if masters > MAX_MASTERS:
                    raise InvalidArgument(
                        [{"field": "vevents", "line": done.line,
                          "message": f"a file may hold at most {MAX_MASTERS} events"}]
                    )  # fmt: skip
        elif not stack:
            raise _body_error(number, "expected BEGIN:VCALENDAR")
        else:
            stack[-1].properties.append(_Property(name, dict(params), value, number))
    if stack:
        raise _body_error(last, f"END:{stack[-1].name} is missing")
    if not calendars:
        raise _body_error(1, "the file holds no VCALENDAR")
    return calendars


# -- values -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Time:
    instant: datetime  # UTC
    zone: str
    is_date: bool
    local: datetime  # naive, in `zone`


def time_zone_name(tzid: str) -> str | None:
    """The IANA name of a TZID: an IANA or Windows name, or `/vendor/.../Area/City`."""
    cleaned = tzid.strip().strip("/")
    if is_time_zone(cleaned):
        return cleaned
    if cleaned in WINDOWS_TO_OLSON:
        return str(WINDOWS_TO_OLSON[cleaned])
    parts = cleaned.split("/")
    for first in range(1, len(parts)):
        if is_time_zone("/".join(parts[first:])):
            return "/".join(parts[first:])
    return None


def _decoded_times(prop: _Property, default_zone: str) -> list[_Time]:
    """The DATE or DATE-TIME values of a property, each with the zone it is in."""
    tzid = prop.params.get("TZID")
    zone = time_zone_name(tzid) if tzid else None
    if tzid and zone is None:
        raise ValueError(f"unknown time zone {tzid!r}: give an IANA or Windows zone name")
    try:
        values = vDDDLists.from_ical(prop.value)
    except (ValueError, TypeError):
        raise ValueError(f"{prop.value!r} is not a DATE or DATE-TIME") from None
    return [_time_of(value, zone, default_zone) for value in values]


def _time_of(value: date | datetime, zone: str | None, default_zone: str) -> _Time:
    if not isinstance(value, date):  # a datetime is a date too
        raise ValueError("must be a DATE or DATE-TIME")
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must be in the years {MIN_YEAR} to {MAX_YEAR}")
    if not isinstance(value, datetime):
        midnight = datetime.combine(value, time())
        return _Time(midnight.replace(tzinfo=UTC), "UTC", True, midnight)
    zone = zone or default_zone
    try:
        if value.tzinfo is not None:  # UTC (`Z`)
            instant = value.astimezone(UTC)
            local = instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        else:
            instant, local = value.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC), value
    except (OverflowError, ValueError):
        raise ValueError("is out of range") from None
    return _Time(instant, zone, False, local)


def _single_time(prop: _Property, default_zone: str) -> _Time:
    times = _decoded_times(prop, default_zone)
    if len(times) != 1:
        raise ValueError("must be one DATE or DATE-TIME")
    return times[0]


def _duration(prop: _Property) -> timedelta:
    try:
        value = vDuration.from_ical(prop.value)
    except (ValueError, TypeError):
        raise ValueError(f"{prop.value!r} is not a DURATION (e.g. PT1H30M)") from None
    if not timedelta(0) < value <= MAX_DURATION:
        raise ValueError("must be positive and at most 100 years")
    return value


def _local_plus(start: _Time, length: timedelta) -> datetime:
    """The instant `length` after `start`, days counted on the wall clock (RFC 5545:
    a nominal day is 23 to 25 hours across a DST change)."""
    if start.is_date or start.zone == "UTC":
        return start.instant + length
    local = start.local + length
    return local.replace(tzinfo=ZoneInfo(start.zone)).astimezone(UTC)


# -- VEVENTs --------------------------------------------------------------------------


@dataclass(slots=True)
class _Vevent:
    """One VEVENT's values, decoded; what fails to decode is an error of the reading."""

    number: int
    line: int
    lines: dict[str, int]  # property → the line of its first occurrence
    uid: str | None = None
    recurrence_id: datetime | None = None
    cancelled: bool = False
    summary: str | None = None
    description: str | None = None
    location: str | None = None
    start: _Time | None = None
    end: datetime | None = None
    duration: timedelta | None = None
    rule: str | None = None
    exdates: list[tuple[datetime, int]] = field(default_factory=list)
    is_override: bool = False  # it has RECURRENCE-ID
    broken: bool = False  # a value failed to decode: reported, not read further

    def end_property(self) -> str:
        return "DURATION" if self.duration is not None else "DTEND"

    def end_time(self) -> datetime | None:
        """DTEND, or DTSTART plus DURATION; a day for an all-day event without either."""
        if self.start is None or self.end is not None:
            return self.end
        if self.duration is not None:
            return _local_plus(self.start, self.duration)
        return self.start.instant + timedelta(days=1) if self.start.is_date else None


class _Reading:
    """Collects the events, warnings and errors of a file's calendars."""

    def __init__(self) -> None:
        self._vevents: list[_Vevent] = []
        self._warnings: list[dict[str, Any]] = []
        self._errors: list[dict[str, Any]] = []

    def error(self, vevent: _Vevent, name: str, message: str, line: int | None = None) -> None:
        """An error of the VEVENT's property `name` (at `line`, by default its first)."""
        line = line or vevent.lines.get(name, vevent.line)
        self._errors.append(
            {"field": f"vevents.{vevent.number}.{name}", "line": line, "message": message}
        )

    def warn(self, line: int, message: str) -> None:
        self._warnings.append({"line": line, "message": message})

    def calendar(self, calendar: _Component) -> None:
        default_zone = "UTC"
        named = calendar.first("X-WR-TIMEZONE")
        if named is not None:
            zone = time_zone_name(named.value)
            if zone is None:
                self.warn(named.line, f"X-WR-TIMEZONE {named.value!r} is unknown; UTC is used")
            else:
                default_zone = zone
        for component in calendar.children:
            if component.name == "VEVENT":
                self._vevents.append(self._vevent(component, default_zone))
            elif component.name != "VTIMEZONE":
                self.warn(component.line, f"{component.name} skipped: only VEVENTs are imported")

    def _vevent(self, component: _Component, default_zone: str) -> _Vevent:
        vevent = _Vevent(len(self._vevents), component.line, {"": component.line})
        vevent.is_override = component.first("RECURRENCE-ID") is not None
        for prop in component.properties:
            vevent.lines.setdefault(prop.name, prop.line)
        for child in component.children:
            self.warn(child.line, f"{child.name} skipped: only the event itself is imported")
        problems = [
            (name, message, unsupported.line)
            for name, message in _UNSUPPORTED.items()
            if (unsupported := component.first(name))
        ]
        for prop in component.properties:
            try:
                _decode_property(vevent, prop, default_zone)
            except ValueError as error:
                problems.append((prop.name, str(error), prop.line))
        if vevent.end is not None and vevent.duration is not None:
            problems.append(
                ("DURATION", "DTEND and DURATION must not both be given", vevent.lines["DURATION"])
            )
        for name, message, line in problems:
            self.error(vevent, name, message, line)
        vevent.broken = bool(problems)
        return vevent

    def result(self) -> ImportedCalendar:
        masters: dict[str, _Vevent] = {}
        for vevent in self._vevents:
            if vevent.is_override or vevent.uid is None:
                continue
            if vevent.uid in masters:
                first = masters[vevent.uid].number
                self.error(vevent, "UID", f"VEVENT {first} has this UID already")
            else:
                masters[vevent.uid] = vevent
        budget = SearchBudget()  # the file's: its rules cost the service so much
        events: dict[int, _Master] = {}
        for vevent in self._vevents:
            if not vevent.is_override:
                master = self._master(vevent, budget)
                if master is not None:
                    events[vevent.number] = master
            elif vevent.uid is None:
                self.error(vevent, "UID", "is required beside RECURRENCE-ID")
            elif vevent.uid not in masters:
                self.error(
                    vevent, "RECURRENCE-ID",
                    "overrides an occurrence of no VEVENT of this file (none with its UID "
                    "lacks RECURRENCE-ID)",
                )  # fmt: skip
            elif (series := events.get(masters[vevent.uid].number)) and not vevent.broken:
                self._override(series, vevent)
        for series in events.values():
            for instant, line in series.vevent.exdates:
                self._cancel(series, instant, line)
            if len(series.event.overrides) > MAX_EXCEPTIONS:
                message = f"a series may have at most {MAX_EXCEPTIONS} exceptions"
                self.error(series.vevent, "RRULE", message)
        if self._errors:
            self._errors.sort(key=lambda error: error["line"])
            raise InvalidArgument(self._errors[:MAX_ERRORS])
        return ImportedCalendar([series.event for series in events.values()], self._warnings)

    def _master(self, vevent: _Vevent, budget: SearchBudget) -> "_Master | None":
        if vevent.broken:
            return None
        if vevent.start is None:
            self.error(vevent, "DTSTART", "is required")
            return None
        end = vevent.end_time()
        if end is None:
            self.error(vevent, "DTEND", "is required (or DURATION): events last longer than 0")
            return None
        draft = EventDraft(
            title=vevent.summary or NO_TITLE,
            description=vevent.description or "",
            location=vevent.location or "",
            start_time=vevent.start.instant,
            end_time=end,
            timezone=vevent.start.zone,
            is_recurring=vevent.rule is not None,
            recurrence_rule=vevent.rule,
        )
        errors = field_errors(draft, budget)
        for name, message in errors:
            prop = _PROPERTY_OF_FIELD[name]
            self.error(vevent, vevent.end_property() if prop == "DTEND" else prop, message)
        if errors:
            return None
        valid = ValidEvent(draft, schedule_of(draft))
        return _Master(vevent, ImportedEvent(vevent.number, vevent.uid, valid, {}, vevent.lines))

    def _override(self, series: "_Master", vevent: _Vevent) -> None:
        """An override VEVENT of a valid master: the fields of that occurrence that
        differ from the series (none: no exception), or its cancellation."""
        recurrence_id = vevent.recurrence_id
        number, schedule, overrides = series.vevent.number, series.schedule, series.event.overrides
        assert recurrence_id is not None
        if not schedule.is_series:
            self.error(vevent, "RECURRENCE-ID", f"VEVENT {number} does not recur (no RRULE)")
            return
        if not is_generated(schedule, recurrence_id):
            message = f"{recurrence_id_text(recurrence_id)} is not an occurrence of VEVENT {number}"
            self.error(vevent, "RECURRENCE-ID", message)
            return
        if recurrence_id in overrides:
            message = "another VEVENT overrides this occurrence already"
            self.error(vevent, "RECURRENCE-ID", message)
            return
        if vevent.cancelled:
            overrides[recurrence_id] = Override(cancelled=True)
            return
        start = vevent.start.instant if vevent.start else recurrence_id
        end = vevent.end_time() or start + schedule.duration
        title = vevent.summary or NO_TITLE
        description = vevent.description or ""
        failed = [
            (name, message)
            for ok, name, message in (
                (len(title) <= TITLE_MAX, "SUMMARY", f"must be at most {TITLE_MAX} characters"),
                (
                    len(description) <= DESCRIPTION_MAX,
                    "DESCRIPTION",
                    f"must be at most {DESCRIPTION_MAX} characters",
                ),
                (end > start, vevent.end_property(), "must be after DTSTART"),
            )
            if not ok
        ]
        for name, message in failed:
            self.error(vevent, name, message)
        if failed:
            return
        draft = series.event.valid.draft
        override = merged_override(
            None,
            {
                "title": title,
                "description": description,
                "location": vevent.location or "",
                "start_time": start,
                "end_time": end,
            },
            SeriesValues(draft.title, draft.description, draft.location),
            recurrence_id,
            schedule.duration,
        )
        if override is not None:
            overrides[recurrence_id] = override

    def _cancel(self, series: "_Master", instant: datetime, line: int) -> None:
        """An EXDATE: cancels its occurrence (over any override of it)."""
        if series.schedule.is_series and is_generated(series.schedule, instant):
            series.event.overrides[instant] = Override(cancelled=True)
        else:
            self.warn(
                line,
                f"EXDATE {recurrence_id_text(instant)} of VEVENT {series.vevent.number} is "
                "not one of its occurrences; ignored",
            )


@dataclass(frozen=True, slots=True)
class _Master:
    vevent: _Vevent
    event: ImportedEvent

    @property
    def schedule(self) -> Schedule:
        return self.event.valid.schedule


def _decode_property(vevent: _Vevent, prop: _Property, default_zone: str) -> None:
    name, value = prop.name, prop.value
    if name == "UID":
        if len(value) > MAX_UID:
            raise ValueError(f"must be at most {MAX_UID} characters")
        vevent.uid = value
    elif name == "RECURRENCE-ID":
        if prop.params.get("RANGE", "").upper() == "THISANDFUTURE":
            raise ValueError("RANGE=THISANDFUTURE is not supported")
        vevent.recurrence_id = _single_time(prop, default_zone).instant
    elif name == "STATUS":
        vevent.cancelled = value.strip().upper() == "CANCELLED"
    elif name in ("SUMMARY", "DESCRIPTION", "LOCATION"):
        setattr(vevent, name.lower(), value)
    elif name == "DTSTART":
        vevent.start = _single_time(prop, default_zone)
    elif name == "DTEND":
        vevent.end = _single_time(prop, default_zone).instant
    elif name == "DURATION":
        vevent.duration = _duration(prop)
    elif name == "RRULE":
        if vevent.rule is not None:
            raise ValueError("a VEVENT may have one RRULE")
        vevent.rule = value.strip()
    elif name == "EXDATE":
        vevent.exdates += [
            (moment.instant, prop.line) for moment in _decoded_times(prop, default_zone)
        ]
