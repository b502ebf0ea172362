"""Unit tests of validation and conflict detection (no database, no gRPC)."""

from datetime import UTC, datetime, timedelta

import pytest

from common.errors import InvalidArgument
from event_service.domain.conflicts import (
    MAX_REPORTED_CONFLICTS,
    CheckedSchedule,
    clashes_with_earlier_items,
    find_clashes,
)
from event_service.domain.events import EventDraft, make_schedule, validate, validate_all


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


MONDAY_NINE = datetime(2026, 3, 2, 9, tzinfo=UTC)


def draft(
    start: datetime = MONDAY_NINE,
    minutes: int = 60,
    rule: str | None = None,
    **fields: object,
) -> EventDraft:
    values: dict = {
        "title": "Review",
        "description": "",
        "location": "",
        "start_time": start,
        "end_time": start + timedelta(minutes=minutes),
        "timezone": "UTC",
        "is_recurring": rule is not None,
        "recurrence_rule": rule,
        **fields,
    }
    return EventDraft(**values)


def fields_of(error: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [e["field"] for e in error.value.extra["errors"]]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"title": ""}, ["title"]),
        ({"title": "x" * 201}, ["title"]),
        ({"description": "x" * 10_001}, ["description"]),
        ({"start_time": None, "end_time": None}, ["start_time", "end_time"]),
        ({"end_time": utc(2026, 3, 2, 9)}, ["end_time"]),
        ({"start_time": utc(1899, 12, 31, 23)}, ["start_time"]),
        ({"end_time": utc(2201, 1, 1)}, ["end_time"]),
        ({"timezone": "Europe/Atlantis"}, ["timezone"]),
        ({"timezone": "../etc/passwd"}, ["timezone"]),
        ({"is_recurring": True}, ["recurrence_rule"]),
        ({"recurrence_rule": "FREQ=DAILY"}, ["recurrence_rule"]),
        (
            {"is_recurring": True, "recurrence_rule": "FREQ=DAILY;COUNT=3;UNTIL=20270101"},
            ["recurrence_rule"],
        ),
        ({"title": "", "timezone": "Nope"}, ["title", "timezone"]),
    ],
)  # fmt: skip
def test_invalid_drafts_name_each_bad_field(changes: dict, fields: list[str]) -> None:
    with pytest.raises(InvalidArgument) as raised:
        validate(draft(**changes))
    assert fields_of(raised) == fields


def test_empty_zone_and_rule_mean_utc_and_one_off() -> None:
    valid = validate(draft(timezone="", recurrence_rule=""))
    assert (valid.draft.timezone, valid.draft.recurrence_rule) == ("UTC", None)
    assert not valid.schedule.is_series


def test_batch_errors_are_prefixed_with_the_item_index() -> None:
    with pytest.raises(InvalidArgument) as raised:
        validate_all([draft(), draft(title=""), draft(timezone="Nope")], "events.")
    assert fields_of(raised) == ["events.1.title", "events.2.timezone"]


def existing(event_id: str, *args, **kwargs) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    valid = draft(*args, **kwargs)
    return event_id, make_schedule(
        valid.start_time,  # type: ignore[arg-type]
        valid.end_time,  # type: ignore[arg-type]
        valid.timezone,
        valid.recurrence_rule,
    )


def checked(*args, **kwargs) -> CheckedSchedule:  # type: ignore[no-untyped-def]
    return CheckedSchedule(validate(draft(*args, **kwargs)).schedule)


def test_half_open_intervals_touching_do_not_clash() -> None:
    new = checked(utc(2026, 3, 2, 10), 60)
    assert find_clashes(new, [existing("before", utc(2026, 3, 2, 9), 60)]) == []
    assert find_clashes(new, [existing("after", utc(2026, 3, 2, 11), 60)]) == []
    clashes = find_clashes(new, [existing("inside", utc(2026, 3, 2, 10, 15), 10)])
    assert [(c.event_id, c.occurrence.start) for c in clashes] == [
        ("inside", utc(2026, 3, 2, 10, 15))
    ]


def test_series_clash_reports_the_existing_occurrences() -> None:
    weekly = existing("weekly", utc(2026, 1, 5, 9), 60, "FREQ=WEEKLY;BYDAY=MO")
    daily = checked(utc(2026, 3, 1, 9, 30), 15, "FREQ=DAILY;COUNT=10")
    clashes = find_clashes(daily, [weekly])
    assert [c.occurrence.start for c in clashes] == [utc(2026, 3, 2, 9), utc(2026, 3, 9, 9)]
    assert clashes[0].as_json() == {
        "event_id": "weekly",
        "start_time": "2026-03-02T09:00:00Z",
        "end_time": "2026-03-02T10:00:00Z",
    }


def test_an_endless_series_is_checked_over_its_first_five_years() -> None:
    endless = checked(utc(2026, 1, 1, 9), 60, "FREQ=DAILY")
    in_year_four = existing("soon", utc(2029, 6, 1, 9, 30), 10)
    in_year_six = existing("later", utc(2032, 6, 1, 9, 30), 10)
    assert [c.event_id for c in find_clashes(endless, [in_year_four, in_year_six])] == ["soon"]


def test_reported_conflicts_are_capped() -> None:
    daily = existing("daily", utc(2026, 1, 1, 9), 60, "FREQ=DAILY")
    clashes = find_clashes(checked(utc(2026, 1, 1, 9), 60, "FREQ=DAILY"), [daily])
    assert len(clashes) == MAX_REPORTED_CONFLICTS
    assert clashes[0].occurrence.start == utc(2026, 1, 1, 9)


def test_batch_items_clash_with_earlier_items_only() -> None:
    items = [
        checked(utc(2026, 3, 2, 9), 60, "FREQ=WEEKLY;COUNT=3"),
        checked(utc(2026, 3, 3, 9), 60),
        checked(utc(2026, 3, 16, 9, 30), 60),
    ]
    assert clashes_with_earlier_items(items, 0) == []
    assert clashes_with_earlier_items(items, 1) == []
    clashes = clashes_with_earlier_items(items, 2)
    assert [(c.batch_index, c.occurrence.start) for c in clashes] == [(0, utc(2026, 3, 16, 9))]
    assert clashes[0].as_json()["event_id"] is None


# Rules that never repeat, and the search budget of a request


def messages_of(error: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [e["message"] for e in error.value.extra["errors"]]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "no occurrence within 8 years"),
        ("FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29", "no occurrence within 8 years"),
        ("FREQ=DAILY;INTERVAL=7;BYDAY=TU", "no occurrence within 8 years"),  # from a Monday
        ("FREQ=MONTHLY;INTERVAL=12;BYMONTH=4", "no occurrence within 8 years"),  # March only
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=10000", "no occurrence within 8 years"),
        # Repeats, but 40 leap days take 58,000 days to find: past a request's budget.
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;COUNT=40", "takes too long to expand"),
        ("FREQ=MONTHLY;BYMONTHDAY=31;COUNT=10000", "runs past the year 2200"),
    ],
)
def test_a_rule_that_does_not_repeat_or_ends_too_late_is_refused(rule: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        validate(draft(rule=rule, start=utc(2026, 3, 2, 9)))
    assert fields_of(error) == ["recurrence_rule"]
    assert message in messages_of(error)[0]


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29",  # next in 2028
        "FREQ=MONTHLY;BYMONTH=12",  # nine months on
        "FREQ=YEARLY;INTERVAL=3;BYMONTH=2;BYMONTHDAY=29",  # 2032
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=1",  # only the start
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;UNTIL=20280101T000000Z",  # ends before 8 years
        "FREQ=DAILY;COUNT=10000",
        "FREQ=MONTHLY;BYDAY=-1FR;COUNT=1000",
    ],
)
def test_a_rule_that_repeats_however_rarely_is_accepted(rule: str) -> None:
    assert validate(draft(rule=rule, start=utc(2026, 3, 2, 9))).schedule.is_series


def test_a_batch_shares_one_search_budget() -> None:
    """Each of these searches 8 years of days (2,923 periods): 20 fit the budget of a
    request, 50 do not, and the rest are refused without searching."""
    never = draft(rule="FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30")
    with pytest.raises(InvalidArgument) as error:
        validate_all([never] * 50, "events.")
    messages = messages_of(error)
    assert len(messages) == 50
    assert "no occurrence" in messages[0]
    assert "takes too long to expand" in messages[-1]
