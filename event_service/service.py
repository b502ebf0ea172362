"""The rules of events, independent of gRPC: roles, versions, conflicts, notifications.

Roles live beside the events (`event_access`): a read takes the event and the
caller's role from one cache read or one query, and a write checks the role again
inside its transaction. Every change of one owner's calendar runs under that
owner's advisory lock, so two overlapping events cannot both pass the conflict
check. A change and its notification (outbox) commit together; a create also
commits the owner's access row and its access-change notification.
"""

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common import outbox
from common.db import autocommit
from common.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
)
from common.notifications import (
    EDITABLE_FIELDS,
    AccessChange,
    ChangeType,
    EventChange,
    event_subject,
)
from common.roles import Role
from common.timeutil import rfc3339, utcnow
from common.tokens import Caller
from event_service import repo
from event_service.access import access_notification
from event_service.cache import EventCache
from event_service.config import EventSettings
from event_service.domain.conflicts import (
    CheckedSchedule,
    Clash,
    clashes_with_earlier_items,
    find_clashes,
)
from event_service.domain.events import (
    EVENT_NOT_FOUND,
    EventDraft,
    ValidEvent,
    event_uuid,
    json_value,
    make_schedule,
    validate,
    validate_all,
)
from event_service.domain.recurrence import MAX_YEAR, MIN_YEAR, Schedule, week_footprint
from event_service.models import StoredEvent
from event_service.models import outbox as outbox_table

ROLE_TOO_LOW = "your role on this event does not allow this"
# A new event's access list: its owner's grant, change 1.
FIRST_ACCESS_VERSION = 1
MAX_BATCH = 500
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_WINDOW = timedelta(days=366)
MAX_EXPANDED_OCCURRENCES = 20_000
_FAR_FUTURE = datetime(9000, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class EventView:
    """An event as one caller sees it: with their role."""

    event: StoredEvent
    role: Role


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[EventView]
    next_cursor: str


class OccurrenceView(NamedTuple):
    start: datetime
    event_id: str
    title: str
    end: datetime


@dataclass(frozen=True, slots=True)
class ListQuery:
    start: datetime | None = None
    end: datetime | None = None
    text: str = ""
    role: Role | None = None
    limit: int = 0
    cursor: str = ""


class EventService:
    def __init__(
        self,
        settings: EventSettings,
        engine: AsyncEngine,
        cache: EventCache,
        notify: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._reader = autocommit(engine)
        self._cache = cache
        self._notify = notify

    # Reading

    async def get(self, caller: Caller, event_id: str) -> EventView:
        parsed = event_uuid(event_id)
        event, role = await self._read(parsed, caller)
        if role is None or event.deleted:
            raise NotFound(EVENT_NOT_FOUND)
        return EventView(event, role)

    async def get_version(self, caller: Caller, event_id: str) -> EventView:
        """The event's current version and the caller's role, also once deleted,
        from PostgreSQL (never older than the last acknowledged write)."""
        parsed = event_uuid(event_id)
        async with self._reader.connect() as conn:
            found = await repo.get_event_and_role(conn, parsed, uuid.UUID(caller.user_id))
        if found is None or found[1] is None:
            raise NotFound(EVENT_NOT_FOUND)
        return EventView(*found)  # type: ignore[arg-type]

    async def list_events(self, caller: Caller, query: ListQuery) -> EventPage:
        """Events the caller has a role on, newest first, keyset-paged."""
        limit = query.limit or DEFAULT_PAGE_SIZE
        errors = _window_errors(query.start, query.end, required=False)
        if not 1 <= limit <= MAX_PAGE_SIZE:
            errors.append({"field": "limit", "message": f"must be 1 to {MAX_PAGE_SIZE}"})
        after = None
        if query.cursor:
            after = _decode_cursor(query.cursor)
            if after is None:
                errors.append({"field": "cursor", "message": "is not a cursor this API issued"})
        if errors:
            raise InvalidArgument(errors)
        window = (query.start, query.end) if query.start or query.end else None
        fetch = limit + 1
        found: list[tuple[StoredEvent, Role]] = []
        async with self._reader.connect() as conn:
            while len(found) <= limit:
                batch = await repo.list_page(
                    conn,
                    uuid.UUID(caller.user_id),
                    role=query.role,
                    window=window,
                    text_filter=query.text,
                    after=after,
                    limit=fetch,
                )
                found += [(e, r) for e, r in batch if _occurs_in(e, query.start, query.end)]
                if len(batch) < fetch:
                    break
                last = batch[-1][0]
                after = (last.created_at, last.id)
        page = found[:limit]
        next_cursor = _encode_cursor(page[-1][0]) if len(found) > limit else ""
        return EventPage([EventView(e, r) for e, r in page], next_cursor)

    async def expand(
        self,
        caller: Caller,
        start: datetime | None,
        end: datetime | None,
        text: str,
        role: Role | None,
    ) -> list[OccurrenceView]:
        """Occurrences of every visible event in [start, end), by start time."""
        errors = _window_errors(start, end, required=True)
        if errors:
            raise InvalidArgument(errors)
        assert start is not None and end is not None
        async with self._reader.connect() as conn:
            rows = await repo.schedules_in_window(
                conn, uuid.UUID(caller.user_id), role, (start, end), text
            )
        found: list[OccurrenceView] = []
        for row in rows:
            event_id, title = str(row.id), row.title
            schedule = make_schedule(
                row.start_time, row.end_time, row.timezone, row.recurrence_rule
            )
            found += [
                OccurrenceView(o.start, event_id, title, o.end)
                for o in schedule.occurrences(start, end)
            ]
            if len(found) > MAX_EXPANDED_OCCURRENCES:
                raise _too_many_occurrences()
        found.sort()
        return found

    async def occurrences(
        self, caller: Caller, event_id: str, start: datetime | None, end: datetime | None
    ) -> list[OccurrenceView]:
        event = (await self.get(caller, event_id)).event
        errors = _window_errors(start, end, required=True)
        if errors:
            raise InvalidArgument(errors)
        assert start is not None and end is not None
        occurrences = event.schedule().occurrences(start, end, limit=MAX_EXPANDED_OCCURRENCES + 1)
        if len(occurrences) > MAX_EXPANDED_OCCURRENCES:
            raise _too_many_occurrences()
        event_id = str(event.id)
        return [OccurrenceView(o.start, event_id, event.title, o.end) for o in occurrences]

    # Writing

    async def create(self, caller: Caller, draft: EventDraft, allow_conflicts: bool) -> EventView:
        return (await self.create_many(caller, [draft], allow_conflicts, batch=False))[0]

    async def create_many(
        self, caller: Caller, drafts: list[EventDraft], allow_conflicts: bool, batch: bool = True
    ) -> list[EventView]:
        """Create every event or none. A batch names items in errors (`events.N.field`)
        and tells which item clashed (`index`)."""
        if batch and not 1 <= len(drafts) <= MAX_BATCH:
            raise InvalidArgument.field("events", f"must hold 1 to {MAX_BATCH} events")
        valid = validate_all(drafts, "events.") if batch else [validate(drafts[0])]
        owner = uuid.UUID(caller.user_id)
        now = utcnow()
        # A microsecond apart, so that newest-first lists show a batch's last item first.
        events = [
            _new_event(owner, item.draft, now + timedelta(microseconds=index))
            for index, item in enumerate(valid)
        ]
        async with self._engine.begin() as conn:
            await repo.lock_owner_calendar(conn, owner)
            if not allow_conflicts:
                await self._check_new_events(conn, owner, valid, batch)
            await repo.insert_events(
                conn,
                [
                    {**_row(event, item), "access_version": FIRST_ACCESS_VERSION}
                    for event, item in zip(events, valid, strict=True)
                ],
            )
            await repo.insert_access(conn, [_owner_access(event, caller) for event in events])
            created = [(event, "created", _created_changes(event)) for event in events]
            first_owners = [
                access_notification(
                    self._settings.namespace,
                    event.id,
                    caller.user_id,
                    event.created_at,
                    [
                        AccessChange(
                            user_id=caller.user_id, role=Role.OWNER, sequence=FIRST_ACCESS_VERSION
                        )
                    ],
                )
                for event in events
            ]
            await self._record(conn, created, caller, first_owners)
        # New events are not cached: no reader can hold an older version of them.
        self._notify()
        return [EventView(event, Role.OWNER) for event in events]

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
        allow_conflicts: bool,
        expected_version: int | None,
    ) -> EventView:
        """Restore earlier content as a new version (always a new version)."""
        return await self._change(
            caller, event_id, lambda _: draft, "rolled_back", allow_conflicts, expected_version
        )

    async def delete(self, caller: Caller, event_id: str, expected_version: int | None) -> None:
        parsed = event_uuid(event_id)
        await self.get(caller, event_id)  # 404 before 412 for a stranger, cheaply
        async with self._engine.begin() as conn:
            current, role = await self._lock_with_role(conn, parsed, caller)
            if not role.may_share:
                raise PermissionDenied("only an owner may delete the event")
            _check_version(current, expected_version)
            now = utcnow()
            deleted = replace(current, version=current.version + 1, updated_at=now, deleted=True)
            await repo.update_event(
                conn,
                parsed,
                {"version": deleted.version, "updated_at": now, "deleted_at": now},
            )
            await self._record(conn, [(deleted, "deleted", {})], caller)
        await self._written(deleted)

    async def _change(
        self,
        caller: Caller,
        event_id: str,
        new_content: Callable[[StoredEvent], EventDraft],
        change_type: ChangeType,
        allow_conflicts: bool,
        expected_version: int | None,
    ) -> EventView:
        parsed = event_uuid(event_id)
        owner = (await self.get(caller, event_id)).event.owner_id
        async with self._engine.begin() as conn:
            # The owner never changes, so its calendar can be locked before the event.
            await repo.lock_owner_calendar(conn, owner)
            current, role = await self._lock_with_role(conn, parsed, caller)
            if not role.may_edit:
                raise PermissionDenied(ROLE_TOO_LOW)
            valid = validate(new_content(current))
            _check_version(current, expected_version)
            changes = _changes(current.draft(), valid.draft)
            if not changes and change_type == "updated":
                return EventView(current, role)
            if not allow_conflicts and not current.draft().same_schedule(valid.draft):
                checked = [CheckedSchedule(valid.schedule)]
                clashes = (await self._clashes_in_calendar(conn, owner, checked, parsed))[0]
                if clashes:
                    raise _conflict(clashes)
            now = utcnow()
            updated = replace(
                current,
                **{name: getattr(valid.draft, name) for name in EDITABLE_FIELDS},
                version=current.version + 1,
                updated_at=now,
            )
            values = _row(updated, valid)
            for fixed in ("id", "owner_id", "created_at"):
                values.pop(fixed)
            await repo.update_event(conn, parsed, values)
            await self._record(conn, [(updated, change_type, changes)], caller)
        await self._written(updated)
        return EventView(updated, role)

    async def _check_new_events(
        self, conn: AsyncConnection, owner: uuid.UUID, valid: list[ValidEvent], batch: bool
    ) -> None:
        checked = [CheckedSchedule(item.schedule) for item in valid]
        in_calendar = await self._clashes_in_calendar(conn, owner, checked)
        for index, clashes in enumerate(in_calendar):
            clashes = clashes + clashes_with_earlier_items(checked, index)
            if clashes:
                clashes.sort(key=lambda clash: clash.occurrence.start)
                raise _conflict(clashes, index if batch else None)

    async def _clashes_in_calendar(
        self,
        conn: AsyncConnection,
        owner: uuid.UUID,
        checked: list[CheckedSchedule],
        exclude: uuid.UUID | None = None,
    ) -> list[list[Clash]]:
        """For each checked schedule, its clashes with the owner's stored events."""
        rows = await repo.clash_candidates(
            conn,
            owner,
            [(c.window_start, c.window_end, week_footprint(c.schedule)) for c in checked],
            exclude,
        )
        schedules: dict[uuid.UUID, Schedule] = {}
        candidates: list[list[tuple[str, Schedule]]] = [[] for _ in checked]
        for row in rows:
            schedule = schedules.get(row.id)
            if schedule is None:
                schedule = make_schedule(
                    row.start_time, row.end_time, row.timezone, row.recurrence_rule
                )
                schedules[row.id] = schedule
            candidates[row.item].append((str(row.id), schedule))
        return [find_clashes(c, existing) for c, existing in zip(checked, candidates, strict=True)]

    async def _record(
        self,
        conn: AsyncConnection,
        changes: list[tuple[StoredEvent, ChangeType, dict[str, dict[str, Any]]]],
        caller: Caller,
        more: list[outbox.Message] | None = None,
    ) -> None:
        """Queue change notifications (and `more`) in the transaction of the changes."""
        messages = []
        for event, change_type, fields in changes:
            change = EventChange(
                event_id=str(event.id),
                version=event.version,
                change_type=change_type,
                actor_id=caller.user_id,
                occurred_at=rfc3339(event.updated_at),
                snapshot=event.snapshot(),
                changes=fields,
            )
            subject = event_subject(self._settings.namespace, str(event.id))
            messages.append(
                (subject, f"{event.id}:{event.version}", orjson.dumps(change.model_dump()))
            )
        await outbox.enqueue_many(conn, outbox_table, messages + (more or []))

    async def _written(self, event: StoredEvent) -> None:
        """After commit: let the outbox relay publish, and replace the cached event."""
        self._notify()
        await self._cache.put(event.id, event)

    async def _read(self, event_id: uuid.UUID, caller: Caller) -> tuple[StoredEvent, Role | None]:
        """The event (maybe deleted) and the caller's role: one cache read, or one query
        whose result then fills the cache."""
        cached = await self._cache.get(event_id, caller.user_id)
        if cached is not None:
            return cached.event, cached.role
        async with self._reader.connect() as conn:
            found = await repo.get_event_and_access(conn, event_id)
        if found is None:
            raise NotFound(EVENT_NOT_FOUND)
        event, access = found
        await self._cache.put(event_id, event, access)
        return event, access.role_of(caller.user_id)

    @staticmethod
    async def _lock_with_role(
        conn: AsyncConnection, event_id: uuid.UUID, caller: Caller
    ) -> tuple[StoredEvent, Role]:
        """The live event, locked, and the caller's role on it as of now."""
        found = await repo.lock_live_event(conn, event_id, uuid.UUID(caller.user_id))
        if found is None or found[1] is None:
            raise NotFound(EVENT_NOT_FOUND)
        return found  # type: ignore[return-value]


def _new_event(owner: uuid.UUID, draft: EventDraft, now: datetime) -> StoredEvent:
    return StoredEvent(
        id=uuid.uuid4(),
        owner_id=owner,
        **{name: getattr(draft, name) for name in EDITABLE_FIELDS},
        version=1,
        created_at=now,
        updated_at=now,
    )


def _owner_access(event: StoredEvent, caller: Caller) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "user_id": event.owner_id,
        "role": Role.OWNER.value,
        "username": caller.username,
        "granted_by": event.owner_id,
        "granted_at": event.created_at,
        "event_created_at": event.created_at,
    }


def _row(event: StoredEvent, valid: ValidEvent) -> dict[str, Any]:
    schedule = valid.schedule
    return {
        "id": event.id,
        "owner_id": event.owner_id,
        **{name: getattr(event, name) for name in EDITABLE_FIELDS},
        "span": repo.span_range(schedule.start, schedule.span_end()),
        "footprint": repo.footprint_ranges(week_footprint(schedule)),
        "version": event.version,
        "created_at": event.created_at,
        "updated_at": event.updated_at,
    }


def _changes(old: EventDraft, new: EventDraft) -> dict[str, dict[str, Any]]:
    return {
        name: {"old": json_value(getattr(old, name)), "new": json_value(getattr(new, name))}
        for name in EDITABLE_FIELDS
        if getattr(old, name) != getattr(new, name)
    }


def _created_changes(event: StoredEvent) -> dict[str, dict[str, Any]]:
    return {
        name: {"old": None, "new": json_value(getattr(event, name))} for name in EDITABLE_FIELDS
    }


def _check_version(current: StoredEvent, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != current.version:
        raise PreconditionFailed(
            f"the event is at version {current.version}, not {expected_version}",
            current_version=current.version,
        )


def _conflict(clashes: list[Clash], index: int | None = None) -> Conflict:
    extra: dict[str, Any] = {"conflicts": [clash.as_json() for clash in clashes]}
    if index is not None:
        extra["index"] = index
    where = f"item {index}" if index is not None else "the event"
    return Conflict(
        f"{where} overlaps other events of the owner; set allow_conflicts to accept that",
        **extra,
    )


def _window_errors(
    start: datetime | None, end: datetime | None, required: bool
) -> list[dict[str, str]]:
    errors = []
    for name, value in (("start", start), ("end", end)):
        if value is None:
            if required:
                errors.append({"field": name, "message": "is required"})
        elif not MIN_YEAR <= value.year <= MAX_YEAR:
            errors.append({"field": name, "message": f"must be in the years {MIN_YEAR}-{MAX_YEAR}"})
    if errors or start is None or end is None:
        return errors
    if end <= start:
        errors.append({"field": "end", "message": "must be after start"})
    elif required and end - start > MAX_WINDOW:
        errors.append({"field": "end", "message": "the window may be at most one year long"})
    return errors


def _too_many_occurrences() -> InvalidArgument:
    return InvalidArgument.field(
        "end", f"the window holds more than {MAX_EXPANDED_OCCURRENCES} occurrences; narrow it"
    )


def _occurs_in(event: StoredEvent, start: datetime | None, end: datetime | None) -> bool:
    """Whether a series has an occurrence in the window; the SQL span test already
    decided for single events and for windows open at the start."""
    if not event.is_recurring or start is None:
        return True
    return bool(event.schedule().occurrences(start, end or _FAR_FUTURE, limit=1))


def _encode_cursor(event: StoredEvent) -> str:
    micros = (event.created_at - _EPOCH) // timedelta(microseconds=1)
    raw = f"{micros}:{event.id.hex}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, event_id = raw.split(":")
        created_at = _EPOCH + timedelta(microseconds=int(micros))
        return created_at, uuid.UUID(hex=event_id)
    except (ValueError, UnicodeDecodeError, OverflowError):
        return None
