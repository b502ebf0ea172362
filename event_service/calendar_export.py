"""Events as iCalendar (RFC 5545): one event, or everything a caller can see, in pages
that the gateway streams one after another, so that neither holds a whole calendar.

Each event version's VEVENTs are kept once written (a version never changes): the
library takes some 0.2 ms per event, and calendar apps poll whole calendars."""

import uuid
from collections import OrderedDict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common.db import autocommit
from common.errors import InvalidArgument
from common.tokens import Caller
from event_service import repo
from event_service.ical_export import (
    CALENDAR_TAIL,
    calendar_head,
    event_calendar,
    event_components,
)
from event_service.models import Event, EventAccess, StoredEvent
from event_service.reads import EventReader, decode_cursor, encode_cursor

PAGE_EVENTS = 500
KEPT_EVENTS = 50_000  # about 300 bytes each


class CalendarExport:
    def __init__(self, engine: AsyncEngine, reader: EventReader) -> None:
        self._engine = autocommit(engine)
        self._reader = reader
        self._kept: OrderedDict[tuple[uuid.UUID, int], bytes] = OrderedDict()

    async def event(self, caller: Caller, event_id: str) -> tuple[bytes, int]:
        """The event as a calendar, and its version (for an entity tag)."""
        view = await self._reader.get(caller, event_id)
        return event_calendar(view.event), view.event.version

    async def page(self, caller: Caller, cursor: str) -> tuple[bytes, str]:
        """A page of the caller's calendar (newest events first) and the cursor of the
        next one ("" after the last, which closes the calendar)."""
        user = uuid.UUID(caller.user_id)
        after = None
        if cursor:
            decoded = decode_cursor(cursor)
            if decoded is None:
                raise InvalidArgument.field("cursor", "is not a cursor this API issued")
            after = decoded[0]
        parts = []
        async with self._engine.connect() as conn:
            if after is None:
                parts.append(calendar_head(await _zones_of(conn, user)))
            found = await repo.list_page(
                conn,
                user,
                role=None,
                window=None,
                text_filter="",
                after=after,
                limit=PAGE_EVENTS + 1,
            )
        page = found[:PAGE_EVENTS]
        parts += [self._components(event) for event, _ in page]
        if len(found) > len(page):
            return b"".join(parts), encode_cursor(page[-1][0], None)
        return b"".join(parts) + CALENDAR_TAIL, ""

    def _components(self, event: StoredEvent) -> bytes:
        key = (event.id, event.version)
        found = self._kept.get(key)
        if found is None:
            found = self._kept[key] = event_components(event)
            if len(self._kept) > KEPT_EVENTS:
                self._kept.popitem(last=False)
        else:
            self._kept.move_to_end(key)
        return found


async def _zones_of(conn: AsyncConnection, user: uuid.UUID) -> list[str]:
    """The time zones of the live events the user can see: one VTIMEZONE each."""
    query = (
        select(Event.timezone)
        .join(EventAccess, EventAccess.event_id == Event.id)
        .where(EventAccess.user_id == user, Event.deleted_at.is_(None))
        .distinct()
    )
    return list((await conn.execute(query)).scalars())
