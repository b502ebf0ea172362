"""Incremental sync: every event whose view changed for the caller since a token.

Positions are PostgreSQL transaction ids (`xid8`). Each access row holds the id of
the transaction that last changed what its user sees of the event (`changed_in`: the
event's every version, the user's role); `access_lost` holds the same for roles taken
away. Both commit with the change itself, so a sync reads its writes.

A token holds the horizon of a snapshot: the oldest transaction still running when it
was taken (`pg_snapshot_xmin`). Everything older was visible to that read, so the next
sync asks for rows changed at or after the horizon: nothing is missed, and a change
seen then may come again. One sync's pages all read as of the snapshot of its first
page (its rows changed later wait for the next sync), so an event comes at most once
per sync, at the place of its latest change.

Tokens and cursors are signed and name their user: another user's, a forged or an
altered one is refused (410), and so is one older than `TOKEN_LIFETIME`, after which
the `access_lost` rows it would need may be gone.
"""

import asyncio
import base64
import hashlib
import hmac
import logging
import struct
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import autocommit
from common.errors import DomainError, InvalidArgument
from common.paging import items_within
from common.roles import Role
from common.timeutil import utcnow
from common.tokens import Caller
from event_service.models import SCHEMA, StoredEvent
from event_service.reads import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, EventView
from event_service.write_repo import EVENT_FIELDS

log = logging.getLogger(__name__)

TOKEN_LIFETIME = timedelta(days=7)
# Roles taken away are remembered a day longer than a token lives.
KEEP_LOST_ACCESS = TOKEN_LIFETIME + timedelta(days=1)
PURGE_INTERVAL = 3600.0
TOKEN_GONE = "the sync token is unknown, expired or another user's: resync from a full listing"


class Gone(DomainError):
    """A sync token that cannot be honoured (answered 410)."""

    code = grpc.StatusCode.OUT_OF_RANGE
    title = "Gone"


@dataclass(frozen=True, slots=True)
class Tombstone:
    """An event the caller can no longer see: deleted, or their role taken away."""

    event_id: uuid.UUID
    version: int
    reason: str  # "deleted" | "access_lost"


@dataclass(frozen=True, slots=True)
class SyncPage:
    items: list[EventView | Tombstone]
    next_cursor: str
    next_sync_token: str


@dataclass(frozen=True, slots=True)
class _Position:
    """Where a sync stands: changes since `since` as of `snapshot`, after a key."""

    since: int
    snapshot: str
    after: tuple[int, uuid.UUID]


_TOKEN, _CURSOR = b"t", b"c"
_HEAD = struct.Struct(">c16sIQ")  # kind, user, issued at (s), horizon
_AFTER = struct.Struct(">Q16s")  # position of the last item, its event id
_MAC_BYTES = 16


class SyncTokens:
    """Signs and reads sync tokens and sync cursors (HMAC-SHA256 with a key of their own
    derived from the service key)."""

    def __init__(self, service_key: bytes) -> None:
        self._key = hmac.digest(service_key, b"eventhub sync tokens v1", hashlib.sha256)

    def token(self, user_id: uuid.UUID, horizon: int) -> str:
        return self._sign(_HEAD.pack(_TOKEN, user_id.bytes, int(time.time()), horizon))

    def cursor(self, user_id: uuid.UUID, position: _Position) -> str:
        head = _HEAD.pack(_CURSOR, user_id.bytes, int(time.time()), position.since)
        after = _AFTER.pack(position.after[0], position.after[1].bytes)
        return self._sign(head + after + position.snapshot.encode())

    def horizon_of(self, token: str, user_id: uuid.UUID) -> int:
        """The horizon of a token issued to the user; Gone for anything else."""
        body = self._verified(token, _TOKEN, user_id)
        if len(body) != _HEAD.size:
            raise Gone(TOKEN_GONE)
        return _HEAD.unpack(body)[3]

    def position_of(self, cursor: str, user_id: uuid.UUID) -> _Position:
        body = self._verified(cursor, _CURSOR, user_id)
        try:
            after_xid, after_id = _AFTER.unpack_from(body, _HEAD.size)
            snapshot = body[_HEAD.size + _AFTER.size :].decode("ascii")
        except (struct.error, UnicodeDecodeError):
            raise Gone(TOKEN_GONE) from None
        since = _HEAD.unpack_from(body)[3]
        return _Position(since, snapshot, (after_xid, uuid.UUID(bytes=after_id)))

    def _sign(self, body: bytes) -> str:
        mac = hmac.digest(self._key, body, hashlib.sha256)[:_MAC_BYTES]
        return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    def _verified(self, text: str, kind: bytes, user_id: uuid.UUID) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except ValueError:
            raise Gone(TOKEN_GONE) from None
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        expected = hmac.digest(self._key, body, hashlib.sha256)[:_MAC_BYTES]
        if len(body) < _HEAD.size or not hmac.compare_digest(mac, expected):
            raise Gone(TOKEN_GONE)
        found_kind, user, issued_at, _ = _HEAD.unpack_from(body)
        lifetime = TOKEN_LIFETIME.total_seconds()
        if found_kind != kind or user != user_id.bytes or time.time() - issued_at > lifetime:
            raise Gone(TOKEN_GONE)
        return body


def snapshot_horizon(snapshot: str) -> int:
    """The oldest transaction a snapshot (`xmin:xmax:xip,...`) saw running."""
    return int(snapshot.split(":", 1)[0])


# One page: the caller's rows changed since the horizon, by (transaction, event), as
# of the sync's snapshot (the statement's own on a first page, which it returns), the
# event of each. The snapshot row comes even when the page is empty.
_PAGE = f"""
    WITH snap AS (
        SELECT coalesce(%(snapshot)s::pg_snapshot, pg_current_snapshot()) AS s
    ), changed AS (
        (SELECT a.event_id, a.changed_in, a.role, NULL::bigint AS lost_version
         FROM {SCHEMA}.event_access AS a, snap
         WHERE a.user_id = %(user)s AND a.changed_in >= %(since)s::text::xid8
           AND (a.changed_in, a.event_id) > (%(after_xid)s::text::xid8, %(after_id)s)
           AND pg_visible_in_snapshot(a.changed_in, snap.s)
         ORDER BY a.changed_in, a.event_id LIMIT %(limit)s)
        UNION ALL
        (SELECT l.event_id, l.changed_in, NULL, l.version
         FROM {SCHEMA}.access_lost AS l, snap
         WHERE l.user_id = %(user)s AND l.changed_in >= %(since)s::text::xid8
           AND (l.changed_in, l.event_id) > (%(after_xid)s::text::xid8, %(after_id)s)
           AND pg_visible_in_snapshot(l.changed_in, snap.s)
         ORDER BY l.changed_in, l.event_id LIMIT %(limit)s)
    )
    SELECT snap.s::text, page.*
    FROM snap LEFT JOIN LATERAL (
        SELECT c.changed_in::text::bigint, c.role, c.lost_version, {EVENT_FIELDS},
            e.deleted_at IS NOT NULL AS deleted
        FROM changed AS c JOIN {SCHEMA}.events AS e ON e.id = c.event_id
        ORDER BY c.changed_in, c.event_id LIMIT %(limit)s
    ) AS page ON true
"""
_NO_EVENT = uuid.UUID(int=0)


class SyncReader:
    def __init__(self, engine: AsyncEngine, tokens: SyncTokens) -> None:
        self._engine = autocommit(engine)
        self._tokens = tokens

    async def sync(self, caller: Caller, token: str, cursor: str, limit: int) -> SyncPage:
        """One page of the caller's changes since `token` (a first page) or of the sync
        `cursor` continues (with its token)."""
        limit = limit or DEFAULT_PAGE_SIZE
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidArgument.field("limit", f"must be 1 to {MAX_PAGE_SIZE}")
        user = uuid.UUID(caller.user_id)
        since = self._tokens.horizon_of(token, user)
        if cursor:
            try:
                position = self._tokens.position_of(cursor, user)
            except Gone:
                position = None
            if position is None or position.since != since:
                raise InvalidArgument.field("cursor", "is not a cursor of this sync")
        else:
            position = _Position(since, "", (0, _NO_EVENT))
        async with self._engine.connect() as conn:
            result = await conn.exec_driver_sql(
                _PAGE,
                {
                    "snapshot": position.snapshot or None,
                    "user": user,
                    "since": str(since),
                    "after_xid": str(position.after[0]),
                    "after_id": position.after[1],
                    "limit": limit + 1,
                },
            )
            rows = result.all()
        snapshot = rows[0][0]
        rows = [row for row in rows if row[1] is not None]
        items = [_item(row) for row in rows[:limit]]
        items = items[: items_within(map(_answer_bytes, items))]
        if len(items) < len(rows):
            last = rows[len(items) - 1]
            after = _Position(since, snapshot, (last[1], last[4]))
            return SyncPage(items, self._tokens.cursor(user, after), "")
        return SyncPage(items, "", self._tokens.token(user, snapshot_horizon(snapshot)))

    def token(self, user_id: uuid.UUID, horizon: int) -> str:
        return self._tokens.token(user_id, horizon)


_TOMBSTONE_BYTES = 100


def _answer_bytes(item: EventView | Tombstone) -> int:
    return item.event.answer_bytes() if isinstance(item, EventView) else _TOMBSTONE_BYTES


def _item(row: tuple) -> EventView | Tombstone:  # type: ignore[type-arg]
    _, _, role, lost_version = row[:4]
    event = StoredEvent(*row[4:])
    if role is None:
        return Tombstone(event.id, lost_version, "access_lost")
    if event.deleted:
        return Tombstone(event.id, event.version, "deleted")
    return EventView(event, Role(role))


async def purge_lost_access(engine: AsyncEngine) -> None:
    """Forget roles taken away longer ago than any token lives, hourly, forever."""
    while True:
        try:
            async with engine.begin() as conn:
                await conn.exec_driver_sql(
                    f"DELETE FROM {SCHEMA}.access_lost WHERE lost_at < %(before)s",
                    {"before": utcnow() - KEEP_LOST_ACCESS},
                )
        except Exception as error:  # the next round tries again
            log.warning("purging lost access failed", extra={"error": repr(error)})
        await asyncio.sleep(PURGE_INTERVAL)
