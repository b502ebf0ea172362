"""Reading events, independent of gRPC: one event, a listing, occurrences.

Roles live beside the events (`event_access`): a read takes the event and the
caller's role from one cache read or, on a miss, one query whose result fills the
cache; a listing is one keyset-paged query over the caller's access rows.
"""

import base64
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import autocommit
from common.errors import EVENT_NOT_FOUND, InvalidArgument, NotFound
from common.paging import items_within
from common.roles import Role
from common.timeutil import MAX_YEAR, MIN_YEAR
from common.tokens import Caller
from event_service import repo
from event_service.cache import EventCache
from event_service.domain.events import event_uuid, make_schedule
from event_service.domain.exceptions import (
    ExceptionIndex,
    Instance,
    SeriesValues,
    effective_times,
    instances,
    is_generated,
    overrides_from_json,
    parse_recurrence_id,
)
from event_service.domain.recurrence import Schedule
from event_service.models import StoredEvent

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
    # On the last page of an unfiltered listing: where a sync goes on from.
    sync_horizon: int | None = None


class OccurrenceView(NamedTuple):
    """An occurrence as it happens (exceptions applied); sorts by start, then by
    recurrence id."""

    start: datetime
    recurrence_id: datetime
    event_id: str
    end: datetime
    title: str
    description: str
    location: str
    cancelled: bool
    is_override: bool


@dataclass(frozen=True, slots=True)
class ListQuery:
    start: datetime | None = None
    end: datetime | None = None
    text: str = ""
    role: Role | None = None
    limit: int = 0
    cursor: str = ""


class EventReader:
    def __init__(self, engine: AsyncEngine, cache: EventCache) -> None:
        # Reads need no snapshot: autocommit spares BEGIN and ROLLBACK round trips.
        self._engine = autocommit(engine)
        self._cache = cache

    async def get(self, caller: Caller, event_id: str) -> EventView:
        parsed = event_uuid(event_id)
        event, role = await self.read(parsed, caller)
        if role is None or event.deleted:
            raise NotFound(EVENT_NOT_FOUND)
        return EventView(event, role)

    async def get_version(self, caller: Caller, event_id: str) -> EventView:
        """The event's current version and the caller's role, also once deleted,
        from PostgreSQL (never older than the last acknowledged write)."""
        parsed = event_uuid(event_id)
        async with self._engine.connect() as conn:
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
        after = horizon = None
        if query.cursor:
            decoded = decode_cursor(query.cursor)
            if decoded is None:
                errors.append({"field": "cursor", "message": "is not a cursor this API issued"})
            else:
                after, horizon = decoded
        if errors:
            raise InvalidArgument(errors)
        window = (query.start, query.end) if query.start or query.end else None
        syncable = window is None and not query.text and query.role is None
        fetch = limit + 1
        found: list[tuple[StoredEvent, Role]] = []
        async with self._engine.connect() as conn:
            if syncable and after is None:
                horizon = await repo.sync_horizon(conn)
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
        page = page[: items_within(event.answer_bytes() for event, _ in page)]
        views = [EventView(e, r) for e, r in page]
        horizon = horizon if syncable else None
        if len(found) > len(page):
            return EventPage(views, encode_cursor(page[-1][0], horizon))
        return EventPage(views, "", horizon)

    async def expand(
        self,
        caller: Caller,
        start: datetime | None,
        end: datetime | None,
        text: str,
        role: Role | None,
        show_cancelled: bool = False,
    ) -> list[OccurrenceView]:
        """Occurrences of every visible event in [start, end), by start time."""
        errors = _window_errors(start, end, required=True)
        if errors:
            raise InvalidArgument(errors)
        assert start is not None and end is not None
        async with self._engine.connect() as conn:
            rows = await repo.schedules_in_window(
                conn, uuid.UUID(caller.user_id), role, (start, end), text
            )
            if missing := _EXPANSIONS.exceptions_missing(rows):
                _EXPANSIONS.add_exceptions(rows, await repo.exceptions_of(conn, missing))
        found: list[OccurrenceView] = []
        for row in rows:
            expanded = _EXPANSIONS.of(row, start, end, show_cancelled)
            found += _views(str(row.id), row, expanded)
            if len(found) > MAX_EXPANDED_OCCURRENCES:
                raise _too_many_occurrences()
        found.sort()
        return found

    async def occurrences(
        self,
        caller: Caller,
        event_id: str,
        start: datetime | None,
        end: datetime | None,
        show_cancelled: bool = False,
    ) -> list[OccurrenceView]:
        event = (await self.get(caller, event_id)).event
        errors = _window_errors(start, end, required=True)
        if errors:
            raise InvalidArgument(errors)
        assert start is not None and end is not None
        found = instances(
            event.schedule(),
            overrides_from_json(event.overrides),
            start,
            end,
            show_cancelled=show_cancelled,
            limit=MAX_EXPANDED_OCCURRENCES + 1,
        )
        if len(found) > MAX_EXPANDED_OCCURRENCES:
            raise _too_many_occurrences()
        return _views(str(event.id), event, found)

    async def occurrence(
        self, caller: Caller, event_id: str, recurrence_id: str
    ) -> tuple[EventView, OccurrenceView]:
        """One occurrence by its recurrence id (cancelled or not), with its event."""
        view = await self.get(caller, event_id)
        original_start = occurrence_id(view.event, recurrence_id)
        return view, self.occurrence_of(view.event, original_start)

    @staticmethod
    def occurrence_of(event: StoredEvent, original_start: datetime) -> OccurrenceView:
        """The occurrence the rule generates at `original_start`, as it happens."""
        override = overrides_from_json(event.overrides).get(original_start)
        start, end = effective_times(override, original_start, event.schedule().duration)
        return _views(str(event.id), event, [Instance(original_start, start, end, override)])[0]

    # Writing

    async def read(self, event_id: uuid.UUID, caller: Caller) -> tuple[StoredEvent, Role | None]:
        """The event (maybe deleted) and the caller's role: one cache read, or one query
        whose result then fills the cache."""
        cached = await self._cache.get(event_id, caller.user_id)
        if cached is not None:
            return cached.event, cached.role
        async with self._engine.connect() as conn:
            found = await repo.get_event_and_access(conn, event_id)
        if found is None:
            raise NotFound(EVENT_NOT_FOUND)
        event, access = found
        await self._cache.put(event_id, event, access)
        return event, access.role_of(caller.user_id)


def occurrence_id(event: StoredEvent, recurrence_id: str) -> datetime:
    """The original start a recurrence id names: InvalidArgument if malformed, NotFound
    unless the event's rule generates an occurrence there."""
    original_start = parse_recurrence_id(recurrence_id)
    if original_start is None:
        raise InvalidArgument.field(
            "recurrence_id", "must be an occurrence's original start, e.g. 2026-03-02T09:00:00Z"
        )
    if not is_generated(event.schedule(), original_start):
        raise NotFound("the event has no occurrence with this recurrence_id")
    return original_start


def _views(event_id: str, series: Any, found: list[Instance]) -> list[OccurrenceView]:
    """`found` in the API's terms: an override's values over the series'; a cancelled
    occurrence with the series' values at its original time."""
    values = SeriesValues(series.title, series.description, series.location)
    views = []
    for instance in found:
        shown = values.under(instance.override)
        views.append(
            OccurrenceView(
                instance.start,
                instance.recurrence_id,
                event_id,
                instance.end,
                shown.title,
                shown.description,
                shown.location,
                instance.cancelled,
                instance.override is not None and not instance.cancelled,
            )
        )
    return views


class _ExpansionCache:
    """Occurrences of event versions in windows. Kept, since a version never changes
    and calendars ask for the same weeks and months again and again; expanding a
    thousand series costs more than the rest of the request. A series' exceptions,
    arranged for expanding (`ExceptionIndex`), are kept by version too, so that they
    are read from PostgreSQL and decoded once, not with every window."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._kept: OrderedDict[tuple[Any, ...], list[Instance]] = OrderedDict()
        self._exceptions: OrderedDict[tuple[Any, ...], ExceptionIndex] = OrderedDict()

    def exceptions_missing(self, rows: Sequence[Any]) -> list[tuple[uuid.UUID, int]]:
        """(id, version) of the rows with exceptions not kept yet."""
        return [
            (row.id, row.version)
            for row in rows
            if row.has_exceptions and (row.id, row.version) not in self._exceptions
        ]

    def add_exceptions(self, rows: Sequence[Any], found: dict[Any, dict[str, Any]]) -> None:
        """Keep the exceptions `repo.exceptions_of` found for `rows`."""
        for row in rows:
            stored = found.get((row.id, row.version))
            if stored is not None:
                index = ExceptionIndex(overrides_from_json(stored), row.end_time - row.start_time)
                keep_bounded(self._exceptions, (row.id, row.version), index, self._size)

    def of(
        self, row: Any, window_start: datetime, window_end: datetime, show_cancelled: bool
    ) -> list[Instance]:
        key = (row.id, row.version, window_start, window_end, show_cancelled)
        found = self._kept.get(key)
        if found is not None:
            self._kept.move_to_end(key)
            return found
        schedule: Schedule = make_schedule(
            row.start_time, row.end_time, row.timezone, row.recurrence_rule
        )
        index = self._exceptions.get((row.id, row.version)) if row.has_exceptions else None
        if row.has_exceptions and index is None:
            # Changed or deleted since the listing's query (a race with a write, whose
            # commit retires this listing): answered as read, not kept.
            return instances(schedule, {}, window_start, window_end)
        found = instances(
            schedule, index or {}, window_start, window_end, show_cancelled=show_cancelled
        )
        keep_bounded(self._kept, key, found, self._size)
        return found


def keep_bounded(kept: OrderedDict[Any, Any], key: Any, value: Any, size: int) -> None:
    """Keep `value` under `key`, forgetting the oldest kept beyond `size`."""
    kept[key] = value
    if len(kept) > size:
        kept.popitem(last=False)


_EXPANSIONS = _ExpansionCache(20_000)


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
    """Whether a series has an occurrence in the window (effective times, cancelled
    ones left out); the SQL span test already decided for single events and for
    windows open at the start."""
    if not event.is_recurring or start is None:
        return True
    overrides = overrides_from_json(event.overrides)
    return bool(instances(event.schedule(), overrides, start, end or _FAR_FUTURE, limit=1))


def encode_cursor(event: StoredEvent, horizon: int | None) -> str:
    """The position after `event`, with the sync horizon of the listing's first page
    (see `EventPage.sync_horizon`) if it has one."""
    micros = (event.created_at - _EPOCH) // timedelta(microseconds=1)
    raw = f"{micros}:{event.id.hex}" + (f":{horizon}" if horizon is not None else "")
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[tuple[datetime, uuid.UUID], int | None] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, event_id, *horizon = raw.split(":")
        created_at = _EPOCH + timedelta(microseconds=int(micros))
        if len(horizon) > 1 or (horizon and not horizon[0].isdigit()):
            return None
        return (created_at, uuid.UUID(hex=event_id)), int(horizon[0]) if horizon else None
    except (ValueError, UnicodeDecodeError, OverflowError):
        return None
