"""Edits of a series' occurrences: changing, cancelling or restoring one (its
exception), and splitting the series at one ("this and following").

An exception write is a version of the series: it runs under the owner's calendar
lock and the series' row lock like any change, and checks only the time the
occurrence takes anew against the owner's other events.
"""

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg
from psycopg_pool import AsyncConnectionPool

from common import outbox
from common.db import pipelined_transaction
from common.errors import InvalidArgument, NotFound, PermissionDenied
from common.notifications import exception_changes
from common.timeutil import utcnow
from common.tokens import Caller
from event_service import write_repo
from event_service.cache import EventCache
from event_service.checks import Checked
from event_service.domain.events import ValidEvent, make_schedule
from event_service.domain.exceptions import (
    Override,
    SeriesValues,
    effective_times,
    is_generated,
    merged_override,
    overrides_from_json,
    overrides_to_json,
    parse_recurrence_id,
    recurrence_id_text,
    split_rules,
)
from event_service.domain.recurrence import Schedule, interval_footprint
from event_service.edits import (
    ROLE_TOO_LOW,
    carried,
    check_version,
    checked_overrides,
    lock_with_role,
    new_event,
    next_version,
    placement_of,
    validated,
    widened,
)
from event_service.models import StoredEvent
from event_service.models import outbox as outbox_table
from event_service.notices import split_messages
from event_service.reads import EventReader, EventView, OccurrenceView, occurrence_id
from event_service.repo import AccessList
from event_service.service import EventService

OccurrenceAction = Literal["change", "cancel", "restore"]


class SeriesEdits:
    def __init__(
        self,
        namespace: str,
        writes: AsyncConnectionPool,
        reader: EventReader,
        cache: EventCache,
        events: EventService,
    ) -> None:
        self._namespace = namespace
        self._writes = writes
        self._reads = reader
        self._cache = cache
        self._events = events

    async def change_occurrence(
        self,
        caller: Caller,
        event_id: str,
        recurrence_id: str,
        action: OccurrenceAction,
        changes: dict[str, Any],
        allow_conflicts: bool,
        expected_version: int | None,
    ) -> tuple[EventView, OccurrenceView]:
        """Change one occurrence of a series (`changes` merged into its exception,
        reinstating a cancelled one), cancel it, or restore it to the rule: a new
        version of the series, none if nothing changes. Its new times, or its original
        ones when it comes back, are checked against the owner's other events."""
        seen = await self._reads.get(caller, event_id)
        _series_occurrence(seen.event, recurrence_id)  # 422 / 404 before taking locks
        parsed = seen.event.id
        async with pipelined_transaction(self._writes) as conn:
            await write_repo.lock_owner_calendar(conn, seen.event.owner_id)
            current, role, holders = await lock_with_role(conn, parsed, caller)
            if not role.may_edit:
                raise PermissionDenied(ROLE_TOO_LOW)
            check_version(current, expected_version)
            original_start = _series_occurrence(current, recurrence_id)
            schedule = current.schedule()
            overrides = overrides_from_json(current.overrides)
            old = overrides.get(original_start)
            new = _next_exception(action, old, changes, current, original_start, schedule)
            if new == old:
                return EventView(current, role), self._reads.occurrence_of(current, original_start)
            if new is None:
                del overrides[original_start]
            else:
                overrides[original_start] = new
            stored = checked_overrides(overrides_to_json(overrides), schedule)
            if not allow_conflicts and _occupies_anew(old, new):
                start, end = effective_times(new, original_start, schedule.duration)
                await _refuse_clashes(
                    conn, current, await _interval_checked(current, start, end), caller
                )
            updated = replace(
                current, overrides=stored, version=current.version + 1, updated_at=utcnow()
            )
            placement = placement_of(updated, schedule)
            await write_repo.update_event(conn, updated, placement)
            key = recurrence_id_text(original_start)
            record = exception_changes(
                {key: old.to_json()} if old else {}, {key: new.to_json()} if new else {}
            )
            messages = await self._events.record(
                conn, [(updated, "updated", record)], caller, holders
            )
        await self._events.written(updated, holders, messages)
        return EventView(updated, role), self._reads.occurrence_of(updated, original_start)

    async def split(
        self,
        caller: Caller,
        event_id: str,
        split_at: str,
        changes: dict[str, Any],
        allow_conflicts: bool,
        expected_version: int | None,
    ) -> tuple[EventView, EventView]:
        """Split the series at its occurrence `split_at` ("this and following"): it ends
        before it, and a new series (same owner, a copy of the access list) goes on
        from there with `changes` applied and the exceptions from there on, all in one
        transaction. The series' history records the split; the new one's starts at
        version 1."""
        seen = await self._reads.get(caller, event_id)
        _split_point(seen.event, split_at)  # 422 before taking locks
        async with pipelined_transaction(self._writes) as conn:
            await write_repo.lock_owner_calendar(conn, seen.event.owner_id)
            current, role, holders = await lock_with_role(conn, seen.event.id, caller)
            if not role.may_edit:
                raise PermissionDenied(ROLE_TOO_LOW)
            check_version(current, expected_version)
            at = _split_point(current, split_at)
            schedule = current.schedule()
            old_rule, new_rule = split_rules(schedule, current.recurrence_rule or "", at)
            overrides = overrides_from_json(current.overrides)
            kept = overrides_to_json({rid: o for rid, o in overrides.items() if rid < at})
            handed = {rid: o for rid, o in overrides.items() if rid >= at}
            old_draft = replace(current.draft(), recurrence_rule=old_rule)
            base = replace(
                current.draft(),
                start_time=at,
                end_time=at + schedule.duration,
                recurrence_rule=new_rule,
            )
            old_valid, old_placement = await validated(old_draft)
            new_valid, new_placement = await validated(base.merged(changes))
            base_schedule = make_schedule(at, at + schedule.duration, base.timezone, new_rule)
            new_overrides = checked_overrides(
                carried(overrides_to_json(handed), base, base_schedule, new_valid),
                new_valid.schedule,
            )
            new_placement = widened(new_placement, new_valid.schedule, new_overrides)
            old_placement = widened(old_placement, old_valid.schedule, kept)
            if not allow_conflicts:
                checked = await Checked.of(
                    [new_valid],
                    [new_placement],
                    batch=False,
                    overrides=[overrides_from_json(new_overrides)],
                )
                await _refuse_clashes(conn, current, checked, caller)
            now = utcnow()
            updated = replace(
                next_version(current, old_valid.draft), overrides=kept, updated_at=now
            )
            created = replace(
                new_event(current.owner_id, new_valid.draft, now), overrides=new_overrides
            )
            roles = await write_repo.access_roles(conn, current.id)
            await write_repo.update_event(conn, updated, old_placement)
            await write_repo.insert_split(conn, created, new_placement, current.id, len(roles))
            messages = split_messages(self._namespace, current, updated, created, roles, caller)
            await outbox.enqueue_many(conn, outbox_table, messages)
            await write_repo.touch_readers(conn, updated.id)
        await self._events.written(updated, holders, messages)
        access = AccessList(len(roles), {str(user): held for user, held in roles})
        await self._cache.put(created.id, created, access)
        return EventView(updated, role), EventView(created, role)


async def _refuse_clashes(
    conn: psycopg.AsyncConnection, series: StoredEvent, checked: Checked, caller: Caller
) -> None:
    """Conflict if what `checked` holds overlaps another event of the series' owner
    (the series never clashes with itself)."""
    candidates = await write_repo.clash_candidates(
        conn, series.owner_id, checked.checks, exclude=[series.id], reader=uuid.UUID(caller.user_id)
    )
    await checked.refuse(candidates)


async def _interval_checked(series: StoredEvent, start: datetime, end: datetime) -> Checked:
    """One occurrence's new time, to check against the owner's calendar."""
    one = ValidEvent(series.draft(), Schedule(start, end, ZoneInfo("UTC")))
    placement = write_repo.Placement(start, end, interval_footprint(start, end))
    return await Checked.of([one], [placement], batch=False)


def _series_occurrence(event: StoredEvent, recurrence_id: str) -> datetime:
    """The occurrence of a series a recurrence id names (see `reads.occurrence_id`)."""
    if not event.is_recurring:
        raise InvalidArgument.field(
            "recurrence_id", "a one-off event has no exceptions: change the event itself"
        )
    return occurrence_id(event, recurrence_id)


def _split_point(event: StoredEvent, split_at: str) -> datetime:
    """The occurrence a "this and following" split starts at: one the series
    generates, not its first; else InvalidArgument naming `from`."""
    at = parse_recurrence_id(split_at)
    if (
        not event.is_recurring
        or at is None
        or at == event.start_time
        or not is_generated(event.schedule(), at)
    ):
        raise InvalidArgument.field(
            "from", "must be the recurrence_id of an occurrence of the series but its first"
        )
    return at


def _next_exception(
    action: OccurrenceAction,
    old: Override | None,
    changes: dict[str, Any],
    series: StoredEvent,
    original_start: datetime,
    schedule: Schedule,
) -> Override | None:
    if action == "cancel":
        return Override(cancelled=True)
    if action == "restore":
        if old is None:
            raise NotFound("this occurrence has no exception to undo")
        return None
    values = SeriesValues(series.title, series.description, series.location)
    new = merged_override(old, changes, values, original_start, schedule.duration)
    start, end = effective_times(new, original_start, schedule.duration)
    if end <= start:
        raise InvalidArgument.field("end_time", "must be after start_time")
    return new


def _occupies_anew(old: Override | None, new: Override | None) -> bool:
    """Whether the occurrence takes time it did not: it comes back from a
    cancellation, or moves."""
    if new is not None and new.cancelled:
        return False
    if old is not None and old.cancelled:
        return True
    old_times = (old.start_time, old.end_time) if old else (None, None)
    new_times = (new.start_time, new.end_time) if new else (None, None)
    return old_times != new_times
