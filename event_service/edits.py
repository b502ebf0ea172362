"""The steps every change of a stored event takes: checking the caller's role and the
version asked for, validating and placing the new content, the next version."""

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

import psycopg

from common.errors import EVENT_NOT_FOUND, InvalidArgument, NotFound, PreconditionFailed
from common.notifications import EDITABLE_FIELDS
from common.timeutil import utcnow
from common.tokens import Caller
from event_service import write_repo
from event_service.checks import beside_the_loop
from event_service.domain.events import EventDraft, ValidEvent, validate
from event_service.domain.exceptions import (
    MAX_EXCEPTIONS,
    carried_overrides,
    effective_times,
    overrides_from_json,
    overrides_to_json,
)
from event_service.domain.recurrence import (
    RuleError,
    Schedule,
    SearchBudget,
    interval_footprint,
    merge_ranges,
    week_footprint,
)
from event_service.models import StoredEvent

ROLE_TOO_LOW = "your role on this event does not allow this"


async def lock_with_role(
    conn: psycopg.AsyncConnection, event_id: uuid.UUID, caller: Caller
) -> write_repo.LockedEvent:
    """The live event, locked, the caller's role on it as of now, and its holders."""
    found = await write_repo.lock_live_event(conn, event_id, uuid.UUID(caller.user_id))
    if found is None or found.role is None:
        raise NotFound(EVENT_NOT_FOUND)
    return found


def check_version(current: StoredEvent, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != current.version:
        raise PreconditionFailed(
            f"the event is at version {current.version}, not {expected_version}",
            current_version=current.version,
        )


def new_event(owner: uuid.UUID, draft: EventDraft, now: datetime) -> StoredEvent:
    return StoredEvent(
        id=uuid.uuid4(),
        owner_id=owner,
        **{name: getattr(draft, name) for name in EDITABLE_FIELDS},
        version=1,
        created_at=now,
        updated_at=now,
    )


async def validated(draft: EventDraft) -> tuple[ValidEvent, write_repo.Placement]:
    """`validate`, and where the event goes (`with_placement`); for a series beside the
    event loop: searching its rule and its zone's offsets over the years it spans
    (~0.3 ms a year the first time), both within one `recurrence.SearchBudget`, must
    not stall other calls."""

    def placed() -> tuple[ValidEvent, write_repo.Placement]:
        budget = SearchBudget()
        return with_placement(validate(draft, budget=budget), budget)

    return await beside_the_loop(bool(draft.recurrence_rule), placed)


def next_version(current: StoredEvent, draft: EventDraft) -> StoredEvent:
    """The event changed to `draft`, one version on, updated now."""
    return replace(
        current,
        **{name: getattr(draft, name) for name in EDITABLE_FIELDS},
        version=current.version + 1,
        updated_at=utcnow(),
    )


def carried(
    overrides: dict[str, dict[str, Any]],
    before: EventDraft,
    before_schedule: Schedule,
    after: ValidEvent,
) -> dict[str, dict[str, Any]]:
    """An event's exceptions after a change of its fields: kept while the schedule
    stays; else each carried to the new schedule's occurrence on the same local date,
    or dropped (`domain.exceptions.carried_overrides`)."""
    if not overrides or before.same_schedule(after.draft):
        return overrides
    moved, _dropped = carried_overrides(
        before_schedule, after.schedule, overrides_from_json(overrides)
    )
    return overrides_to_json(moved)


def checked_overrides(
    overrides: dict[str, dict[str, Any]], schedule: Schedule
) -> dict[str, dict[str, Any]]:
    if overrides and not schedule.is_series:
        return {}
    if len(overrides) > MAX_EXCEPTIONS:
        raise InvalidArgument.field(
            "overrides", f"a series may have at most {MAX_EXCEPTIONS} exceptions"
        )
    return overrides


def placement_of(event: StoredEvent, schedule: Schedule) -> write_repo.Placement:
    """Where a stored (valid) event's occurrences fall, exceptions included."""
    placement = write_repo.Placement(
        schedule.start, schedule.span_end(), week_footprint(schedule, SearchBudget())
    )
    return widened(placement, schedule, event.overrides)


def widened(
    placement: write_repo.Placement, schedule: Schedule, overrides: dict[str, dict[str, Any]]
) -> write_repo.Placement:
    """`placement` grown to hold the occurrences exceptions moved off the rule."""
    moved = [
        effective_times(override, original_start, schedule.duration)
        for original_start, override in overrides_from_json(overrides).items()
        if override.moves and not override.cancelled
    ]
    if not moved:
        return placement
    span_end = placement.span_end
    if span_end is not None:
        span_end = max(span_end, *(end for _, end in moved))
    footprint = placement.footprint + [
        part for start, end in moved for part in interval_footprint(start, end)
    ]
    return write_repo.Placement(
        min(placement.span_start, *(start for start, _ in moved)),
        span_end,
        merge_ranges(footprint),
    )


def with_placement(
    valid: ValidEvent, budget: SearchBudget, prefix: str = ""
) -> tuple[ValidEvent, write_repo.Placement]:
    try:
        footprint = week_footprint(valid.schedule, budget)
    except RuleError as too_costly:
        raise InvalidArgument.field(f"{prefix}recurrence_rule", str(too_costly)) from None
    return valid, write_repo.Placement(valid.schedule.start, valid.schedule.span_end(), footprint)
