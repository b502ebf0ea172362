"""Importing an iCalendar file into the caller's calendar, all or nothing.

Each master VEVENT of the file (`ical_import`) becomes an event the caller owns, or
updates one: the event whose id its UID is, or the one an earlier import of that UID
became. Everything happens in one transaction under the caller's calendar lock, so the
file is checked for clashes, against the calendar and among its own events, as one
batch: a Conflict's `index` is the clashing VEVENT's number. An updated event whose
fields and exceptions stay as they are keeps its version.
"""

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from common import outbox
from common.db import pipelined_transaction
from common.errors import InvalidArgument
from common.idempotency import IdempotentWrite
from common.notifications import exception_changes
from common.roles import Role
from common.timeutil import utcnow
from common.tokens import Caller
from event_service import import_repo, write_repo
from event_service.checks import Checked
from event_service.domain.events import ValidEvent
from event_service.domain.exceptions import overrides_to_json
from event_service.domain.recurrence import SearchBudget
from event_service.edits import new_event, next_version, widened, with_placement
from event_service.ical_import import ImportedCalendar, ImportedEvent, read_calendar
from event_service.models import StoredEvent
from event_service.notices import (
    FIRST_ACCESS_VERSION,
    Changes,
    changes_between,
    creation_messages,
)
from event_service.reads import EventView
from event_service.service import EventService


@dataclass(frozen=True, slots=True)
class Imported:
    views: list[EventView]  # one per master VEVENT, in file order
    warnings: list[dict[str, Any]]


@dataclass(slots=True)
class _Item:
    """A master VEVENT: the event it makes and where it goes; once planned, the event
    it updates (`target`, if any), and the outcome: `event` "created", "updated" (with
    `changes`) or "unchanged"."""

    imported: ImportedEvent
    valid: ValidEvent
    placement: write_repo.Placement
    overrides: dict[str, dict[str, Any]]
    target: write_repo.LockedEvent | None = None
    event: StoredEvent | None = None
    outcome: str = ""
    changes: Changes = field(default_factory=dict)

    def plan(self, owner: uuid.UUID, now: datetime) -> None:
        if self.target is None:
            self.event = replace(new_event(owner, self.valid.draft, now), overrides=self.overrides)
            self.outcome = "created"
            return
        current = self.target.event
        self.changes = changes_between(current.draft(), self.valid.draft) | exception_changes(
            current.overrides, self.overrides
        )
        if not self.changes:
            self.event, self.outcome = current, "unchanged"
            return
        updated = next_version(current, self.valid.draft)
        self.event, self.outcome = replace(updated, overrides=self.overrides), "updated"

    @property
    def occupies_anew(self) -> bool:
        """Whether it may clash: new, or its times or exceptions change."""
        if self.target is None:
            return True
        current = self.target.event
        return self.outcome == "updated" and (
            not current.draft().same_schedule(self.valid.draft)
            or current.overrides != self.overrides
        )


class CalendarImport:
    def __init__(self, namespace: str, writes: AsyncConnectionPool, events: EventService) -> None:
        self._namespace = namespace
        self._writes = writes
        self._events = events

    async def run(
        self,
        caller: Caller,
        data: bytes,
        allow_conflicts: bool,
        once: IdempotentWrite[Imported] | None = None,
    ) -> Imported:
        """The file's events written, or an error naming the VEVENT and line at fault."""
        calendar, items = await asyncio.to_thread(_read, data)  # ~0.3 s for 500 series
        owner = uuid.UUID(caller.user_id)
        async with pipelined_transaction(self._writes) as conn:
            await write_repo.lock_owner_calendar(conn, owner)
            if once:
                await once.replay_if_applied(conn)
            await _find_targets(conn, owner, items)
            now = utcnow()
            for index, item in enumerate(items):  # a microsecond apart, as a batch
                item.plan(owner, now + timedelta(microseconds=index))
            if not allow_conflicts:
                await _refuse_clashes(conn, owner, items)
            created = [(item.event, item.placement) for item in items if item.outcome == "created"]
            messages: list[outbox.Message] = []
            if created:
                messages = creation_messages(self._namespace, [e for e, _ in created], caller)
                await write_repo.insert_events(
                    conn, caller.username, created, FIRST_ACCESS_VERSION, messages, []
                )
            updated = []
            for item in items:
                if item.outcome == "updated":
                    await write_repo.update_event(conn, item.event, item.placement)
                    holders = item.target.holders
                    written = await self._events.record(
                        conn, [(item.event, "updated", item.changes)], caller, holders
                    )
                    updated.append((item.event, holders, written))
            uids = [(item.imported.uid, item.event.id) for item in items if item.imported.uid]
            await import_repo.remember_uids(conn, owner, uids)
            answer = Imported(
                [EventView(item.event, Role.OWNER) for item in items], calendar.warnings
            )
            if once:
                await once.record(conn, answer)
        if created:
            await self._events.created([event for event, _ in created], messages)
        for event, holders, written in updated:
            await self._events.written(event, holders, written)
        return answer


def _read(data: bytes) -> tuple[ImportedCalendar, list[_Item]]:
    """The file's events, each placed (its rule searched within the file's budget)."""
    calendar = read_calendar(data)
    budget = SearchBudget()
    items = []
    for imported in calendar.events:
        try:
            valid, placement = with_placement(imported.valid, budget)
        except InvalidArgument as too_costly:
            message = too_costly.extra["errors"][0]["message"]
            raise InvalidArgument([imported.error("RRULE", message)]) from None
        overrides = overrides_to_json(imported.overrides)
        items.append(
            _Item(imported, valid, widened(placement, valid.schedule, overrides), overrides)
        )
    return calendar, items


async def _find_targets(
    conn: psycopg.AsyncConnection, owner: uuid.UUID, items: list[_Item]
) -> None:
    """Each item's target: the live event on the owner's calendar that its UID names,
    locked, if the owner still has the owner role on it; each event the target of the
    first item that names it."""
    uids = [item.imported.uid for item in items if item.imported.uid]
    named = await import_repo.lock_named_events(conn, owner, uids)
    taken: set[uuid.UUID] = set()
    for item in items:
        target = named.get(item.imported.uid) if item.imported.uid else None
        if target is not None and target.role is Role.OWNER and target.event.id not in taken:
            item.target = target
            taken.add(target.event.id)


async def _refuse_clashes(
    conn: psycopg.AsyncConnection, owner: uuid.UUID, items: list[_Item]
) -> None:
    """Conflict if an item that takes time anew clashes with the owner's calendar (as
    it stays: without the old versions of the events the file updates) or with an
    earlier such item."""
    checked_items = [item for item in items if item.occupies_anew]
    if not checked_items:
        return
    checked = await Checked.of(
        [item.valid for item in checked_items],
        [item.placement for item in checked_items],
        batch=True,
        overrides=[item.imported.overrides for item in checked_items],
        numbers=[item.imported.number for item in checked_items],
    )
    replaced = [item.target.event.id for item in checked_items if item.target]
    await checked.refuse(
        await write_repo.clash_candidates(conn, owner, checked.checks, exclude=replaced)
    )
