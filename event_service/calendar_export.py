"""Events as iCalendar (RFC 5545): one event, or everything a caller can see, in pages
that the gateway streams one after another, so that neither holds a whole calendar.

Each event version's VEVENTs are kept once written (a version never changes): the
library takes some 0.2 ms per event, and calendar apps poll whole calendars."""

import hashlib
import secrets
import uuid
from collections import OrderedDict
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common.db import autocommit
from common.errors import InvalidArgument, NotFound
from common.timeutil import utcnow
from common.tokens import Caller
from event_service import repo
from event_service.ical_export import (
    CALENDAR_TAIL,
    calendar_head,
    event_calendar,
    event_components,
)
from event_service.models import CalendarFeed, Event, EventAccess, StoredEvent
from event_service.reads import EventReader, decode_cursor, encode_cursor, keep_bounded

PAGE_EVENTS = 500
FEED_SECRET_BYTES = 24  # 192 random bits in the URL
FEED_NOT_FOUND = "no such calendar feed"
KEPT_EVENTS = 50_000  # about 300 bytes each


class CalendarExport:
    def __init__(self, engine: AsyncEngine, reader: EventReader) -> None:
        self._writes = engine
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
        return await self._page(uuid.UUID(caller.user_id), cursor)

    async def rotate_feed(self, caller: Caller) -> tuple[str, datetime]:
        """A new secret for the caller's feed, replacing any earlier one at once."""
        secret, created_at = secrets.token_urlsafe(FEED_SECRET_BYTES), utcnow()
        row = {"user_id": uuid.UUID(caller.user_id), "secret_hash": _hash(secret)}
        statement = upsert(CalendarFeed).values(**row, created_at=created_at)
        async with self._writes.begin() as conn:
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[CalendarFeed.user_id],
                    set_={"secret_hash": statement.excluded.secret_hash, "created_at": created_at},
                )
            )
        return secret, created_at

    async def delete_feed(self, caller: Caller) -> None:
        async with self._writes.begin() as conn:
            deleted = await conn.execute(
                delete(CalendarFeed).where(CalendarFeed.user_id == uuid.UUID(caller.user_id))
            )
        if deleted.rowcount == 0:
            raise NotFound("you have no calendar feed")

    async def feed_page(self, secret: str, cursor: str) -> tuple[bytes, str]:
        """A page of the calendar of the feed's owner; NotFound for an unknown secret."""
        async with self._engine.connect() as conn:
            owner = await conn.scalar(
                select(CalendarFeed.user_id).where(CalendarFeed.secret_hash == _hash(secret))
            )
        if owner is None:
            raise NotFound(FEED_NOT_FOUND)
        return await self._page(owner, cursor)

    async def _page(self, user: uuid.UUID, cursor: str) -> tuple[bytes, str]:
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
        found = self._kept.get((event.id, event.version))
        if found is None:
            found = event_components(event)
            keep_bounded(self._kept, (event.id, event.version), found, KEPT_EVENTS)
        return found


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


async def _zones_of(conn: AsyncConnection, user: uuid.UUID) -> list[str]:
    """The time zones of the live events the user can see: one VTIMEZONE each."""
    query = (
        select(Event.timezone)
        .join(EventAccess, EventAccess.event_id == Event.id)
        .where(EventAccess.user_id == user, Event.deleted_at.is_(None))
        .distinct()
    )
    return list((await conn.execute(query)).scalars())
