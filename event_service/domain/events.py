"""The rules of an event's editable fields: validation and the schedule they describe."""

import uuid
from dataclasses import dataclass, fields, replace
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from common.errors import EVENT_NOT_FOUND, InvalidArgument, NotFound
from common.timeutil import MAX_YEAR, MIN_YEAR, rfc3339
from event_service.domain.recurrence import (
    Rule,
    RuleError,
    Schedule,
    SearchBudget,
    check_series,
    parse_rule,
)

TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
LOCATION_MAX = 1_000
SCHEDULE_FIELDS = ("start_time", "end_time", "timezone", "is_recurring", "recurrence_rule")


@dataclass(frozen=True, slots=True)
class EventDraft:
    """The editable fields of an event as given; `validate` says whether they are valid.
    An empty recurrence rule is None and an empty time zone is UTC."""

    title: str
    description: str
    location: str
    start_time: datetime | None
    end_time: datetime | None
    timezone: str
    is_recurring: bool
    recurrence_rule: str | None

    def __post_init__(self) -> None:
        if not self.recurrence_rule:
            object.__setattr__(self, "recurrence_rule", None)
        if not self.timezone:
            object.__setattr__(self, "timezone", "UTC")

    def merged(self, changes: dict[str, Any]) -> "EventDraft":
        return replace(self, **changes)

    def same_schedule(self, other: "EventDraft") -> bool:
        return all(getattr(self, name) == getattr(other, name) for name in SCHEDULE_FIELDS)

    def snapshot(self) -> dict[str, Any]:
        """The fields as JSON-ready values (times RFC 3339 UTC)."""
        return {field.name: json_value(getattr(self, field.name)) for field in fields(self)}


def json_value(value: Any) -> Any:
    return rfc3339(value) if isinstance(value, datetime) else value


@dataclass(frozen=True, slots=True)
class ValidEvent:
    draft: EventDraft
    schedule: Schedule


def validate(draft: EventDraft, prefix: str = "", budget: SearchBudget | None = None) -> ValidEvent:
    """The draft with its schedule, or InvalidArgument naming each bad field."""
    errors = field_errors(draft, budget or SearchBudget())
    if errors:
        raise InvalidArgument([{"field": prefix + f, "message": m} for f, m in errors])
    return ValidEvent(draft, schedule_of(draft))


def validate_all(
    drafts: list[EventDraft], prefix: str, budget: SearchBudget | None = None
) -> list[ValidEvent]:
    """Every draft validated; errors of all of them at once, named `<prefix><index>.<field>`.
    Their series share one search budget: a request's rules cost the service so much."""
    budget = budget or SearchBudget()
    errors = [
        {"field": f"{prefix}{index}.{name}", "message": message}
        for index, draft in enumerate(drafts)
        for name, message in field_errors(draft, budget)
    ]
    if errors:
        raise InvalidArgument(errors)
    return [ValidEvent(draft, schedule_of(draft)) for draft in drafts]


def field_errors(draft: EventDraft, budget: SearchBudget) -> list[tuple[str, str]]:
    errors = []
    if not 1 <= len(draft.title) <= TITLE_MAX:
        errors.append(("title", f"must be 1 to {TITLE_MAX} characters"))
    if len(draft.description) > DESCRIPTION_MAX:
        errors.append(("description", f"must be at most {DESCRIPTION_MAX} characters"))
    if len(draft.location) > LOCATION_MAX:
        errors.append(("location", f"must be at most {LOCATION_MAX} characters"))
    times_ok = True
    for name in ("start_time", "end_time"):
        value = getattr(draft, name)
        if value is None:
            errors.append((name, "is required"))
            times_ok = False
        elif not MIN_YEAR <= value.year <= MAX_YEAR:
            errors.append((name, f"must be in the years {MIN_YEAR} to {MAX_YEAR}"))
            times_ok = False
    if times_ok and draft.end_time <= draft.start_time:  # type: ignore[operator]
        errors.append(("end_time", "must be after start_time"))
    zone_ok = is_time_zone(draft.timezone)
    if not zone_ok:
        errors.append(("timezone", "must be an IANA time zone name, e.g. Europe/Berlin"))
    if draft.is_recurring and not draft.recurrence_rule:
        errors.append(("recurrence_rule", "is required when is_recurring is true"))
    elif draft.recurrence_rule and not draft.is_recurring:
        errors.append(("recurrence_rule", "must be empty unless is_recurring is true"))
    elif draft.recurrence_rule and zone_ok:
        try:
            cached_rule(draft.recurrence_rule, draft.timezone)
            if times_ok:
                check_series(schedule_of(draft), budget)
        except RuleError as error:
            errors.append(("recurrence_rule", str(error)))
    return errors


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_time_zone(name: str) -> bool:
    return name in _time_zones()


@lru_cache(maxsize=65_536)
def cached_rule(text: str, zone: str) -> Rule:
    return parse_rule(text, ZoneInfo(zone))


def schedule_of(draft: EventDraft) -> Schedule:
    return make_schedule(
        draft.start_time,  # type: ignore[arg-type]
        draft.end_time,  # type: ignore[arg-type]
        draft.timezone,
        draft.recurrence_rule,
    )


def make_schedule(start: datetime, end: datetime, zone: str, rule: str | None) -> Schedule:
    """The schedule of stored (already valid) fields."""
    return Schedule(start, end, ZoneInfo(zone), cached_rule(rule, zone) if rule else None)


def event_uuid(event_id: str) -> uuid.UUID:
    """The id of an event; a malformed one is as unknown as a missing one."""
    try:
        return uuid.UUID(event_id)
    except ValueError:
        raise NotFound(EVENT_NOT_FOUND) from None
