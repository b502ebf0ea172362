"""RFC 5545 recurrence: parsing RRULE bodies and expanding them on local wall-clock time.

A series is expanded in its IANA time zone on naive local times, so a weekly 09:00
meeting stays at 09:00 local across DST; local times that do not exist (the hour
skipped when clocks go forward) are dropped, as RFC 5545 requires, and ambiguous
ones take their first (fold=0) meaning. DTSTART is always the first occurrence.

Supported rule parts: FREQ (DAILY, WEEKLY, MONTHLY, YEARLY), INTERVAL, COUNT, UNTIL,
BYDAY, BYMONTHDAY, BYMONTH, BYSETPOS and WKST. Expansion walks the rule period by
period (every INTERVAL-th day, week, month or year), starting at the period that
holds the window asked for and stopping at its end, so it is bounded also for rules
whose later periods are all empty (where dateutil searches on to the year 9999).
DAILY and WEEKLY rules with at most a plain BYDAY, the common shapes, take a faster
arithmetic path. Tests compare both paths with dateutil's expansion.
"""

import calendar
import math
import re
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from common import deadlines
from common.timeutil import MAX_YEAR, MIN_YEAR

YEARLY, MONTHLY, WEEKLY, DAILY = range(4)
FREQUENCIES = {"DAILY": DAILY, "WEEKLY": WEEKLY, "MONTHLY": MONTHLY, "YEARLY": YEARLY}
WEEKDAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
MAX_COUNT = 10_000
MINUTES_PER_WEEK = 7 * 24 * 60
# A series must repeat within this many years of its first occurrence. Every rule that
# repeats at all does, well within it (the rarest, 29 February, within 8: 2096 to
# 2104); a rule that never does would be searched period by period to the last year
# ever expanded, for every listing and check that meets it.
REPEATS_WITHIN_YEARS = 8
# What one request may make the service search, over all its rules (see SearchBudget):
# about 0.1-0.2 s of CPU. A daily rule with a BY-filter and COUNT=10000 searches
# 10,000 periods or more, one that repeats within 8 years at most 2,923.
REQUEST_SEARCH_PERIODS = 50_000
# Periods searched between two looks at the request's deadline (a few ms at most).
DEADLINE_CHECK_EVERY = 1024
# Occurrences after this year are never asked for (windows end by MAX_YEAR + 5).
_LAST_EXPANDED_YEAR = MAX_YEAR + 100
_LAST_EXPANDED_ORDINAL = date(_LAST_EXPANDED_YEAR, 12, 31).toordinal()
# Zone rules after this year repeat (zoneinfo applies the zone's POSIX TZ string).
_LAST_DISTINCT_ZONE_YEAR = 2040
_BYDAY = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_UNTIL = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z)?)?$")
_INT = re.compile(r"^[+-]?\d{1,6}$")
_LIST_PARTS = {
    "BYMONTHDAY": (-31, 31, True),
    "BYMONTH": (1, 12, False),
    "BYSETPOS": (-366, 366, True),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
UTC_ZONES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Universal", "Zulu", "Etc/Zulu"})
_KNOWN_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYDAY", *_LIST_PARTS}


class RuleError(ValueError):
    """An RRULE body that is malformed or not allowed; the message says why."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A parsed RRULE. `until` is naive local wall-clock time in the event's zone."""

    freq: int
    interval: int = 1
    count: int | None = None
    until: datetime | None = None
    wkst: int = 0
    byday: tuple[tuple[int, int | None], ...] = ()
    bymonthday: tuple[int, ...] = ()
    bymonth: tuple[int, ...] = ()
    bysetpos: tuple[int, ...] = ()

    @property
    def is_simple(self) -> bool:
        """DAILY/WEEKLY with at most a plain weekday list: expanded arithmetically."""
        return (
            self.freq in (DAILY, WEEKLY)
            and all(n is None for _, n in self.byday)
            and not (self.bymonthday or self.bymonth or self.bysetpos)
        )


def parse_rule(text: str, tz: ZoneInfo) -> Rule:
    """Parse an RRULE body (an optional `RRULE:` prefix is allowed).

    A zoneless UNTIL is local time in `tz`, a UTC one (`Z`) is converted to it,
    and a date-only UNTIL includes that whole local day.
    """
    body = text.strip()
    if body[:6].upper() == "RRULE:":
        body = body[6:]
    if not body:
        raise RuleError("must not be empty")
    parts: dict[str, str] = {}
    for item in body.split(";"):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip().upper(), value.strip().upper()
        if not sep or not value:
            raise RuleError(f"'{item}' is not NAME=VALUE")
        if name not in _KNOWN_PARTS:
            raise RuleError(f"unsupported rule part {name}")
        if name in parts:
            raise RuleError(f"{name} appears twice")
        parts[name] = value

    if "FREQ" not in parts:
        raise RuleError("FREQ is required")
    freq = FREQUENCIES.get(parts["FREQ"])
    if freq is None:
        raise RuleError("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY")
    interval = _positive_int(parts, "INTERVAL", 1, 10_000) or 1
    count = _positive_int(parts, "COUNT", 1, MAX_COUNT)
    until = _parse_until(parts["UNTIL"], tz) if "UNTIL" in parts else None
    if count is not None and until is not None:
        raise RuleError("COUNT and UNTIL must not both be given")
    wkst = 0
    if "WKST" in parts:
        if parts["WKST"] not in WEEKDAYS:
            raise RuleError("WKST must be a weekday (MO..SU)")
        wkst = WEEKDAYS[parts["WKST"]]

    lists = {name: _int_list(parts, name, *_LIST_PARTS[name]) for name in _LIST_PARTS}
    byday = _parse_byday(parts.get("BYDAY"), freq)
    if lists["BYMONTHDAY"] and freq == WEEKLY:
        raise RuleError("BYMONTHDAY cannot be used with FREQ=WEEKLY")
    if lists["BYSETPOS"] and not (byday or lists["BYMONTHDAY"] or lists["BYMONTH"]):
        raise RuleError("BYSETPOS needs another BYxxx part")
    return Rule(
        freq=freq,
        interval=interval,
        count=count,
        until=until,
        wkst=wkst,
        byday=byday,
        bymonthday=lists["BYMONTHDAY"],
        bymonth=lists["BYMONTH"],
        bysetpos=lists["BYSETPOS"],
    )


def _positive_int(parts: dict[str, str], name: str, low: int, high: int) -> int | None:
    if name not in parts:
        return None
    value = parts[name]
    if not value.isdigit() or not low <= int(value) <= high:
        raise RuleError(f"{name} must be an integer from {low} to {high}")
    return int(value)


def _int_list(
    parts: dict[str, str], name: str, low: int, high: int, signed: bool
) -> tuple[int, ...]:
    if name not in parts:
        return ()
    values = []
    for item in parts[name].split(","):
        item = item.strip()
        if not _INT.match(item) or not low <= int(item) <= high or (signed and int(item) == 0):
            zero = ", not 0" if signed else ""
            raise RuleError(f"{name} values must be integers from {low} to {high}{zero}")
        values.append(int(item))
    return tuple(sorted(set(values)))


def _parse_byday(value: str | None, freq: int) -> tuple[tuple[int, int | None], ...]:
    if value is None:
        return ()
    days = []
    for item in value.split(","):
        match = _BYDAY.match(item.strip())
        if not match:
            raise RuleError(f"BYDAY value '{item}' is not like MO, 2TU or -1FR")
        n = int(match.group(1)) if match.group(1) else None
        if n is not None:
            if freq not in (MONTHLY, YEARLY):
                raise RuleError("numbered BYDAY values need FREQ=MONTHLY or YEARLY")
            limit = 5 if freq == MONTHLY else 53
            if n == 0 or abs(n) > limit:
                raise RuleError(f"BYDAY numbers must be from 1 to {limit} or -{limit} to -1")
        days.append((WEEKDAYS[match.group(2)], n))
    return tuple(sorted(set(days), key=lambda d: (d[0], d[1] or 0)))


def _parse_until(value: str, tz: ZoneInfo) -> datetime:
    match = _UNTIL.match(value)
    if not match:
        raise RuleError("UNTIL must look like 20261231, 20261231T235959 or 20261231T235959Z")
    year, month, day, hour, minute, second, utc = match.groups()
    try:
        if hour is None:
            until = datetime(int(year), int(month), int(day), 23, 59, 59)
        else:
            until = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        raise RuleError("UNTIL is not a valid date") from None
    if not MIN_YEAR <= until.year <= MAX_YEAR:
        raise RuleError(f"UNTIL must be in the years {MIN_YEAR} to {MAX_YEAR}")
    if utc:
        until = until.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)
    return until


def _local_seconds(local: datetime) -> int:
    """Whole seconds of a naive local time since 1970-01-01 00:00 (same wall clock)."""
    return (
        (local.toordinal() - _EPOCH_ORDINAL) * 86_400
        + local.hour * 3600
        + local.minute * 60
        + local.second
    )


@lru_cache(maxsize=262_144)
def _day_offsets(zone: str, ordinal: int) -> tuple[int, int]:
    """The zone's UTC offset (seconds) at the start and at the end of a local day."""
    tz = ZoneInfo(zone)
    day = date.fromordinal(ordinal)
    offsets = (
        datetime.combine(day, time(0), tzinfo=tz).utcoffset(),
        datetime.combine(day, time(23, 59, 59), tzinfo=tz).utcoffset(),
    )
    return tuple(int(o.total_seconds()) for o in offsets if o is not None)  # type: ignore[return-value]


def local_to_utc(local: datetime, tz: ZoneInfo) -> datetime | None:
    """The instant of a naive local time, or None if that local time does not exist."""
    if tz.key in UTC_ZONES:
        return local.replace(tzinfo=UTC)
    instant = local.replace(tzinfo=tz).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != local:
        return None
    return instant


def utc_to_local(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


class Occurrence(NamedTuple):
    start: datetime
    end: datetime


@dataclass(slots=True)
class Schedule:
    """When an event happens: one interval, or a series of equally long ones."""

    start: datetime
    end: datetime
    tz: ZoneInfo
    rule: Rule | None = None
    _local_start: datetime = field(init=False, repr=False)
    _finite: list[datetime] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # datetime.UTC rather than whatever zone the database driver attached: mixing
        # tzinfo objects makes every comparison and subtraction ask for offsets.
        self.start = self.start.astimezone(UTC)
        self.end = self.end.astimezone(UTC)
        self._local_start = utc_to_local(self.start, self.tz)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def is_series(self) -> bool:
        return self.rule is not None

    def span_end(self) -> datetime | None:
        """The end of the last occurrence, an upper bound of it, or None if endless."""
        rule = self.rule
        if rule is None:
            return self.end
        if rule.count is not None:
            return self._all_starts()[-1] + self.duration
        if rule.until is not None:
            until = rule.until.replace(tzinfo=self.tz).astimezone(UTC) + timedelta(days=2)
            return max(self.end, until + self.duration)
        return None

    def occurrences(
        self, window_start: datetime, window_end: datetime, limit: int | None = None
    ) -> list[Occurrence]:
        """Occurrences overlapping [window_start, window_end), by start; at most `limit`."""
        duration = self.duration
        if self.rule is None:
            if self.start < window_end and self.end > window_start:
                return [Occurrence(self.start, self.end)]
            return []
        if self.rule.is_simple and self.rule.count is None:
            return self._simple_occurrences(window_start, window_end, limit)
        found = []
        for start in self._starts_between(window_start - duration, window_end):
            if start + duration > window_start:
                found.append(Occurrence(start, start + duration))
                if limit is not None and len(found) >= limit:
                    break
        return found

    def _simple_occurrences(
        self, window_start: datetime, window_end: datetime, limit: int | None
    ) -> list[Occurrence]:
        """`occurrences` of a simple rule without COUNT: the same as the general path
        (tests compare them) in one loop on day numbers and seconds, as this is what
        expanding many series costs. Days on which the zone's offset changes take
        the careful path."""
        rule = self.rule
        assert rule is not None
        duration, first, tz = self.duration, self._local_start, self.tz
        low = window_start - duration
        if window_end <= self.start or (limit is not None and limit <= 0):
            return []
        found: list[Occurrence] = []
        if low < self.start:
            found.append(Occurrence(self.start, self.end))
            if limit == 1:
                return found
        clock = first.time()
        clock_seconds = clock.hour * 3600 + clock.minute * 60 + clock.second
        micro = timedelta(microseconds=clock.microsecond)
        first_seconds = _local_seconds(first)
        until_seconds = None if rule.until is None else _local_seconds(rule.until)
        offsets, weekdays, period_start, period_days = _simple_pattern(rule, first)
        # Two days either side cover any UTC offset.
        low_ordinal = (max(low, self.start) - _EPOCH).days + _EPOCH_ORDINAL - 2
        high_ordinal = (window_end - _EPOCH).days + _EPOCH_ORDINAL + 2
        zone = tz.key if tz.key not in UTC_ZONES else None
        period = max(0, (low_ordinal - period_start) // period_days)
        while True:
            base = period_start + period * period_days
            if base > high_ordinal:
                return found
            for offset in offsets:
                ordinal = base + offset
                if weekdays is not None and (ordinal - 1) % 7 not in weekdays:
                    continue
                seconds = (ordinal - _EPOCH_ORDINAL) * 86_400 + clock_seconds
                if seconds <= first_seconds:
                    continue
                if until_seconds is not None and (
                    seconds > until_seconds or (seconds == until_seconds and micro)
                ):
                    return found
                start: datetime | None
                if zone is None:
                    start = _EPOCH + timedelta(seconds=seconds) + micro
                else:
                    before, after = _day_offsets(zone, ordinal)
                    if before == after:
                        start = _EPOCH + timedelta(seconds=seconds - before) + micro
                    else:
                        local = datetime.combine(date.fromordinal(ordinal), clock)
                        start = local_to_utc(local, tz)
                if start is None or start <= low:
                    continue
                if start >= window_end:
                    return found
                found.append(Occurrence(start, start + duration))
                if limit is not None and len(found) >= limit:
                    return found
            period += 1

    def _starts_between(self, low: datetime, high: datetime) -> Iterator[datetime]:
        """UTC starts in (low, high), ascending."""
        if high <= self.start:
            return
        if self._finite is not None or (self.rule and self.rule.count is not None):
            starts = self._all_starts()
            for start in starts[bisect_left(starts, low) :]:
                if start >= high:
                    return
                if start > low:
                    yield start
            return
        margin = timedelta(days=2)
        local_low = utc_to_local(max(low, self.start - margin), self.tz) - margin
        local_high = utc_to_local(high, self.tz) + margin
        for local in self._local_starts(local_low, local_high):
            if local >= local_high:
                return
            start = self._to_utc(local)
            if start is None or start <= low:
                continue
            if start >= high:
                return
            yield start

    def _all_starts(self) -> list[datetime]:
        """Every UTC start of a COUNT-bounded series (at most MAX_COUNT + 1)."""
        if self._finite is None:
            assert self.rule is not None
            self._finite = _count_series_starts(self.start, self.tz.key, self.rule)
        return self._finite

    def _to_utc(self, local: datetime) -> datetime | None:
        if local == self._local_start:
            return self.start
        return local_to_utc(local, self.tz)

    def _local_starts(
        self, not_before: datetime | None, not_after: datetime | None = None
    ) -> Iterator[datetime]:
        """Local starts from DTSTART on, DTSTART included; from about `not_before`
        and up to about `not_after` if given (for a rule without COUNT)."""
        assert self.rule is not None
        first = self._local_start
        micro = first.microsecond
        rule_starts = (
            _simple_local_starts(self.rule, first.replace(microsecond=0), not_before)
            if self.rule.is_simple
            else _period_local_starts(
                self.rule, first.replace(microsecond=0), not_before, not_after
            )
        )
        if not_before is None or not_before <= first:
            yield first
        for local in rule_starts:
            if micro:
                local = local.replace(microsecond=micro)
            if local > first:
                yield local


class SearchBudget:
    """How many periods (days, weeks, months or years, by FREQ) the checks of one
    request may still search; RuleError once spent, DeadlineExceeded once the request's
    deadline passed. It bounds what one request can make the service compute, whatever
    rules it sends, and stops the search when nobody waits for it any more."""

    def __init__(self, periods: int = REQUEST_SEARCH_PERIODS) -> None:
        self._left = periods
        self._next_deadline_check = periods - DEADLINE_CHECK_EVERY

    def spend(self, periods: int = 1) -> None:
        self._left -= periods
        if self._left <= self._next_deadline_check:
            deadlines.check()
            self._next_deadline_check = self._left - DEADLINE_CHECK_EVERY
        if self._left < 0:
            raise RuleError(
                "takes too long to expand: the request's rules search more than "
                f"{REQUEST_SEARCH_PERIODS:,} periods in all; send fewer series, or "
                "rules that repeat more often"
            )


def check_series(schedule: Schedule, budget: SearchBudget) -> None:
    """RuleError unless the series repeats within REPEATS_WITHIN_YEARS of its start
    (unless COUNT=1, or UNTIL comes first) and a COUNT series ends within the
    supported years; searching at most what is left of `budget`."""
    rule = schedule.rule
    assert rule is not None
    if rule.count == 1:
        return
    first = schedule._local_start.replace(microsecond=0)
    horizon = first + timedelta(days=366 * REPEATS_WITHIN_YEARS)

    def starts(not_after: datetime | None) -> Iterator[datetime]:
        if rule.is_simple:
            return _simple_local_starts(rule, first, None, budget)
        return _period_local_starts(rule, first, None, not_after, budget)

    repeats = any(first < local <= horizon for local in starts(horizon))
    ends_first = rule.until is not None and rule.until <= horizon
    if not repeats and not ends_first:
        raise RuleError(f"yields no occurrence within {REPEATS_WITHIN_YEARS} years of the start")
    if rule.count is not None and deque(starts(None), maxlen=1)[-1].year > MAX_YEAR:
        raise RuleError(f"COUNT={rule.count} runs past the year {MAX_YEAR}")


@lru_cache(maxsize=1024)
def _count_series_starts(start: datetime, zone: str, rule: Rule) -> list[datetime]:
    """Cached: such a series is expanded whole, and is checked on every overlapping change."""
    schedule = Schedule(start, start, ZoneInfo(zone), rule)
    starts = (schedule._to_utc(local) for local in schedule._local_starts(None))
    return [s for s in starts if s is not None]


def _simple_pattern(rule: Rule, first: datetime) -> tuple[list[int], set[int] | None, int, int]:
    """Day offsets within a period, the weekdays a DAILY rule keeps (None: all), the
    ordinal of the first period's first day, and the period's length in days."""
    weekdays: set[int] | None = {d for d, _ in rule.byday} or None
    if rule.freq == WEEKLY:
        offsets = sorted((d - rule.wkst) % 7 for d in weekdays or {first.weekday()})
        period_start = first.toordinal() - (first.weekday() - rule.wkst) % 7
        return offsets, None, period_start, 7 * rule.interval
    return [0], weekdays, first.toordinal(), rule.interval


def _simple_local_starts(
    rule: Rule, first: datetime, not_before: datetime | None, budget: SearchBudget | None = None
) -> Iterator[datetime]:
    """The starts of a simple DAILY/WEEKLY rule, computed period by period (each spent
    from `budget` if given)."""
    clock = first.time()
    offsets, weekdays, period_start, period_days = _simple_pattern(rule, first)
    period = 0
    if not_before is not None and rule.count is None:
        period = max(0, (not_before.toordinal() - period_start) // period_days)
    until, count, produced = rule.until, rule.count, 0
    while True:
        if budget is not None:
            budget.spend()
        base = period_start + period * period_days
        for offset in offsets:
            ordinal = base + offset
            if ordinal > _LAST_EXPANDED_ORDINAL:
                return
            if weekdays is not None and (ordinal - 1) % 7 not in weekdays:
                continue
            local = datetime.combine(date.fromordinal(ordinal), clock)
            if local < first:
                continue
            if until is not None and local > until:
                return
            yield local
            produced += 1
            if count is not None and produced >= count:
                return
        period += 1


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A rule with the parts that default to DTSTART's filled in, ready to enumerate."""

    rule: Rule
    first: date
    months: frozenset[int]
    monthdays: frozenset[int]
    weekdays: frozenset[int]
    numbered: tuple[tuple[int, int], ...]

    @property
    def week_start(self) -> int:
        return self.first.toordinal() - (self.first.weekday() - self.rule.wkst) % 7

    def period_of(self, day: date) -> int:
        """The index of the period holding `day` (0 for days before DTSTART)."""
        rule, first = self.rule, self.first
        if rule.freq == DAILY:
            elapsed = day.toordinal() - first.toordinal()
        elif rule.freq == WEEKLY:
            elapsed = (day.toordinal() - self.week_start) // 7
        elif rule.freq == MONTHLY:
            elapsed = (day.year - first.year) * 12 + day.month - first.month
        else:
            elapsed = day.year - first.year
        return max(0, elapsed // rule.interval)

    def days_of(self, period: int) -> list[int] | None:
        """Ordinals of the days the rule selects in a period, ascending (BYSETPOS
        applied); None past the last year ever expanded."""
        rule, first = self.rule, self.first
        step = period * rule.interval
        if rule.freq == DAILY:
            start = first.toordinal() + step
            scopes = [(start, 1)]
        elif rule.freq == WEEKLY:
            # Like dateutil, the first week runs from DTSTART to the week's end.
            start = self.week_start + 7 * step
            begin = max(start, first.toordinal())
            scopes = [(begin, start + 7 - begin)]
        elif rule.freq == MONTHLY:
            year, month = divmod(first.year * 12 + first.month - 1 + step, 12)
            if year > _LAST_EXPANDED_YEAR:
                return None
            if self.months and month + 1 not in self.months:
                return []
            start = date(year, month + 1, 1).toordinal()
            scopes = [(start, _month_length(year, month + 1))]
        else:
            year = first.year + step
            if year > _LAST_EXPANDED_YEAR:
                return None
            if self.numbered and self.months:  # numbered weekdays count within each month
                scopes = [
                    (date(year, m, 1).toordinal(), _month_length(year, m))
                    for m in sorted(self.months)
                ]
            else:
                scopes = [(date(year, 1, 1).toordinal(), 365 + calendar.isleap(year))]
        if scopes[0][0] > _LAST_EXPANDED_ORDINAL:
            return None
        days = [day for begin, length in scopes for day in self._select(begin, length)]
        if rule.bysetpos:
            picked = (_nth(days, position) for position in rule.bysetpos)
            days = sorted({day for day in picked if day is not None})
        return days

    def _select(self, begin: int, length: int) -> list[int]:
        numbered = set()
        for weekday, n in self.numbered:
            first_match = begin + (weekday - (begin - 1) % 7) % 7
            numbered.add(_nth(range(first_match, begin + length, 7), n))
        selected = []
        for ordinal in range(begin, begin + length):
            day = date.fromordinal(ordinal)
            if self.months and day.month not in self.months:
                continue
            if self.monthdays:
                from_end = day.day - _month_length(day.year, day.month) - 1
                if day.day not in self.monthdays and from_end not in self.monthdays:
                    continue
            if (self.weekdays or self.numbered) and not (
                day.weekday() in self.weekdays or ordinal in numbered
            ):
                continue
            selected.append(ordinal)
        return selected


@lru_cache(maxsize=4096)
def _pattern(rule: Rule, first: date) -> _Pattern:
    months = frozenset(rule.bymonth)
    monthdays = frozenset(rule.bymonthday)
    weekdays = frozenset(day for day, n in rule.byday if n is None)
    numbered = tuple((day, n) for day, n in rule.byday if n is not None)
    if not rule.bymonthday and not rule.byday:
        if rule.freq == YEARLY:
            months = months or frozenset({first.month})
            monthdays = frozenset({first.day})
        elif rule.freq == MONTHLY:
            monthdays = frozenset({first.day})
        elif rule.freq == WEEKLY:
            weekdays = frozenset({first.weekday()})
    return _Pattern(rule, first, months, monthdays, weekdays, numbered)


def _nth(items: Sequence[int], position: int) -> int | None:
    """The item at a 1-based position, counted from the end if negative, or None."""
    if 0 < position <= len(items):
        return items[position - 1]
    if 0 < -position <= len(items):
        return items[position]
    return None


def _month_length(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _period_local_starts(
    rule: Rule,
    first: datetime,
    not_before: datetime | None,
    not_after: datetime | None,
    budget: SearchBudget | None = None,
) -> Iterator[datetime]:
    """The starts of any rule, period by period, from DTSTART (or from the period
    holding `not_before`, without COUNT) to the period holding `not_after`; each
    period searched is spent from `budget` if given."""
    pattern = _pattern(rule, first.date())
    clock = first.time()
    period = 0
    if not_before is not None and rule.count is None:
        period = pattern.period_of(not_before.date())
    last = pattern.period_of(not_after.date()) if not_after is not None else None
    until, count, produced = rule.until, rule.count, 0
    while last is None or period <= last:
        if budget is not None:
            budget.spend()
        days = pattern.days_of(period)
        if days is None:
            return
        for ordinal in days:
            local = datetime.combine(date.fromordinal(ordinal), clock)
            if local < first:
                continue
            if until is not None and local > until:
                return
            yield local
            produced += 1
            if count is not None and produced >= count:
                return
        period += 1


# Where in the week (UTC) an event can happen: used to skip, in SQL, events that
# cannot overlap without expanding them. A superset is always safe.


def week_footprint(schedule: Schedule, budget: SearchBudget | None = None) -> list[tuple[int, int]]:
    """Minute-of-week ranges [low, high) (UTC, Monday 00:00 = 0) covering every
    occurrence of the schedule; zone offsets not known yet cost `budget`."""
    duration_minutes = math.ceil(schedule.duration.total_seconds() / 60) + 1
    rule = schedule.rule
    if rule is None:
        return merge_ranges(_wrapped(_minute_of_week(schedule.start), duration_minutes))
    first = schedule._local_start
    if rule.byday:
        weekdays = {day for day, _ in rule.byday}
    elif rule.freq == WEEKLY:
        weekdays = {first.weekday()}
    else:
        weekdays = set(range(7))
    clock = first.hour * 60 + first.minute
    last = schedule.span_end()
    low_offset, high_offset = zone_offset_bounds(
        schedule.tz.key, first.year, last.year if last else None, budget
    )
    ranges = _wrapped(_minute_of_week(schedule.start), duration_minutes)
    for weekday in weekdays:
        local = weekday * 24 * 60 + clock
        ranges += _wrapped(local - high_offset, high_offset - low_offset + duration_minutes + 1)
    return merge_ranges(ranges)


def interval_footprint(start: datetime, end: datetime) -> list[tuple[int, int]]:
    """Minute-of-week ranges covering one interval (an occurrence moved off the rule)."""
    return _wrapped(_minute_of_week(start), math.ceil((end - start).total_seconds() / 60) + 1)


def _minute_of_week(instant: datetime) -> int:
    instant = instant.astimezone(UTC)
    return instant.weekday() * 24 * 60 + instant.hour * 60 + instant.minute


def _wrapped(start: int, length: int) -> list[tuple[int, int]]:
    if length >= MINUTES_PER_WEEK:
        return [(0, MINUTES_PER_WEEK)]
    start %= MINUTES_PER_WEEK
    end = start + length
    if end <= MINUTES_PER_WEEK:
        return [(start, end)]
    return [(start, MINUTES_PER_WEEK), (0, end - MINUTES_PER_WEEK)]


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def zone_offset_bounds(
    zone: str, first_year: int, last_year: int | None, budget: SearchBudget | None = None
) -> tuple[int, int]:
    """The smallest and largest UTC offset (whole minutes, rounded outwards) that
    `zone` uses from `first_year` to `last_year` (None: forever). Each (zone, year)
    computed the first time costs `budget` ZONE_YEAR_PERIODS."""
    last = _LAST_DISTINCT_ZONE_YEAR if last_year is None else last_year
    last = min(max(last, first_year), _LAST_DISTINCT_ZONE_YEAR)
    first = min(first_year, _LAST_DISTINCT_ZONE_YEAR)
    bounds = []
    for year in range(first, last + 1):
        if (known := _YEAR_OFFSET_BOUNDS.get((zone, year))) is None:
            if budget is not None:
                budget.spend(ZONE_YEAR_PERIODS)
            known = _YEAR_OFFSET_BOUNDS[zone, year] = _year_offset_bounds(zone, year)
        bounds.append(known)
    return min(b[0] for b in bounds), max(b[1] for b in bounds)


# Unbounded, as bounded as its domain: some 600 zones × the years 1900-2040. Evicting
# made a batch of series in many zones from 1900 compute 141 years per item again.
_YEAR_OFFSET_BOUNDS: dict[tuple[str, int], tuple[int, int]] = {}
# A year of a zone's offsets, computed day by day (~0.3 ms), costs about as much as
# searching this many periods of a rule.
ZONE_YEAR_PERIODS = 100


def _year_offset_bounds(zone: str, year: int) -> tuple[int, int]:
    tz = ZoneInfo(zone)
    day = datetime(year, 1, 1, 12, tzinfo=UTC)
    offsets = set()
    for _ in range(367):
        offset = tz.utcoffset(day)
        assert offset is not None
        offsets.add(offset.total_seconds() / 60)
        day += timedelta(days=1)
    return math.floor(min(offsets)), math.ceil(max(offsets))
