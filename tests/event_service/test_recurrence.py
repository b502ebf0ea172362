"""Unit tests of recurrence parsing and expansion (no database, no gRPC)."""

import random
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule as du

from event_service.domain.recurrence import (
    MINUTES_PER_WEEK,
    RuleError,
    Schedule,
    parse_rule,
    week_footprint,
)

NEW_YORK = ZoneInfo("America/New_York")


def series(start: datetime, minutes: int, rule: str, zone: str = "UTC") -> Schedule:
    tz = ZoneInfo(zone)
    return Schedule(start, start + timedelta(minutes=minutes), tz, parse_rule(rule, tz))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_weekly_meeting_stays_at_local_time_across_dst() -> None:
    # 2026-03-08 is when New York moves from EST (UTC-5) to EDT (UTC-4).
    start = datetime(2026, 3, 2, 9, tzinfo=NEW_YORK).astimezone(UTC)
    weekly = series(start, 60, "FREQ=WEEKLY;COUNT=4", "America/New_York")
    occurrences = weekly.occurrences(utc(2026, 1, 1), utc(2027, 1, 1))
    assert [o.start.astimezone(NEW_YORK).hour for o in occurrences] == [9, 9, 9, 9]
    assert [o.start.hour for o in occurrences] == [14, 13, 13, 13]
    assert all(o.end - o.start == timedelta(hours=1) for o in occurrences)


def test_nonexistent_local_times_are_skipped() -> None:
    start = datetime(2026, 3, 6, 2, 30, tzinfo=NEW_YORK).astimezone(UTC)
    daily = series(start, 30, "FREQ=DAILY;COUNT=5", "America/New_York")
    days = [o.start.astimezone(NEW_YORK).day for o in daily.occurrences(start, utc(2027, 1, 1))]
    assert days == [6, 7, 9, 10]  # 02:30 on the 8th does not exist


def test_ambiguous_local_time_takes_the_first_meaning() -> None:
    start = datetime(2026, 10, 31, 1, 30, tzinfo=NEW_YORK).astimezone(UTC)
    daily = series(start, 30, "FREQ=DAILY;COUNT=2", "America/New_York")
    second = daily.occurrences(start, utc(2027, 1, 1))[1]
    assert second.start == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, not EST


def test_until_without_zone_is_local_and_inclusive() -> None:
    start = datetime(2026, 1, 5, 9, tzinfo=NEW_YORK).astimezone(UTC)
    until_local = series(start, 60, "FREQ=DAILY;UNTIL=20260107T090000", "America/New_York")
    until_utc = series(start, 60, "FREQ=DAILY;UNTIL=20260107T140000Z", "America/New_York")
    until_date = series(start, 60, "FREQ=DAILY;UNTIL=20260107", "America/New_York")
    for schedule in (until_local, until_utc, until_date):
        assert len(schedule.occurrences(utc(2025, 1, 1), utc(2027, 1, 1))) == 3


def test_endless_series_expands_any_window() -> None:
    weekly = series(utc(2026, 1, 5, 9), 60, "FREQ=WEEKLY;BYDAY=MO,WE")
    window = weekly.occurrences(utc(2150, 6, 1), utc(2150, 6, 15))
    assert len(window) == 4
    assert {o.start.weekday() for o in window} == {0, 2}
    assert all(o.start.hour == 9 for o in window)
    assert weekly.span_end() is None


def test_dtstart_is_always_the_first_occurrence() -> None:
    tuesday = utc(2026, 1, 6, 9)
    weekly = series(tuesday, 60, "FREQ=WEEKLY;BYDAY=MO;COUNT=2")
    starts = [o.start for o in weekly.occurrences(utc(2026, 1, 1), utc(2027, 1, 1))]
    assert starts == [tuesday, utc(2026, 1, 12, 9), utc(2026, 1, 19, 9)]


def test_occurrences_touching_the_window_edge_are_excluded() -> None:
    daily = series(utc(2026, 1, 1, 9), 60, "FREQ=DAILY")
    assert daily.occurrences(utc(2026, 1, 2, 10), utc(2026, 1, 3, 9)) == []


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("", "empty"),
        ("FREQ=SOMETIMES", "FREQ"),
        ("FREQ=HOURLY", "FREQ"),
        ("INTERVAL=2", "FREQ is required"),
        ("FREQ=DAILY;COUNT=10001", "COUNT"),
        ("FREQ=DAILY;COUNT=0", "COUNT"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20270101T000000Z", "COUNT and UNTIL"),
        ("FREQ=DAILY;UNTIL=22010101T000000Z", "years"),
        ("FREQ=DAILY;UNTIL=tomorrow", "UNTIL"),
        ("FREQ=WEEKLY;BYDAY=XX", "BYDAY"),
        ("FREQ=WEEKLY;BYDAY=2MO", "numbered"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY"),
        ("FREQ=MONTHLY;BYMONTH=13", "BYMONTH"),
        ("FREQ=DAILY;BYSETPOS=1", "BYSETPOS"),
        ("FREQ=DAILY;FREQ=DAILY", "twice"),
        ("FREQ=DAILY;BYEASTER=0", "unsupported"),
        ("FREQ=DAILY;BYHOUR=9", "unsupported"),
        ("FREQ=YEARLY;BYWEEKNO=1", "unsupported"),
        ("FREQ=WEEKLY;BYMONTHDAY=1", "WEEKLY"),
        ("FREQ=MONTHLY;BYDAY=6MO", "BYDAY numbers"),
        ("FREQ=DAILY;INTERVAL=-1", "INTERVAL"),
        ("FREQ", "NAME=VALUE"),
    ],
)
def test_bad_rules_are_rejected(rule: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rule(rule, NEW_YORK)


def test_rrule_prefix_and_lowercase_are_accepted() -> None:
    assert parse_rule("RRULE:freq=weekly;byday=mo,we", NEW_YORK).byday == ((0, None), (2, None))


def _reference_starts(schedule: Schedule, body: str, until: datetime) -> list[datetime]:
    """dateutil's own parser and expansion from DTSTART, DTSTART added, DST gaps dropped."""
    tz = schedule.tz
    first = schedule.start.astimezone(tz).replace(tzinfo=None)
    rule = du.rrulestr(body, dtstart=first)
    starts = {schedule.start}
    for local in rule:
        if local > until:
            break
        instant = local.replace(tzinfo=tz).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == local:
            starts.add(instant)
    return sorted(starts)


RULE_SHAPES = [
    "FREQ=DAILY",
    "FREQ=DAILY;INTERVAL=3",
    "FREQ=DAILY;BYDAY=MO,FR;INTERVAL=2",
    "FREQ=DAILY;COUNT=40",
    "FREQ=DAILY;INTERVAL=5;BYDAY=TU,SA;COUNT=25",
    "FREQ=DAILY;BYMONTH=2,7;BYMONTHDAY=1,-1",
    "FREQ=DAILY;BYMONTHDAY=13;BYDAY=FR",
    "FREQ=WEEKLY",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR",
    "FREQ=WEEKLY;INTERVAL=3;BYDAY=SU,TU;WKST=SU",
    "FREQ=WEEKLY;BYDAY=TH;COUNT=30",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA,MO;WKST=WE;COUNT=17",
    "FREQ=WEEKLY;BYDAY=MO,TU,WE;BYSETPOS=-1",
    "FREQ=WEEKLY;BYMONTH=1,7;BYDAY=WE",
    "FREQ=MONTHLY",
    "FREQ=MONTHLY;BYDAY=-1FR",
    "FREQ=MONTHLY;INTERVAL=2;BYMONTHDAY=1,15,-1",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1,3,-2;COUNT=20",
    "FREQ=MONTHLY;BYDAY=2TU;COUNT=12",
    "FREQ=MONTHLY;BYDAY=1MO,-2WE",
    "FREQ=MONTHLY;BYMONTHDAY=13;BYDAY=FR",
    "FREQ=MONTHLY;INTERVAL=5;BYMONTH=3,8,11;BYMONTHDAY=-3",
    "FREQ=MONTHLY;BYMONTHDAY=31",
    "FREQ=YEARLY",
    "FREQ=YEARLY;BYMONTH=3,9;BYDAY=1SU",
    "FREQ=YEARLY;BYDAY=20MO,-1SU",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;COUNT=3",
    "FREQ=YEARLY;INTERVAL=2;BYMONTH=6;BYDAY=TU,TH;BYSETPOS=2,-1",
    "FREQ=YEARLY;BYMONTHDAY=-1;BYMONTH=1,2,12",
    "FREQ=YEARLY;BYMONTH=11",
]
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"]


@pytest.mark.parametrize("body", RULE_SHAPES)
def test_expansion_matches_dateutil_in_any_window(body: str) -> None:
    rng = random.Random(body)
    for _ in range(6):
        zone = rng.choice(ZONES)
        start = utc(2024, 1, 1) + timedelta(minutes=rng.randrange(0, 2 * 365 * 24 * 60, 15))
        schedule = series(start, rng.choice([30, 90, 24 * 60 + 5]), body, zone)
        horizon = start + timedelta(days=4 * 365)
        expected = _reference_starts(
            schedule, body, horizon.astimezone(schedule.tz).replace(tzinfo=None)
        )
        for _ in range(4):
            low = start + timedelta(days=rng.uniform(-30, 2.5 * 365))
            high = low + timedelta(days=rng.choice([1, 7, 45, 200]))
            got = [o.start for o in schedule.occurrences(low, high)]
            duration = schedule.duration
            want = [s for s in expected if s < high and s + duration > low]
            assert got == want, (body, zone, start, low, high)


@pytest.mark.parametrize("body", RULE_SHAPES)
def test_week_footprint_covers_every_occurrence(body: str) -> None:
    rng = random.Random("footprint" + body)
    for _ in range(4):
        zone = rng.choice(ZONES)
        start = utc(2025, 1, 1) + timedelta(minutes=rng.randrange(0, 365 * 24 * 60, 5))
        schedule = series(start, rng.choice([20, 61, 600]), body, zone)
        footprint = week_footprint(schedule)
        for occurrence in schedule.occurrences(start, start + timedelta(days=800)):
            minute = (
                occurrence.start.weekday() * 1440
                + occurrence.start.hour * 60
                + occurrence.start.minute
            )
            length = int((occurrence.end - occurrence.start).total_seconds() // 60)
            for offset in (0, length - 1):
                point = (minute + offset) % MINUTES_PER_WEEK
                assert any(lo <= point < hi for lo, hi in footprint), (body, zone, occurrence)


def test_one_off_footprint_wraps_around_the_week() -> None:
    sunday_night = utc(2026, 1, 4, 23)
    one_off = Schedule(sunday_night, sunday_night + timedelta(hours=2), ZoneInfo("UTC"))
    assert week_footprint(one_off) == [(0, 61), (MINUTES_PER_WEEK - 60, MINUTES_PER_WEEK)]


def test_limit_caps_the_occurrences_returned() -> None:
    for rule in ("FREQ=DAILY", "FREQ=DAILY;COUNT=9", "FREQ=MONTHLY"):
        schedule = series(utc(2026, 1, 1, 9), 60, rule)
        for limit in (1, 3):
            found = schedule.occurrences(utc(2025, 1, 1), utc(2027, 1, 1), limit=limit)
            assert len(found) == limit
            assert found[0].start == utc(2026, 1, 1, 9)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31",
        "FREQ=DAILY;INTERVAL=7;BYDAY=TU",  # DTSTART is a Monday: never a Tuesday
        "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6;COUNT=5",
        "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29;UNTIL=21001231",
    ],
)
def test_rules_that_never_recur_end_quickly(rule: str) -> None:
    """dateutil would search such rules to the year 9999; only DTSTART occurs."""
    start = utc(2026, 1, 5, 9)  # a Monday in a year after a leap year
    schedule = series(start, 60, rule)
    started = time.perf_counter()
    assert [o.start for o in schedule.occurrences(utc(2020, 1, 1), utc(2200, 1, 1))] == [start]
    assert schedule.occurrences(utc(2150, 1, 1), utc(2151, 1, 1)) == []
    week_footprint(schedule)
    assert time.perf_counter() - started < 2


def test_numbered_and_plain_weekdays_add_up() -> None:
    """RFC 5545: BYDAY=1MO,FR is the first Monday and every Friday (dateutil would
    intersect them)."""
    monthly = series(utc(2026, 3, 2, 9), 60, "FREQ=MONTHLY;BYDAY=1MO,FR")
    starts = [o.start.day for o in monthly.occurrences(utc(2026, 3, 1), utc(2026, 4, 1))]
    assert starts == [2, 6, 13, 20, 27]
