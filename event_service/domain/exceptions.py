"""Exceptions of a recurring series (RFC 5545 RECURRENCE-ID overrides and EXDATE).

An exception is keyed by its occurrence's recurrence id: the start the rule generates
for it, in UTC. It either cancels the occurrence or holds the fields in which the
occurrence differs from the series; a moved occurrence (new start or end) is listed
where it now is. A series stores its exceptions as one JSON map, recurrence id text to
override (`overrides_to_json`).
"""

import re
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from operator import attrgetter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from common.timeutil import MAX_YEAR, MIN_YEAR, rfc3339
from event_service.domain.recurrence import Schedule, utc_to_local

MAX_EXCEPTIONS = 1_000
OVERRIDE_FIELDS = ("title", "description", "location", "start_time", "end_time")
_TEXT_FIELDS = ("title", "description", "location")
_TIME_FIELDS = ("start_time", "end_time")
_RECURRENCE_ID = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?"
    r"(?:(Z)|([+-])(\d{2}):(\d{2}))",
    re.IGNORECASE | re.ASCII,
)
_WALL_CLOCK = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class Override:
    """One occurrence's exception: cancelled, or the fields that differ from the series."""

    cancelled: bool = False
    title: str | None = None
    description: str | None = None
    location: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        if self.cancelled:
            return {"status": "cancelled"}
        data: dict[str, Any] = {}
        for name in OVERRIDE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = rfc3339(value) if isinstance(value, datetime) else value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Override":
        if data.get("status") == "cancelled":
            return cls(cancelled=True)
        values: dict[str, Any] = {}
        for name in _TEXT_FIELDS:
            if data.get(name) is not None:
                values[name] = str(data[name])
        for name in _TIME_FIELDS:
            if data.get(name) is not None:
                values[name] = _aware_utc(datetime.fromisoformat(data[name]), name)
        return cls(**values)

    @property
    def moves(self) -> bool:
        return self.start_time is not None or self.end_time is not None


Overrides = dict[datetime, Override]


def _aware_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must have a UTC offset")
    return value.astimezone(UTC)


def recurrence_id_text(recurrence_id: datetime) -> str:
    """`2026-03-02T14:00:00Z`; with microseconds only if the start has them (so that
    the text names the start exactly)."""
    instant = recurrence_id.astimezone(UTC)
    text = f"{instant:%Y-%m-%dT%H:%M:%S}"
    if instant.microsecond:
        text += f".{instant.microsecond:06d}"
    return text + "Z"


def parse_recurrence_id(text: str) -> datetime | None:
    """The instant of `YYYY-MM-DDTHH:MM:SS` with `Z` or a `±hh:mm` offset, in UTC;
    None if malformed, naive or outside the supported years."""
    match = _RECURRENCE_ID.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, _, sign, off_h, off_m = match.groups()
    try:
        offset = timedelta(0)
        if sign is not None:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            if int(off_m) >= 60 or offset >= timedelta(hours=24):
                return None
            if sign == "-":
                offset = -offset
        micro = int(fraction.ljust(6, "0")) if fraction else 0
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro,
            tzinfo=timezone(offset),
        )  # fmt: skip
        instant = local.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    if not MIN_YEAR <= instant.year <= MAX_YEAR:
        return None
    return instant


def overrides_from_json(data: Mapping[str, Mapping[str, Any]]) -> Overrides:
    """ValueError for a malformed recurrence id or time."""
    overrides: Overrides = {}
    for text, value in data.items():
        recurrence_id = parse_recurrence_id(text)
        if recurrence_id is None:
            raise ValueError(f"'{text}' is not a recurrence id")
        overrides[recurrence_id] = Override.from_json(value)
    return overrides


def overrides_to_json(overrides: Mapping[datetime, Override]) -> dict[str, dict[str, Any]]:
    return {recurrence_id_text(rid): overrides[rid].to_json() for rid in sorted(overrides)}


class Instance(NamedTuple):
    """An occurrence as it happens: the rule's, or its exception's."""

    recurrence_id: datetime
    start: datetime
    end: datetime
    override: Override | None

    @property
    def cancelled(self) -> bool:
        return self.override is not None and self.override.cancelled


_BY_START = attrgetter("start", "recurrence_id")
_NONE_LEFT = (datetime.max.replace(tzinfo=UTC), Override())


def effective_times(
    override: Override | None, recurrence_id: datetime, duration: timedelta
) -> tuple[datetime, datetime]:
    """An occurrence's (start, end): its override's times, else the rule's."""
    start, end = recurrence_id, recurrence_id + duration
    if override is not None:
        start = override.start_time or start
        end = override.end_time or end
    return start, end


class ExceptionIndex:
    """A series' overrides arranged for `instances`: their recurrence ids sorted, and
    the moved occurrences sorted by where they now are. Build it once per series (a
    snapshot: it does not follow later changes to `overrides`) and reuse it."""

    __slots__ = ("overrides", "duration", "moved", "_ids", "_entries", "_starts", "_longest_move")

    def __init__(self, overrides: Mapping[datetime, Override], duration: timedelta) -> None:
        self.overrides = overrides
        self.duration = duration
        self._ids = sorted(overrides)
        self._entries = [(rid, overrides[rid]) for rid in self._ids]
        self.moved: list[Instance] = sorted(
            (
                Instance(rid, *effective_times(override, rid, duration), override)
                for rid, override in overrides.items()
                if override.moves and not override.cancelled
            ),
            key=_BY_START,
        )
        self._starts = [instance.start for instance in self.moved]
        self._longest_move = max((i.end - i.start for i in self.moved), default=timedelta(0))

    def __len__(self) -> int:
        return len(self._ids)

    def generated_between(
        self, window_start: datetime, window_end: datetime
    ) -> list[tuple[datetime, Override]]:
        """The overrides of the occurrences whose original times overlap the window."""
        ids = self._ids
        low = bisect_right(ids, window_start - self.duration)
        high = bisect_left(ids, window_end)
        return self._entries[low:high]

    def moved_between(self, window_start: datetime, window_end: datetime) -> list[Instance]:
        """Moved occurrences overlapping the window, by start."""
        if not self.moved:
            return []
        low = bisect_right(self._starts, window_start - self._longest_move)
        high = bisect_left(self._starts, window_end)
        return [instance for instance in self.moved[low:high] if instance.end > window_start]


def exception_index(
    schedule: Schedule, overrides: Mapping[datetime, Override] | ExceptionIndex
) -> ExceptionIndex:
    """`overrides` as an index for `schedule` (itself if it already is one for it)."""
    duration = schedule.duration
    if isinstance(overrides, ExceptionIndex):
        if overrides.duration == duration:
            return overrides
        overrides = overrides.overrides
    return ExceptionIndex(overrides, duration)


def instances(
    schedule: Schedule,
    overrides: Mapping[datetime, Override] | ExceptionIndex,
    window_start: datetime,
    window_end: datetime,
    *,
    show_cancelled: bool = False,
    limit: int | None = None,
) -> list[Instance]:
    """Effective occurrences overlapping [window_start, window_end), sorted by (start,
    recurrence_id); at most `limit`. Cancelled ones only if `show_cancelled`, at their
    original times. A moved occurrence is listed where it now is, so one moved into
    the window from outside it is, one moved out of it is not.

    Listing many series, pass each one's `ExceptionIndex` (built once): from a plain
    mapping one is built on every call."""
    if limit is not None and limit <= 0:
        return []
    if not overrides:
        return [
            Instance(start, start, end, None)
            for start, end in schedule.occurrences(window_start, window_end, limit)
        ]
    index = exception_index(schedule, overrides)
    nearby = index.generated_between(window_start, window_end)
    moved = index.moved_between(window_start, window_end)
    fetch = limit
    if limit is not None:
        # Generated occurrences left out make room for later ones.
        fetch += sum(not _in_place(o, show_cancelled) for _, o in nearby)
    # Both are sorted by start: merged, not looked up (hashing aware datetimes is slow).
    found = []
    pending = iter(nearby)
    rid, override = next(pending, _NONE_LEFT)
    for start, end in schedule.occurrences(window_start, window_end, fetch):
        while rid < start:
            rid, override = next(pending, _NONE_LEFT)
        if rid != start:
            found.append(Instance(start, start, end, None))
        elif _in_place(override, show_cancelled):
            found.append(Instance(start, start, end, override))
    for instance in moved:
        insort(found, instance, key=_BY_START)
    return found if limit is None else found[:limit]


def _in_place(override: Override, show_cancelled: bool) -> bool:
    """Whether the occurrence is listed at its original time (else elsewhere, or not)."""
    return show_cancelled if override.cancelled else not override.moves


def is_generated(schedule: Schedule, recurrence_id: datetime) -> bool:
    """Whether the rule generates an occurrence starting exactly at recurrence_id."""
    if schedule.rule is None:
        return recurrence_id == schedule.start
    instant = timedelta(microseconds=1)
    nearby = schedule.occurrences(recurrence_id - instant, recurrence_id + instant)
    return any(occurrence.start == recurrence_id for occurrence in nearby)


@dataclass(frozen=True, slots=True)
class SeriesValues:
    """The series' own values of the text fields an override may change."""

    title: str
    description: str
    location: str

    def under(self, override: Override | None) -> "SeriesValues":
        """An occurrence's values: its override's over the series' (a cancelled one
        shows the series')."""
        if override is None or override.cancelled:
            return self
        return SeriesValues(
            self.title if override.title is None else override.title,
            self.description if override.description is None else override.description,
            self.location if override.location is None else override.location,
        )


def merged_override(
    existing: Override | None,
    changes: Mapping[str, Any],
    series: SeriesValues,
    recurrence_id: datetime,
    duration: timedelta,
) -> Override | None:
    """PATCH of one occurrence: `changes` (any of OVERRIDE_FIELDS, times aware; None
    clears a field) merged into `existing`, reinstated if it was cancelled, keeping
    only the fields that differ from the series; None if none does."""
    unknown = set(changes) - set(OVERRIDE_FIELDS)
    if unknown:
        raise ValueError(f"not an override field: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    if existing is not None:
        values = {name: getattr(existing, name) for name in OVERRIDE_FIELDS}
    values.update(changes)
    rule_values = {
        "title": series.title,
        "description": series.description,
        "location": series.location,
        "start_time": recurrence_id,
        "end_time": recurrence_id + duration,
    }
    differing = {}
    for name, value in values.items():
        if value is None:
            continue
        if name in _TIME_FIELDS:
            value = _aware_utc(value, name)
        if value != rule_values[name]:
            differing[name] = value
    return Override(**differing) if differing else None


def carried_overrides(
    old: Schedule, new: Schedule, overrides: Mapping[datetime, Override]
) -> tuple[Overrides, list[datetime]]:
    """A scope=all change of start, zone or rule: each exception goes to the new
    schedule's occurrence on its local date (the old zone's date, in the new zone),
    keeping its own values, times included; with none or several there it is dropped.
    Returns (the moved overrides by new recurrence id, the dropped recurrence ids)."""
    if new.rule is None:
        return {}, sorted(overrides)
    moved: Overrides = {}
    dropped = []
    for rid in sorted(overrides):
        starts = _starts_on_local_date(new, utc_to_local(rid, old.tz).date())
        if len(starts) == 1:
            moved[starts[0]] = overrides[rid]
        else:
            dropped.append(rid)
    return moved, dropped


def _starts_on_local_date(schedule: Schedule, day: date) -> list[datetime]:
    # Every zone's offset is within a day of UTC.
    window_start = datetime.combine(day - timedelta(days=1), time(0), UTC)
    window_end = datetime.combine(day + timedelta(days=2), time(0), UTC)
    return [
        occurrence.start
        for occurrence in schedule.occurrences(window_start, window_end)
        if utc_to_local(occurrence.start, schedule.tz).date() == day
    ]


def split_rules(schedule: Schedule, rule_text: str, split_at: datetime) -> tuple[str, str]:
    """scope=this_and_following at the generated occurrence `split_at`, not the first
    (ValueError otherwise): (the old series' rule, ending before split_at; the new
    series' rule, from split_at). Only COUNT or UNTIL change; the other parts stay as
    given, in their order."""
    rule = schedule.rule
    if rule is None or split_at == schedule.start or not is_generated(schedule, split_at):
        raise ValueError("split_at must be a generated occurrence of a series, not its first")
    prefix, parts = _rule_parts(rule_text)
    until = f"{split_at.astimezone(UTC) - timedelta(seconds=1):%Y%m%dT%H%M%SZ}"
    if rule.count is None:
        return prefix + ";".join(_with_part(parts, "UNTIL", until)), rule_text
    before = _rule_matches_before(schedule, split_at)
    if before == 0:
        # Only a DTSTART that the rule does not match comes before split_at: COUNT=0
        # is not a rule, so the old series ends by UNTIL instead.
        old = _with_part([p for p in parts if _part_name(p) != "COUNT"], "UNTIL", until)
    else:
        old = _with_part(parts, "COUNT", str(before))
    new = _with_part(parts, "COUNT", str(rule.count - before))
    return prefix + ";".join(old), prefix + ";".join(new)


def _rule_matches_before(schedule: Schedule, split_at: datetime) -> int:
    """How many of the rule's matches (which COUNT counts) start before split_at.

    Matches are local wall-clock times: counted on a copy of the series in UTC, where
    every one exists (the real zone drops those in a DST gap, which COUNT counts all
    the same). A DTSTART that the rule does not match is an occurrence besides them."""
    rule = schedule.rule
    assert rule is not None and rule.count is not None
    first = utc_to_local(schedule.start, schedule.tz).replace(tzinfo=UTC)
    wall = Schedule(first, first + schedule.duration, _WALL_CLOCK, rule)
    span_end = wall.span_end()
    assert span_end is not None
    starts = [occurrence.start for occurrence in wall.occurrences(first, span_end)]
    split_local = utc_to_local(split_at, schedule.tz).replace(tzinfo=UTC)
    before = bisect_left(starts, split_local)
    dtstart_extra = len(starts) > rule.count
    return before - dtstart_extra


def _rule_parts(rule_text: str) -> tuple[str, list[str]]:
    body = rule_text.strip()
    prefix = ""
    if body[:6].upper() == "RRULE:":
        prefix, body = body[:6], body[6:]
    return prefix, [part for part in body.split(";") if part.strip()]


def _part_name(part: str) -> str:
    return part.partition("=")[0].strip().upper()


def _with_part(parts: list[str], name: str, value: str) -> list[str]:
    """`parts` with NAME's value replaced, or NAME=value appended."""
    replaced = [f"{name}={value}" if _part_name(part) == name else part for part in parts]
    if not any(_part_name(part) == name for part in parts):
        replaced.append(f"{name}={value}")
    return replaced
