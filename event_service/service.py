"""Changing events, independent of gRPC: roles, versions, conflicts, notifications.

A write checks the caller's role (from the event's access rows) inside its
transaction. Every change of one owner's calendar runs under that owner's advisory
lock, so two overlapping events cannot both pass the conflict check. A change and
its notification (outbox) commit together; a create also commits the owner's
access row and its access-change notification.
"""

import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, cast

import psycopg
from opentelemetry.trace import Span
from psycopg_pool import AsyncConnectionPool

from common import outbox, tracing
from common.db import pipelined_transaction, pooled_connection
from common.errors import (
    DomainError,
    InvalidArgument,
    PermissionDenied,
)
from common.idempotency import IdempotentWrite, in_progress
from common.notifications import ChangeType, exception_changes, feed_messages
from common.roles import Role
from common.timeutil import utcnow
from common.tokens import Caller
from event_service import write_repo
from event_service.cache import EventCache
from event_service.checks import (
    Checked,
    beside_the_loop,
    conflict,
    existing_by_item,
    involve_series,
)
from event_service.config import EventSettings
from event_service.domain.conflicts import (
    CheckedSchedule,
    Excepted,
    find_clashes,
    may_overlap,
)
from event_service.domain.events import (
    EventDraft,
    ValidEvent,
    event_uuid,
    validate_all,
)
from event_service.domain.exceptions import (
    overrides_from_json,
)
from event_service.domain.recurrence import (
    Schedule,
    SearchBudget,
)
from event_service.edits import (
    ROLE_TOO_LOW,
    carried,
    check_version,
    checked_overrides,
    lock_with_role,
    new_event,
    next_version,
    validated,
    widened,
    with_placement,
)
from event_service.group_commit import GroupCommit, Pending, settle
from event_service.models import StoredEvent
from event_service.models import outbox as outbox_table
from event_service.notices import (
    FIRST_ACCESS_VERSION,
    Changes,
    change_feed,
    change_feed_notice,
    change_messages,
    changes_between,
    creation_messages,
)
from event_service.reads import EventReader, EventView

MAX_BATCH = 500
MAX_GROUP = 64  # creates of one calendar in one transaction


@dataclass(frozen=True, slots=True)
class _Create:
    caller: Caller
    valid: ValidEvent
    placement: write_repo.Placement
    allow_conflicts: bool
    once: IdempotentWrite[EventView] | None


@dataclass(frozen=True, slots=True)
class _Change:
    event_id: uuid.UUID
    owner_id: uuid.UUID
    new_content: Callable[[StoredEvent], EventDraft]
    change_type: ChangeType
    # The exceptions to store (a rollback's); None: the current ones, carried to the
    # new schedule if it changes.
    overrides: dict[str, dict[str, Any]] | None = None


class _RescheduledMeanwhile(Exception):
    """A change planned without the calendar lock turned out to move the event."""


class EventService:
    def __init__(
        self,
        settings: EventSettings,
        writes: AsyncConnectionPool,
        reader: EventReader,
        cache: EventCache,
        publish: Callable[[Sequence[outbox.Message]], None],
    ) -> None:
        self._settings = settings
        self._writes = writes
        self._reads = reader
        self._cache = cache
        self._publish = publish
        self._creates: GroupCommit[_Create, EventView] = GroupCommit(self._create_group, MAX_GROUP)

    async def create(
        self,
        caller: Caller,
        draft: EventDraft,
        allow_conflicts: bool,
        once: IdempotentWrite[EventView] | None = None,
    ) -> EventView:
        """One event. Creates on one calendar that arrive together share a transaction
        (`group_commit`), each checked as if it ran alone after the ones before it.
        A create with an idempotency key (`once`) is applied at most once."""
        create = _Create(caller, *await validated(draft), allow_conflicts, once)
        return await self._creates.submit(uuid.UUID(caller.user_id), create)

    async def _create_group(
        self, owner: Hashable, group: list[Pending[_Create, EventView]]
    ) -> None:
        """Under the owner's lock, each create is checked against the calendar and the
        group's earlier accepted creates: a clash is its Conflict, the rest are
        inserted together."""
        owner_id = cast(uuid.UUID, owner)
        async with pipelined_transaction(self._writes) as conn:
            await write_repo.lock_owner_calendar(conn, owner_id)
            group = await _first_tries(conn, owner_id, group)
            if not group:
                return
            now = utcnow()
            new = [
                (new_event(owner_id, p.item.valid.draft, now + timedelta(microseconds=index)),
                 p.item.placement)
                for index, p in enumerate(group)
            ]  # fmt: skip
            checked = [CheckedSchedule(p.item.valid.schedule) for p in group]
            checks = [
                (c.window_start, c.window_end, placement.footprint)
                for c, (_, placement) in zip(checked, new, strict=True)
            ]
            candidates = await write_repo.clash_candidates(conn, owner_id, checks)
            series = involve_series(candidates) or any(c.schedule.is_series for c in checked)
            refused, accepted = await beside_the_loop(
                series, _sort_out, group, new, checked, existing_by_item(candidates, len(group))
            )
            if accepted:
                caller = group[0].item.caller
                events = [new[index] for index in accepted]
                messages = self._creation_messages(
                    [(new[index][0], group[index].trace) for index in accepted], caller
                )
                await write_repo.insert_events(
                    conn, caller.username, events, FIRST_ACCESS_VERSION, messages, []
                )
                answers = [
                    (once, EventView(new[i][0], Role.OWNER))
                    for i in accepted
                    if (once := group[i].item.once)
                ]
                if answers:
                    keys = answers[0][0].keys
                    await keys.record(conn, [once.row(view) for once, view in answers])
        if accepted:
            await self.created([new[index][0] for index in accepted], messages)
        for index, pending in enumerate(group):
            if index in refused:
                settle(pending, error=refused[index])
            else:
                settle(pending, EventView(new[index][0], Role.OWNER))

    def _creation_messages(
        self, created: list[tuple[StoredEvent, Span | None]], caller: Caller
    ) -> list[outbox.Message]:
        """The new events' notifications; those of a traced create made in its request's
        span, so that they carry its trace (all in one go when none is traced)."""
        namespace = self._settings.namespace
        if not any(span for _, span in created):
            return creation_messages(namespace, [event for event, _ in created], caller)
        messages: list[outbox.Message] = []
        for event, span in created:
            with tracing.within(span):
                messages += creation_messages(namespace, [event], caller)
        return messages

    async def create_many(
        self,
        caller: Caller,
        drafts: list[EventDraft],
        allow_conflicts: bool,
        once: IdempotentWrite[list[EventView]] | None = None,
    ) -> list[EventView]:
        """Create every event or none, at most once with a key (`once`). Errors name
        items (`events.N.field`), and a Conflict tells which item clashed (`index`)."""
        if not 1 <= len(drafts) <= MAX_BATCH:
            raise InvalidArgument.field("events", f"must hold 1 to {MAX_BATCH} events")

        def placed_items() -> list[tuple[ValidEvent, write_repo.Placement]]:
            budget = SearchBudget()
            return [
                with_placement(item, budget, f"events.{index}.")
                for index, item in enumerate(validate_all(drafts, "events.", budget))
            ]

        placed = await beside_the_loop(any(d.recurrence_rule for d in drafts), placed_items)
        valid = [item for item, _ in placed]
        owner = uuid.UUID(caller.user_id)
        now = utcnow()
        # A microsecond apart, so that newest-first lists show a batch's last item first.
        events = [
            (new_event(owner, item.draft, now + timedelta(microseconds=index)), placement)
            for index, (item, placement) in enumerate(placed)
        ]
        messages = creation_messages(
            self._settings.namespace, [event for event, _ in events], caller
        )
        views = [EventView(event, Role.OWNER) for event, _ in events]
        new = _NewEvents(owner, caller.username, events, messages, views, once)
        placements = [placement for _, placement in events]
        checked = None if allow_conflicts else await Checked.of(valid, placements, batch=True)
        # Items of a batch that clash among themselves are refused: checked carefully,
        # the error names the first item that clashes, in the calendar or the batch.
        careful = checked is not None and checked.clash_within
        if not await self._insert(new, checked, careful):
            await self._insert(new, checked, careful=True)
        await self.created([event for event, _ in events], messages)
        return views

    async def _insert(self, new: "_NewEvents", checked: "Checked | None", careful: bool) -> bool:
        """Insert the new events, under their owner's lock, unless they clash with the
        owner's calendar (Conflict). In one round trip, refused by PostgreSQL if an
        event of the owner can clash; `careful`, with the check in between. False if
        that refusal was needless (no candidate clashed): insert `careful` then."""
        checks = checked.checks if checked else []
        async with pipelined_transaction(self._writes) as conn:
            await write_repo.lock_owner_calendar(conn, new.owner)
            if new.once:
                await new.once.replay_if_applied(conn)
            if careful and checked:
                await checked.refuse(await write_repo.clash_candidates(conn, new.owner, checks))
            cursor = await write_repo.insert_events(
                conn,
                new.username,
                new.events,
                FIRST_ACCESS_VERSION,
                new.messages,
                unless_clashing=[] if careful else checks,
            )
            # With a key, the outcome is needed before COMMIT: the key is recorded only
            # if the events were inserted. Without one it is read after the COMMIT.
            candidates = await cursor.fetchall() if new.once else None
            if new.once and not candidates:
                await new.once.record(conn, new.views)
        if candidates is None:
            candidates = await cursor.fetchall()
        if checked:
            await checked.refuse(candidates)
        return not candidates

    async def replace(
        self,
        caller: Caller,
        event_id: str,
        draft: EventDraft,
        allow_conflicts: bool,
        expected_version: int | None,
    ) -> EventView:
        return await self._change(
            caller, event_id, lambda _: draft, "updated", allow_conflicts, expected_version
        )

    async def update(
        self,
        caller: Caller,
        event_id: str,
        changes: dict[str, Any],
        allow_conflicts: bool,
        expected_version: int | None,
    ) -> EventView:
        return await self._change(
            caller,
            event_id,
            lambda current: current.draft().merged(changes),
            "updated",
            allow_conflicts,
            expected_version,
        )

    async def rollback(
        self,
        caller: Caller,
        event_id: str,
        draft: EventDraft,
        overrides: dict[str, dict[str, Any]],
        allow_conflicts: bool,
        expected_version: int | None,
        once: IdempotentWrite[EventView] | None = None,
    ) -> EventView:
        """Restore earlier content and exceptions as a new version (always a new
        version), at most once with a key (`once`)."""
        return await self._change(
            caller,
            event_id,
            lambda _: draft,
            "rolled_back",
            allow_conflicts,
            expected_version,
            once,
            overrides,
        )

    async def delete(self, caller: Caller, event_id: str, expected_version: int | None) -> None:
        parsed = event_uuid(event_id)
        await self._reads.get(caller, event_id)  # 404 before 412 for a stranger, cheaply
        async with pipelined_transaction(self._writes) as conn:
            current, role, holders = await lock_with_role(conn, parsed, caller)
            if not role.may_share:
                raise PermissionDenied("only an owner may delete the event")
            check_version(current, expected_version)
            deleted = replace(
                current, version=current.version + 1, updated_at=utcnow(), deleted=True
            )
            await write_repo.delete_event(conn, deleted)
            messages = await self.record(conn, [(deleted, "deleted", {})], caller, holders)
        await self.written(deleted, holders, messages)

    async def _change(
        self,
        caller: Caller,
        event_id: str,
        new_content: Callable[[StoredEvent], EventDraft],
        change_type: ChangeType,
        allow_conflicts: bool,
        expected_version: int | None,
        once: IdempotentWrite[EventView] | None = None,
        overrides: dict[str, dict[str, Any]] | None = None,
    ) -> EventView:
        seen_view = await self._reads.get(caller, event_id)
        seen = seen_view.event
        change = _Change(event_uuid(event_id), seen.owner_id, new_content, change_type, overrides)
        if change_type == "updated":
            updated = await self._update_unlocked(caller, seen_view, change, expected_version)
            if updated is not None:
                return updated
        # Only a change of times can clash, so only such a change takes the owner's
        # calendar lock (which serialises the owner's creates and reschedules): a guess
        # from the read above, confirmed under the event's own lock.
        reschedules = not seen.draft().same_schedule(new_content(seen)) or (
            overrides is not None and overrides != seen.overrides
        )
        try:
            return await self._apply(
                caller, change, allow_conflicts, expected_version, reschedules, once
            )
        except _RescheduledMeanwhile:
            return await self._apply(caller, change, allow_conflicts, expected_version, True, once)

    async def _update_unlocked(
        self,
        caller: Caller,
        seen: EventView,
        change: "_Change",
        expected_version: int | None,
    ) -> EventView | None:
        """The common update, in one statement and one round trip: a valid change that
        keeps the schedule (so clashes nothing) of the event just read, applied only if
        the event is still stored as read and the caller may still edit it; or a change
        that changes nothing, answered once the event is confirmed stored as read.
        None when neither applies (anything else, or a lost race): `_apply` decides
        under the event's lock, and answers every error."""
        current = seen.event
        if not seen.role.may_edit or expected_version not in (None, current.version):
            return None
        try:
            valid, _ = await validated(change.new_content(current))
        except InvalidArgument:
            return None
        changes = changes_between(current.draft(), valid.draft)
        if not changes:  # no version; the answer holds if what was read is what is stored
            async with pooled_connection(self._writes) as conn:
                role = await write_repo.role_if_stored(conn, current, uuid.UUID(caller.user_id))
            return EventView(current, role) if role is not None and role.may_edit else None
        if not current.draft().same_schedule(valid.draft):
            return None
        updated = next_version(current, valid.draft)
        namespace = self._settings.namespace
        messages = change_messages(namespace, [(updated, "updated", changes)], caller)
        notice = change_feed_notice(updated, "updated", caller.user_id)
        feed = write_repo.FeedToReaders(namespace, notice, str(updated.version))
        async with pooled_connection(self._writes) as conn:
            stored = await write_repo.update_if_unchanged(
                conn, updated, current, uuid.UUID(caller.user_id), messages, feed
            )
        if stored is None:
            return None
        role, holders = stored
        messages += feed_messages(namespace, notice, holders, feed.key)
        await self.written(updated, holders, messages)
        return EventView(updated, role)

    async def _apply(
        self,
        caller: Caller,
        change: "_Change",
        allow_conflicts: bool,
        expected_version: int | None,
        lock_calendar: bool,
        once: IdempotentWrite[EventView] | None,
    ) -> EventView:
        change_type, parsed, owner = change.change_type, change.event_id, change.owner_id
        async with pipelined_transaction(self._writes) as conn:
            if lock_calendar:  # the owner never changes: its calendar before the event
                await write_repo.lock_owner_calendar(conn, owner)
            current, role, holders = await lock_with_role(conn, parsed, caller)
            if once:
                await once.replay_if_applied(conn)
            if not role.may_edit:
                raise PermissionDenied(ROLE_TOO_LOW)
            valid, placement = await validated(change.new_content(current))
            check_version(current, expected_version)
            overrides = change.overrides
            if overrides is None:
                overrides = carried(current.overrides, current.draft(), current.schedule(), valid)
            overrides = checked_overrides(overrides, valid.schedule)
            changes = changes_between(current.draft(), valid.draft) | exception_changes(
                current.overrides, overrides
            )
            if not changes and change_type == "updated":
                return EventView(current, role)
            reschedules = not current.draft().same_schedule(valid.draft) or (
                overrides != current.overrides
            )
            if reschedules and not lock_calendar:
                raise _RescheduledMeanwhile
            placement = widened(placement, valid.schedule, overrides)
            if reschedules and not allow_conflicts:
                checked = await Checked.of(
                    [valid], [placement], batch=False, overrides=[overrides_from_json(overrides)]
                )
                reader = uuid.UUID(caller.user_id)
                await checked.refuse(
                    await write_repo.clash_candidates(
                        conn, owner, checked.checks, exclude=[parsed], reader=reader
                    )
                )
            updated = replace(next_version(current, valid.draft), overrides=overrides)
            await write_repo.update_event(conn, updated, placement)
            messages = await self.record(conn, [(updated, change_type, changes)], caller, holders)
            if once:
                await once.record(conn, EventView(updated, role))
        await self.written(updated, holders, messages)
        return EventView(updated, role)

    async def record(
        self,
        conn: psycopg.AsyncConnection,
        changes: list[tuple[StoredEvent, ChangeType, Changes]],
        caller: Caller,
        readers: list[uuid.UUID],
    ) -> list[outbox.Message]:
        """Queue change notifications in the transaction of the changes (of one event),
        the readers' change-stream messages among them, and mark the event changed
        for its readers' syncs."""
        namespace = self._settings.namespace
        messages = change_messages(namespace, changes, caller)
        messages += change_feed(namespace, changes, readers, caller)
        await outbox.enqueue_many(conn, outbox_table, messages)
        await write_repo.touch_readers(conn, changes[0][0].id)
        return messages

    async def created(self, events: list[StoredEvent], messages: list[outbox.Message]) -> None:
        """After commit: publish the notifications, cache new events of one owner (a
        read right after a create is the rule) and retire the owner's listings."""
        self._publish(messages)
        await self._cache.put_new(events, FIRST_ACCESS_VERSION, retiring=[events[0].owner_id])

    async def written(
        self, event: StoredEvent, holders: list[uuid.UUID], messages: list[outbox.Message]
    ) -> None:
        """After commit: publish the notifications, replace the cached event and retire
        the listings that show it."""
        self._publish(messages)
        await self._cache.put(event.id, event, retiring=holders)


async def _first_tries(
    conn: psycopg.AsyncConnection, owner: uuid.UUID, group: list[Pending[_Create, EventView]]
) -> list[Pending[_Create, EventView]]:
    """The creates of a group that are not repeats. A repeat of a create that was
    applied gets its first answer; one of a create still running (earlier in the
    group) gets 409. Called under the owner's lock, which every create holds."""
    keyed = [p.item.once for p in group if p.item.once]
    if not keyed:
        return group
    recorded = await keyed[0].keys.recorded(conn, owner, [once.key for once in keyed])
    first_tries: list[Pending[_Create, EventView]] = []
    running: set[str] = set()
    for pending in group:
        once = pending.item.once
        if once and once.key in recorded:
            settle(pending, error=once.replay(recorded[once.key]))
        elif once and once.key in running:
            settle(pending, error=in_progress())
        else:
            if once:
                running.add(once.key)
            first_tries.append(pending)
    return first_tries


def _sort_out(
    group: list[Pending[_Create, EventView]],
    new: list[tuple[StoredEvent, write_repo.Placement]],
    checked: list[CheckedSchedule],
    existing: list[list[tuple[str | None, Excepted]]],
) -> tuple[dict[int, DomainError], list[int]]:
    """Which creates of a group clash (with the calendar or an earlier accepted create
    of the group) or cost too much to check, and which are accepted."""
    refused: dict[int, DomainError] = {}
    accepted: list[int] = []
    for index, pending in enumerate(group):
        if not pending.item.allow_conflicts:
            earlier: list[tuple[str | None, Schedule | Excepted]] = [
                (str(new[a][0].id), checked[a].schedule)
                for a in accepted
                if may_overlap(checked[a], checked[index])
            ]
            try:
                clashes = find_clashes(checked[index], existing[index] + earlier)
            except InvalidArgument as too_costly:  # past the request's ComparisonBudget
                refused[index] = too_costly
                continue
            if clashes:
                refused[index] = conflict(clashes)
                continue
        accepted.append(index)
    return refused, accepted


@dataclass(frozen=True, slots=True)
class _NewEvents:
    """Events to create for one owner, with their notifications."""

    owner: uuid.UUID
    username: str
    events: list[tuple[StoredEvent, write_repo.Placement]]
    messages: list[outbox.Message]
    views: list[EventView]
    once: IdempotentWrite[list[EventView]] | None
