"""Cached event reads and listings answered at the gateway: one Redis read instead
of a gRPC hop (for a read by id, the same round trip as the caller's admission,
`gateway.deps`).

The event service owns the cache (`common.event_cache`) and replaces an entry with
every newer version of the event or its access list before it acknowledges the
change, so an entry holding both the event and the access list is current. A miss,
a malformed id or a Redis failure falls through to the event service, which reads
PostgreSQL and fills the cache.

One case needs care: entries written before a Redis outage may be stale once Redis
is back, so the gateway does not trust the cache for one cache TTL after it saw
Redis fail (`common.event_cache.ReaderTrust`) and reads through the event service,
which knows which events it could not store.

Listings work alike (`common.event_cache.PageCache`): a page is looked up under the
caller's current view token; on a miss the gateway asks the event service and stores
the answer under the token it read before asking, which a write since then has
already made unreachable.
"""

import logging
import uuid
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.errors import EVENT_NOT_FOUND, NotFound
from common.event_cache import (
    CachedPage,
    CacheReads,
    PageCache,
    ReaderTrust,
    entry_fields,
    event_cache_prefix,
    parse_entry,
    visible_event,
)
from common.tokens import Caller
from gateway.ratelimit import HashRead

log = logging.getLogger(__name__)

_TIMES = ("start_time", "end_time", "created_at", "updated_at")


class CachedEvents:
    def __init__(self, redis: Redis, namespace: str, cache_ttl: float) -> None:
        self._redis = redis
        self._prefix = event_cache_prefix(namespace)
        self._trust = ReaderTrust(cache_ttl)
        self._pages = PageCache(redis, namespace, int(cache_ttl))
        self._event_reads = CacheReads("event")
        self._listing_reads = CacheReads("listing")

    def redis_failed(self) -> None:
        """Distrust entries for one TTL: some may predate writes made meanwhile."""
        self._trust.redis_failed()

    def _unreadable(self, error: Exception) -> None:
        log.warning("event cache unreadable", extra={"error": repr(error)})
        self.redis_failed()

    async def page(self, caller: Caller, query: str) -> CachedPage | None:
        """The caller's cached listing for this query string (`body` None if it is
        not cached yet), or None if the cache cannot answer."""
        page = await self._read_page(caller, query)
        self._listing_reads.count(page is not None and page.body is not None)
        return page

    async def _read_page(self, caller: Caller, query: str) -> CachedPage | None:
        if not self._trust.trusted():
            return None
        try:
            return await self._pages.read(caller.user_id, query)
        except (RedisError, OSError) as error:
            self._unreadable(error)
            return None

    async def store_page(self, caller: Caller, page: CachedPage, query: str, body: bytes) -> None:
        """Keep a listing the event service answered, under the token read before."""
        try:
            await self._pages.store(caller.user_id, page, query, body)
        except (RedisError, OSError) as error:
            self._unreadable(error)

    def entry_read(self, event_id: str, caller: Caller) -> HashRead | None:
        """The Redis read that answers the event and the caller's role, or None if the
        cache cannot answer (distrusted, or not an event id)."""
        if not self._trust.trusted():
            return None
        try:
            key = f"{self._prefix}:{uuid.UUID(event_id)}"
        except ValueError:
            return None
        return HashRead(key, entry_fields(caller.user_id))

    def event(self, values: list[bytes | None] | None) -> dict[str, Any] | None:
        """The event's response fields with the caller's role from the values of
        `entry_read` (None: there was none), NotFound if the cache says the caller may
        not see it, or None if the cache cannot answer."""
        try:
            fields = None if values is None else self._event_fields(values)
        except NotFound:  # an answer from the cache too
            self._event_reads.count(hit=True)
            raise
        self._event_reads.count(fields is not None)
        return fields

    def _event_fields(self, values: list[bytes | None]) -> dict[str, Any] | None:
        entry = parse_entry(values)
        visible = visible_event(entry) if entry else None
        if visible is None:
            return None
        stored, role = visible
        try:
            if stored["deleted"]:
                raise NotFound(EVENT_NOT_FOUND)
            return {
                "id": stored["id"],
                "title": stored["title"],
                "description": stored["description"],
                "location": stored["location"],
                **{name: datetime.fromisoformat(stored[name]) for name in _TIMES[:2]},
                "timezone": stored["timezone"],
                "is_recurring": stored["is_recurring"],
                "recurrence_rule": stored["recurrence_rule"],
                "owner_id": stored["owner_id"],
                "role": role.value,
                "version": stored["version"],
                **{name: datetime.fromisoformat(stored[name]) for name in _TIMES[2:]},
                "overrides": stored["overrides"],
            }
        except (KeyError, TypeError, ValueError):
            return None
