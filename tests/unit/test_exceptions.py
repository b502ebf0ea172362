"""Exceptions of recurring series: overrides, cancellations, carrying them over a
schedule change, splitting a series, and conflicts at effective times."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from event_service.domain.conflicts import (
    CheckedSchedule,
    Excepted,
    clashes_with_earlier_items,
    find_clashes,
)
from event_service.domain.exceptions import (
    ExceptionIndex,
    Instance,
    Override,
    SeriesValues,
    carried_overrides,
    effective_times,
    instances,
    is_generated,
    merged_override,
    overrides_from_json,
    overrides_to_json,
    parse_recurrence_id,
    recurrence_id_text,
    split_rules,
)
from event_service.domain.recurrence import Schedule, parse_rule

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)  # type: ignore[misc]


def series(start: datetime, minutes: int, rule: str | None, zone: str = "UTC") -> Schedule:
    tz = ZoneInfo(zone)
    return Schedule(
        start, start + timedelta(minutes=minutes), tz, parse_rule(rule, tz) if rule else None
    )


def starts(found: list[Instance]) -> list[datetime]:
    return [instance.start for instance in found]


def generated(schedule: Schedule, low: datetime, high: datetime) -> list[datetime]:
    return [occurrence.start for occurrence in schedule.occurrences(low, high)]


# Text forms


def test_override_json_round_trip() -> None:
    moved = Override(
        title="Moved",
        description="",
        location="Room 2",
        start_time=utc(2026, 3, 2, 15),
        end_time=utc(2026, 3, 2, 16, 30),
    )
    assert moved.to_json() == {
        "title": "Moved",
        "description": "",
        "location": "Room 2",
        "start_time": "2026-03-02T15:00:00Z",
        "end_time": "2026-03-02T16:30:00Z",
    }
    assert Override.from_json(moved.to_json()) == moved
    assert Override(title="Only").to_json() == {"title": "Only"}
    assert Override.from_json({"title": "Only"}) == Override(title="Only")
    assert Override(cancelled=True).to_json() == {"status": "cancelled"}
    assert Override.from_json({"status": "cancelled"}) == Override(cancelled=True)
    offset = Override.from_json({"start_time": "2026-03-02T16:00:00+01:00"})
    assert offset.start_time == utc(2026, 3, 2, 15) and offset.start_time.tzinfo is UTC
    assert moved.moves and Override(end_time=utc(2026, 3, 2)).moves
    assert not Override(title="t").moves and not Override(cancelled=True).moves
    with pytest.raises(ValueError):
        Override.from_json({"start_time": "2026-03-02T16:00:00"})


def test_overrides_json_is_keyed_by_recurrence_id_text_in_order() -> None:
    overrides = {
        utc(2026, 3, 9, 14): Override(cancelled=True),
        utc(2026, 3, 2, 14): Override(title="First"),
    }
    data = overrides_to_json(overrides)
    assert list(data) == ["2026-03-02T14:00:00Z", "2026-03-09T14:00:00Z"]
    assert data["2026-03-09T14:00:00Z"] == {"status": "cancelled"}
    assert overrides_from_json(data) == overrides
    with pytest.raises(ValueError):
        overrides_from_json({"yesterday": {"title": "x"}})


def test_recurrence_id_text_is_utc_with_z() -> None:
    assert recurrence_id_text(utc(2026, 3, 2, 14)) == "2026-03-02T14:00:00Z"
    assert recurrence_id_text(datetime(2026, 3, 2, 9, tzinfo=NEW_YORK)) == "2026-03-02T14:00:00Z"
    # A start with microseconds keeps them, so that the text names it exactly.
    assert recurrence_id_text(utc(2026, 3, 2, 14, 0, 0, 5)) == "2026-03-02T14:00:00.000005Z"


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-02T14:00:00Z",
        "2026-03-02T14:00:00z",
        "2026-03-02T15:00:00+01:00",
        "2026-03-02T09:00:00-05:00",
        "2026-03-03T00:00:00+10:00",
        "2026-03-02t14:00:00.000000Z",
    ],
)
def test_parse_recurrence_id_accepts_z_and_offsets(text: str) -> None:
    parsed = parse_recurrence_id(text)
    assert parsed == utc(2026, 3, 2, 14) and parsed is not None and parsed.tzinfo is UTC
    assert recurrence_id_text(parsed) == "2026-03-02T14:00:00Z"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "2026-03-02T14:00:00",  # naive
        "2026-03-02 14:00:00Z",
        "2026-03-02T14:00Z",
        "20260302T140000Z",
        "2026-13-02T14:00:00Z",
        "2026-02-30T14:00:00Z",
        "2026-03-02T24:00:00Z",
        "2026-03-02T14:00:00+24:00",
        "2026-03-02T14:00:00+01:60",
        "1850-03-02T14:00:00Z",
        "9999-12-31T23:00:00-05:00",
        "0001-01-01T00:00:00+01:00",
        "2026-03-02T14:00:00Z ",
        "2026-03-02T14:00:00Z\n",
        "\u0662026-03-02T14:00:00Z",  # a non-ASCII digit
    ],
)
def test_parse_recurrence_id_refuses_malformed_text(text: str) -> None:
    assert parse_recurrence_id(text) is None


# Instances

WEEKLY = series(utc(2026, 3, 2, 9), 60, "FREQ=WEEKLY;BYDAY=MO")  # Mondays 09:00 UTC
MARCH = (utc(2026, 3, 1), utc(2026, 4, 1))


def test_without_exceptions_instances_are_the_rules_occurrences() -> None:
    found = instances(WEEKLY, {}, *MARCH)
    assert starts(found) == generated(WEEKLY, *MARCH)
    assert all(i.recurrence_id == i.start and i.override is None for i in found)
    assert not any(i.cancelled for i in found)


def test_a_cancelled_occurrence_is_left_out_unless_asked_for() -> None:
    cancelled = Override(cancelled=True)
    overrides = {utc(2026, 3, 9, 9): cancelled}
    assert starts(instances(WEEKLY, overrides, *MARCH)) == [
        utc(2026, 3, 2, 9),
        utc(2026, 3, 16, 9),
        utc(2026, 3, 23, 9),
        utc(2026, 3, 30, 9),
    ]
    shown = instances(WEEKLY, overrides, *MARCH, show_cancelled=True)
    assert shown[1] == Instance(
        utc(2026, 3, 9, 9), utc(2026, 3, 9, 9), utc(2026, 3, 9, 10), cancelled
    )
    assert [i.cancelled for i in shown] == [False, True, False, False, False]


def test_a_moved_occurrence_is_listed_where_it_now_is() -> None:
    into_march = Override(start_time=utc(2026, 3, 25, 12), end_time=utc(2026, 3, 25, 13))
    out_of_march = Override(start_time=utc(2026, 4, 2, 9), end_time=utc(2026, 4, 2, 10))
    overrides = {utc(2026, 4, 6, 9): into_march, utc(2026, 3, 16, 9): out_of_march}
    found = instances(WEEKLY, overrides, *MARCH)
    assert [(i.recurrence_id, i.start, i.end) for i in found] == [
        (utc(2026, 3, 2, 9), utc(2026, 3, 2, 9), utc(2026, 3, 2, 10)),
        (utc(2026, 3, 9, 9), utc(2026, 3, 9, 9), utc(2026, 3, 9, 10)),
        (utc(2026, 3, 23, 9), utc(2026, 3, 23, 9), utc(2026, 3, 23, 10)),
        (utc(2026, 4, 6, 9), utc(2026, 3, 25, 12), utc(2026, 3, 25, 13)),
        (utc(2026, 3, 30, 9), utc(2026, 3, 30, 9), utc(2026, 3, 30, 10)),
    ]
    april = instances(WEEKLY, overrides, utc(2026, 4, 1), utc(2026, 4, 8))
    assert [(i.recurrence_id, i.start, i.end) for i in april] == [
        (utc(2026, 3, 16, 9), utc(2026, 4, 2, 9), utc(2026, 4, 2, 10)),
    ]


def test_a_moved_occurrence_overlapping_the_window_edge_is_listed() -> None:
    longer = Override(start_time=utc(2026, 2, 28, 22), end_time=utc(2026, 3, 1, 1))
    found = instances(WEEKLY, {utc(2026, 3, 2, 9): longer}, *MARCH)
    assert found[0] == Instance(
        utc(2026, 3, 2, 9), utc(2026, 2, 28, 22), utc(2026, 3, 1, 1), longer
    )
    assert (
        instances(WEEKLY, {utc(2026, 3, 2, 9): longer}, utc(2026, 3, 1, 1), utc(2026, 3, 3)) == []
    )


def test_a_text_override_keeps_the_rules_times() -> None:
    renamed = Override(title="Retro", location="Room 9")
    found = instances(WEEKLY, {utc(2026, 3, 16, 9): renamed}, *MARCH)
    assert starts(found) == generated(WEEKLY, *MARCH)
    assert found[2] == Instance(
        utc(2026, 3, 16, 9), utc(2026, 3, 16, 9), utc(2026, 3, 16, 10), renamed
    )
    assert [i.override is None for i in found] == [True, True, False, True, True]


def test_ties_on_start_are_ordered_by_recurrence_id() -> None:
    onto_the_next = Override(start_time=utc(2026, 3, 16, 9), end_time=utc(2026, 3, 16, 9, 30))
    onto_the_previous = Override(start_time=utc(2026, 3, 16, 9), end_time=utc(2026, 3, 16, 11))
    overrides = {utc(2026, 3, 9, 9): onto_the_next, utc(2026, 3, 23, 9): onto_the_previous}
    found = instances(WEEKLY, overrides, *MARCH)
    assert [(i.start, i.recurrence_id) for i in found] == [
        (utc(2026, 3, 2, 9), utc(2026, 3, 2, 9)),
        (utc(2026, 3, 16, 9), utc(2026, 3, 9, 9)),
        (utc(2026, 3, 16, 9), utc(2026, 3, 16, 9)),
        (utc(2026, 3, 16, 9), utc(2026, 3, 23, 9)),
        (utc(2026, 3, 30, 9), utc(2026, 3, 30, 9)),
    ]


def test_limit_counts_what_is_listed() -> None:
    overrides = {
        utc(2026, 3, 2, 9): Override(cancelled=True),
        utc(2026, 3, 9, 9): Override(start_time=utc(2026, 5, 1, 9)),
        utc(2026, 4, 27, 9): Override(start_time=utc(2026, 3, 3, 9), end_time=utc(2026, 3, 3, 10)),
    }
    everything = instances(WEEKLY, overrides, *MARCH)
    for limit in range(len(everything) + 2):
        assert instances(WEEKLY, overrides, *MARCH, limit=limit) == everything[:limit]
    assert starts(everything[:2]) == [utc(2026, 3, 3, 9), utc(2026, 3, 16, 9)]


def test_an_index_built_once_answers_like_the_mapping() -> None:
    overrides = {
        utc(2026, 3, 2, 9): Override(cancelled=True),
        utc(2026, 3, 9, 9): Override(title="x"),
        utc(2026, 3, 16, 9): Override(
            start_time=utc(2026, 2, 20, 9), end_time=utc(2026, 2, 20, 10)
        ),
        utc(2026, 5, 4, 9): Override(start_time=utc(2026, 3, 31, 23), end_time=utc(2026, 4, 1, 2)),
    }
    index = ExceptionIndex(overrides, WEEKLY.duration)
    for window_start in (utc(2026, 2, 1), utc(2026, 3, 1), utc(2026, 3, 10), utc(2026, 4, 1)):
        window = (window_start, window_start + timedelta(days=30))
        for show_cancelled in (False, True):
            expected = instances(WEEKLY, overrides, *window, show_cancelled=show_cancelled)
            assert instances(WEEKLY, index, *window, show_cancelled=show_cancelled) == expected
    # An index built for another duration is not trusted.
    shorter = ExceptionIndex(overrides, timedelta(minutes=5))
    assert instances(WEEKLY, shorter, *MARCH) == instances(WEEKLY, overrides, *MARCH)


def test_a_one_off_event_has_one_instance_named_by_its_start() -> None:
    one_off = series(utc(2026, 3, 5, 9), 30, None)
    assert instances(one_off, {}, *MARCH) == [
        Instance(utc(2026, 3, 5, 9), utc(2026, 3, 5, 9), utc(2026, 3, 5, 9, 30), None)
    ]
    assert is_generated(one_off, utc(2026, 3, 5, 9))
    assert not is_generated(one_off, utc(2026, 3, 5, 10))


def test_is_generated_only_for_the_rules_starts() -> None:
    assert is_generated(WEEKLY, utc(2026, 3, 2, 9))
    assert is_generated(WEEKLY, utc(2027, 3, 1, 9))
    assert not is_generated(WEEKLY, utc(2026, 3, 2, 9, 30))
    assert not is_generated(WEEKLY, utc(2026, 3, 3, 9))
    assert not is_generated(WEEKLY, utc(2026, 2, 23, 9))


# Daylight saving time


def test_new_york_weekly_across_both_transitions() -> None:
    # Clocks go forward on 2026-03-08 and back on 2026-11-01: 09:00 local stays.
    weekly = series(local(NEW_YORK, 2026, 3, 2, 9), 60, "FREQ=WEEKLY", "America/New_York")
    spring = generated(weekly, utc(2026, 3, 1), utc(2026, 3, 20))
    assert spring == [utc(2026, 3, 2, 14), utc(2026, 3, 9, 13), utc(2026, 3, 16, 13)]
    moved = Override(
        start_time=local(NEW_YORK, 2026, 3, 9, 11), end_time=local(NEW_YORK, 2026, 3, 9, 12)
    )
    overrides = {utc(2026, 3, 2, 14): Override(cancelled=True), utc(2026, 3, 9, 13): moved}
    found = instances(weekly, overrides, utc(2026, 3, 1), utc(2026, 3, 20))
    assert starts(found) == [utc(2026, 3, 9, 15), utc(2026, 3, 16, 13)]

    autumn = generated(weekly, utc(2026, 10, 20), utc(2026, 11, 10))
    assert autumn == [utc(2026, 10, 26, 13), utc(2026, 11, 2, 14), utc(2026, 11, 9, 14)]
    overrides = {utc(2026, 11, 2, 14): Override(title="After the change")}
    found = instances(weekly, overrides, utc(2026, 10, 20), utc(2026, 11, 10))
    assert [i.override for i in found] == [None, Override(title="After the change"), None]
    # Yesterday's recurrence id (the old offset) names no occurrence.
    assert not is_generated(weekly, utc(2026, 11, 2, 13))
    assert starts(instances(weekly, {utc(2026, 11, 2, 13): Override(cancelled=True)},
                            utc(2026, 10, 20), utc(2026, 11, 10))) == autumn  # fmt: skip


def test_berlin_daily_keeps_exceptions_on_their_local_days() -> None:
    # Berlin moves forward on 2026-03-29 and back on 2026-10-25.
    daily = series(local(BERLIN, 2026, 3, 27, 8), 30, "FREQ=DAILY", "Europe/Berlin")
    rids = generated(daily, utc(2026, 3, 27), utc(2026, 3, 31))
    assert rids == [
        utc(2026, 3, 27, 7),
        utc(2026, 3, 28, 7),
        utc(2026, 3, 29, 6),
        utc(2026, 3, 30, 6),
    ]
    earlier = Override(start_time=rids[2] - HOUR)
    overrides = {rids[1]: Override(cancelled=True), rids[2]: earlier}
    found = instances(daily, overrides, utc(2026, 3, 27), utc(2026, 3, 31))
    assert [(i.start, i.end) for i in found] == [
        (rids[0], rids[0] + timedelta(minutes=30)),
        # Only the start moved: it ends when the rule's occurrence does.
        (rids[2] - HOUR, rids[2] + timedelta(minutes=30)),
        (rids[3], rids[3] + timedelta(minutes=30)),
    ]
    october = generated(daily, utc(2026, 10, 24), utc(2026, 10, 27))
    assert october == [utc(2026, 10, 24, 6), utc(2026, 10, 25, 7), utc(2026, 10, 26, 7)]


# Editing one occurrence

SERIES_VALUES = SeriesValues(title="Standup", description="Daily", location="Room 1")


def test_merged_override_keeps_only_what_differs() -> None:
    rid = utc(2026, 3, 2, 9)
    changes = {
        "title": "Standup",
        "location": "Room 2",
        "start_time": rid,
        "end_time": datetime(2026, 3, 2, 11, 30, tzinfo=BERLIN),
    }
    merged = merged_override(None, changes, SERIES_VALUES, rid, HOUR)
    assert merged == Override(location="Room 2", end_time=utc(2026, 3, 2, 10, 30))
    assert merged is not None and merged.end_time is not None and merged.end_time.tzinfo is UTC
    # Merging into it keeps its fields; setting the series' value drops one.
    again = merged_override(
        merged, {"title": "Sync", "location": "Room 1"}, SERIES_VALUES, rid, HOUR
    )
    assert again == Override(title="Sync", end_time=utc(2026, 3, 2, 10, 30))
    assert merged_override(again, {"title": None}, SERIES_VALUES, rid, HOUR) == Override(
        end_time=utc(2026, 3, 2, 10, 30)
    )
    back = {"title": "Standup", "end_time": rid + HOUR}
    assert merged_override(again, back, SERIES_VALUES, rid, HOUR) is None


def test_merged_override_reinstates_a_cancelled_occurrence() -> None:
    rid = utc(2026, 3, 2, 9)
    cancelled = Override(cancelled=True)
    assert merged_override(cancelled, {"title": "Back"}, SERIES_VALUES, rid, HOUR) == Override(
        title="Back"
    )
    assert merged_override(cancelled, {"title": "Standup"}, SERIES_VALUES, rid, HOUR) is None
    with pytest.raises(ValueError):
        merged_override(None, {"timezone": "UTC"}, SERIES_VALUES, rid, HOUR)
    with pytest.raises(ValueError):
        merged_override(None, {"start_time": datetime(2026, 3, 2, 9)}, SERIES_VALUES, rid, HOUR)


def test_effective_times() -> None:
    rid = utc(2026, 3, 2, 9)
    assert effective_times(None, rid, HOUR) == (rid, rid + HOUR)
    assert effective_times(Override(title="t"), rid, HOUR) == (rid, rid + HOUR)
    assert effective_times(Override(start_time=rid + HOUR), rid, HOUR) == (rid + HOUR, rid + HOUR)
    later = Override(start_time=rid + HOUR, end_time=rid + 3 * HOUR)
    assert effective_times(later, rid, HOUR) == (rid + HOUR, rid + 3 * HOUR)


# Changing the whole series


def test_exceptions_follow_a_start_moved_by_an_hour() -> None:
    old = series(local(BERLIN, 2026, 3, 2, 9), 60, "FREQ=WEEKLY;BYDAY=MO", "Europe/Berlin")
    new = series(local(BERLIN, 2026, 3, 2, 10), 60, "FREQ=WEEKLY;BYDAY=MO", "Europe/Berlin")
    own_times = Override(start_time=utc(2026, 4, 6, 14), end_time=utc(2026, 4, 6, 15))
    overrides = {
        local(BERLIN, 2026, 3, 23, 9): Override(cancelled=True),  # before the DST change
        local(BERLIN, 2026, 4, 6, 9): own_times,  # after it
    }
    moved, dropped = carried_overrides(old, new, overrides)
    assert moved == {
        local(BERLIN, 2026, 3, 23, 10): Override(cancelled=True),
        local(BERLIN, 2026, 4, 6, 10): own_times,
    }
    assert dropped == []
    assert list(moved) == [utc(2026, 3, 23, 9), utc(2026, 4, 6, 8)]


def test_exceptions_follow_a_time_zone_change_by_local_date() -> None:
    # 20:00 in New York is the next day in UTC; the exception stays on its New York
    # date, now at 20:00 in Kolkata.
    old = series(local(NEW_YORK, 2026, 3, 2, 20), 60, "FREQ=DAILY", "America/New_York")
    new = series(local(ZoneInfo("Asia/Kolkata"), 2026, 3, 2, 20), 60, "FREQ=DAILY", "Asia/Kolkata")
    rid = local(NEW_YORK, 2026, 3, 10, 20)
    assert rid == utc(2026, 3, 11, 0)
    moved, dropped = carried_overrides(old, new, {rid: Override(title="x")})
    assert moved == {utc(2026, 3, 10, 14, 30): Override(title="x")} and dropped == []


def test_a_rule_change_drops_exceptions_left_without_an_occurrence() -> None:
    old = series(utc(2026, 3, 2, 9), 60, "FREQ=WEEKLY;BYDAY=MO,WE")
    new = series(utc(2026, 3, 2, 9), 60, "FREQ=WEEKLY;BYDAY=MO")
    overrides = {
        utc(2026, 3, 4, 9): Override(title="Wed"),
        utc(2026, 3, 9, 9): Override(title="Mon"),
    }
    moved, dropped = carried_overrides(old, new, overrides)
    assert moved == {utc(2026, 3, 9, 9): Override(title="Mon")}
    assert dropped == [utc(2026, 3, 4, 9)]
    # A new start after an exception leaves it without an occurrence too.
    later = series(utc(2026, 3, 5, 9), 60, "FREQ=WEEKLY;BYDAY=MO,WE")
    assert carried_overrides(old, later, overrides) == (
        {utc(2026, 3, 9, 9): Override(title="Mon")},
        [utc(2026, 3, 4, 9)],
    )


def test_no_longer_recurring_drops_every_exception() -> None:
    overrides = {
        utc(2026, 3, 9, 9): Override(title="x"),
        utc(2026, 3, 2, 9): Override(cancelled=True),
    }
    one_off = series(utc(2026, 3, 2, 9), 60, None)
    assert carried_overrides(WEEKLY, one_off, overrides) == (
        {},
        [utc(2026, 3, 2, 9), utc(2026, 3, 9, 9)],
    )


def test_an_unchanged_schedule_keeps_every_exception() -> None:
    overrides = {
        utc(2026, 3, 9, 9): Override(title="x"),
        utc(2026, 3, 2, 9): Override(cancelled=True),
    }
    assert carried_overrides(WEEKLY, WEEKLY, overrides) == (overrides, [])


# Splitting a series


def split_parts(
    schedule: Schedule, rule: str, split_at: datetime
) -> tuple[str, str, list[datetime], list[datetime]]:
    """The two rules, and the starts of the old and the new series."""
    old_rule, new_rule = split_rules(schedule, rule, split_at)
    zone = schedule.tz.key
    old = series(schedule.start, int(schedule.duration.total_seconds() // 60), old_rule, zone)
    new = series(split_at, int(schedule.duration.total_seconds() // 60), new_rule, zone)
    far = utc(2100, 1, 1)
    return old_rule, new_rule, generated(old, schedule.start, far), generated(new, split_at, far)


def test_split_a_count_series_in_the_middle() -> None:
    rule = "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10;WKST=MO"
    schedule = series(utc(2026, 3, 2, 9), 60, rule)
    all_starts = generated(schedule, schedule.start, utc(2100, 1, 1))
    old_rule, new_rule, old, new = split_parts(schedule, rule, all_starts[4])
    assert (old_rule, new_rule) == (
        "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4;WKST=MO",
        "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=6;WKST=MO",
    )
    assert old == all_starts[:4] and new == all_starts[4:]


def test_split_on_the_last_occurrence() -> None:
    rule = "RRULE:FREQ=DAILY;COUNT=5"
    schedule = series(local(NEW_YORK, 2026, 3, 6, 9), 30, rule, "America/New_York")
    all_starts = generated(schedule, schedule.start, utc(2100, 1, 1))
    old_rule, new_rule, old, new = split_parts(schedule, rule, all_starts[-1])
    assert (old_rule, new_rule) == ("RRULE:FREQ=DAILY;COUNT=4", "RRULE:FREQ=DAILY;COUNT=1")
    assert old == all_starts[:-1] and new == all_starts[-1:]


def test_split_without_count_ends_the_old_series_by_until() -> None:
    rule = "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU"
    schedule = series(local(BERLIN, 2026, 3, 3, 9), 60, rule, "Europe/Berlin")
    split_at = local(BERLIN, 2026, 4, 14, 9)
    old_rule, new_rule, old, new = split_parts(schedule, rule, split_at)
    assert old_rule == "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;UNTIL=20260414T065959Z"
    assert new_rule == rule
    assert old == generated(schedule, schedule.start, split_at)
    assert new[:3] == generated(schedule, split_at, split_at + timedelta(days=40))

    bounded = "FREQ=DAILY;UNTIL=20260320T235959Z;INTERVAL=1"
    schedule = series(utc(2026, 3, 1, 9), 60, bounded)
    old_rule, new_rule, old, new = split_parts(schedule, bounded, utc(2026, 3, 10, 9))
    assert old_rule == "FREQ=DAILY;UNTIL=20260310T085959Z;INTERVAL=1"
    assert new_rule == bounded
    assert old + new == generated(schedule, schedule.start, utc(2100, 1, 1))


def test_split_a_bysetpos_series() -> None:
    rule = "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=6"  # last workday
    schedule = series(utc(2026, 1, 30, 17), 60, rule)
    all_starts = generated(schedule, schedule.start, utc(2100, 1, 1))
    assert [s.day for s in all_starts] == [30, 27, 31, 30, 29, 30]
    old_rule, new_rule, old, new = split_parts(schedule, rule, all_starts[2])
    assert old_rule.endswith("COUNT=2") and new_rule.endswith("COUNT=4")
    assert old + new == all_starts


def test_split_count_counts_matches_the_zone_drops() -> None:
    # 02:30 on 2026-03-08 does not exist in New York: COUNT=5 yields four occurrences,
    # and the dropped one still counts.
    rule = "FREQ=DAILY;COUNT=5"
    schedule = series(local(NEW_YORK, 2026, 3, 6, 2, 30), 30, rule, "America/New_York")
    all_starts = generated(schedule, schedule.start, utc(2100, 1, 1))
    assert len(all_starts) == 4
    old_rule, new_rule, old, new = split_parts(schedule, rule, all_starts[2])
    assert (old_rule, new_rule) == ("FREQ=DAILY;COUNT=3", "FREQ=DAILY;COUNT=2")
    assert old + new == all_starts


def test_split_count_of_a_start_the_rule_does_not_match() -> None:
    # DTSTART (a Wednesday) is an occurrence besides the rule's COUNT Mondays.
    rule = "FREQ=WEEKLY;BYDAY=MO;COUNT=3"
    schedule = series(utc(2026, 3, 4, 9), 60, rule)
    all_starts = generated(schedule, schedule.start, utc(2100, 1, 1))
    assert len(all_starts) == 4
    old_rule, new_rule, old, new = split_parts(schedule, rule, all_starts[2])
    assert (old_rule, new_rule) == ("FREQ=WEEKLY;BYDAY=MO;COUNT=1", "FREQ=WEEKLY;BYDAY=MO;COUNT=2")
    assert old + new == all_starts
    old_rule, new_rule, old, new = split_parts(schedule, rule, all_starts[1])
    assert old_rule == "FREQ=WEEKLY;BYDAY=MO;UNTIL=20260309T085959Z"
    assert new_rule == rule
    assert old + new == all_starts


def test_split_needs_a_generated_occurrence_but_the_first() -> None:
    rule = "FREQ=DAILY;COUNT=5"
    schedule = series(utc(2026, 3, 2, 9), 60, rule)
    for split_at in (utc(2026, 3, 2, 9), utc(2026, 3, 3, 10), utc(2026, 3, 8, 9)):
        with pytest.raises(ValueError):
            split_rules(schedule, rule, split_at)
    with pytest.raises(ValueError):
        split_rules(series(utc(2026, 3, 2, 9), 60, None), rule, utc(2026, 3, 3, 9))


# Conflicts at effective times


def test_a_cancelled_occurrence_blocks_nothing() -> None:
    meeting = CheckedSchedule(series(utc(2026, 3, 9, 9, 30), 30, None))
    assert [c.occurrence.start for c in find_clashes(meeting, [("weekly", WEEKLY)])] == [
        utc(2026, 3, 9, 9)
    ]
    cancelled = Excepted(WEEKLY, {utc(2026, 3, 9, 9): Override(cancelled=True)})
    assert find_clashes(meeting, [("weekly", cancelled)]) == []


def test_a_moved_occurrence_blocks_only_its_new_time() -> None:
    moved = Override(start_time=utc(2026, 3, 10, 14), end_time=utc(2026, 3, 10, 16))
    weekly = Excepted(WEEKLY, {utc(2026, 3, 9, 9): moved})
    at_the_old_time = CheckedSchedule(series(utc(2026, 3, 9, 9), 60, None))
    assert find_clashes(at_the_old_time, [("weekly", weekly)]) == []
    at_the_new_time = CheckedSchedule(series(utc(2026, 3, 10, 15, 30), 60, None))
    clashes = find_clashes(at_the_new_time, [("weekly", weekly)])
    assert [c.as_json() for c in clashes] == [
        {
            "event_id": "weekly",
            "start_time": "2026-03-10T14:00:00Z",
            "end_time": "2026-03-10T16:00:00Z",
            "recurrence_id": "2026-03-09T09:00:00Z",
        }
    ]


def test_checked_series_with_occurrences_of_different_lengths() -> None:
    # The checked series' occurrence of 9 March lasts until 13:00, the others one hour.
    longer = {utc(2026, 3, 9, 9): Override(end_time=utc(2026, 3, 9, 13))}
    checked = CheckedSchedule(WEEKLY, overrides=longer)
    noon_on_the_ninth = ("noon", series(utc(2026, 3, 9, 12), 30, None))
    noon_on_the_sixteenth = ("later", series(utc(2026, 3, 16, 12), 30, None))
    clashes = find_clashes(checked, [noon_on_the_ninth, noon_on_the_sixteenth])
    assert [(c.event_id, c.occurrence.start) for c in clashes] == [("noon", utc(2026, 3, 9, 12))]
    # The longest occurrence must not hide a short one starting after it.
    short_after = ("short", series(utc(2026, 3, 16, 9, 30), 10, None))
    assert [c.event_id for c in find_clashes(checked, [short_after])] == ["short"]
    assert find_clashes(checked, [("gap", series(utc(2026, 3, 16, 10), 60, None))]) == []


def test_checked_series_is_checked_where_its_occurrences_were_moved() -> None:
    moved = Override(start_time=utc(2026, 2, 20, 9), end_time=utc(2026, 2, 20, 10))
    checked = CheckedSchedule(WEEKLY, overrides={utc(2026, 3, 9, 9): moved})
    assert checked.window_start == utc(2026, 2, 20, 9)
    before_the_series = ("early", series(utc(2026, 2, 20, 9, 15), 15, None))
    at_the_old_time = ("old", series(utc(2026, 3, 9, 9, 15), 15, None))
    clashes = find_clashes(checked, [before_the_series, at_the_old_time])
    assert [c.event_id for c in clashes] == ["early"]
    cancelled = CheckedSchedule(WEEKLY, overrides={utc(2026, 3, 9, 9): Override(cancelled=True)})
    assert find_clashes(cancelled, [at_the_old_time]) == []


def test_recurrence_id_is_reported_for_series_only() -> None:
    meeting = CheckedSchedule(series(utc(2026, 3, 16, 9, 30), 30, None))
    one_off = series(utc(2026, 3, 16, 9), 60, None)
    clashes = find_clashes(
        meeting,
        [("one-off", Excepted(one_off, {})), ("series", Excepted(WEEKLY, {})), ("plain", WEEKLY)],
    )
    assert [(c.event_id, c.recurrence_id) for c in clashes] == [
        ("one-off", None),
        ("plain", None),
        ("series", utc(2026, 3, 16, 9)),
    ]
    assert "recurrence_id" not in clashes[0].as_json()
    assert clashes[2].as_json()["recurrence_id"] == "2026-03-16T09:00:00Z"


def test_batch_items_with_exceptions() -> None:
    first = CheckedSchedule(WEEKLY, overrides={utc(2026, 3, 9, 9): Override(cancelled=True)})
    on_the_cancelled = CheckedSchedule(series(utc(2026, 3, 9, 9), 60, None))
    on_the_next = CheckedSchedule(series(utc(2026, 3, 16, 9), 60, None))
    items = [first, on_the_cancelled, on_the_next]
    assert clashes_with_earlier_items(items, 1) == []
    assert [c.occurrence.start for c in clashes_with_earlier_items(items, 2)] == [
        utc(2026, 3, 16, 9)
    ]
