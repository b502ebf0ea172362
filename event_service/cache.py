"""Read-through cache of events and their access lists in Redis (layout:
`common.event_cache`), so one HMGET answers a read: the event and the caller's
role. Writers store the new event or access list after
commit, and a store only replaces an older version of each part (compared inside
Redis), so a reader that loaded older rows before a write cannot put them back
afterwards. A deleted event is kept as a tombstone for the same reason.
When Redis fails the cache is bypassed for a moment: reads go to PostgreSQL. An
event whose new version could not be stored is not read from the cache by this
replica until a store succeeds, and its entry is deleted once Redis answers again.

Writers also retire the listing views (`common.event_cache`) of every user whose
listing a write changes; a retirement that fails is retried until Redis answers.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.event_cache import CacheReads, read_entry
from common.roles import Role
from event_service.models import StoredEvent
from event_service.repo import AccessList

log = logging.getLogger(__name__)

# KEYS[1] entry, KEYS[2..] view keys to delete (listings the write changed); ARGV: ttl,
# event version (0: no event), event payload, access version (0: no access list), then
# user id, role pairs. Each part is stored unless a newer or equal version of it is
# already there.
_STORE_IF_NEWER = """
local stored = false
local version = tonumber(ARGV[2])
if version > 0 then
  local current = redis.call('HGET', KEYS[1], 'version')
  if not current or tonumber(current) < version then
    redis.call('HSET', KEYS[1], 'version', ARGV[2], 'event', ARGV[3])
    stored = true
  end
end
local access_version = tonumber(ARGV[4])
if access_version > 0 then
  local current = redis.call('HGET', KEYS[1], 'access_version')
  if not current or tonumber(current) < access_version then
    for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
      if string.sub(field, 1, 2) == 'u:' then redis.call('HDEL', KEYS[1], field) end
    end
    redis.call('HSET', KEYS[1], 'access_version', ARGV[4])
    for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], 'u:' .. ARGV[i], ARGV[i + 1]) end
    stored = true
  end
end
if stored then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if #KEYS > 1 then redis.call('DEL', unpack(KEYS, 2)) end
return stored and 1 or 0
"""


@dataclass(frozen=True, slots=True)
class CachedRead:
    event: StoredEvent
    role: Role | None


class EventCache:
    def __init__(
        self, redis: Redis, key_prefix: str, view_prefix: str, ttl: int, retry_after: float
    ) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._view_prefix = view_prefix
        self._ttl = ttl
        self._retry_after = retry_after
        self._bypass_until = 0.0
        # Events whose newest version or access list this replica failed to store.
        self._unsynced: set[uuid.UUID] = set()
        self._dropping: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._store = redis.register_script(_STORE_IF_NEWER)
        # View keys this replica failed to delete, and the task retrying them.
        self._stale_views: set[str] = set()
        self._retiring: asyncio.Task[None] | None = None
        self._reads = CacheReads("event")

    def _key(self, event_id: uuid.UUID) -> str:
        return f"{self._prefix}:{event_id}"

    def _available(self) -> bool:
        return time.monotonic() >= self._bypass_until

    def _lost_store(self, event_id: uuid.UUID) -> None:
        """A newer version could not be stored: this replica stops reading the entry,
        and the entry is deleted as soon as Redis answers again, so that no reader
        (another replica, the gateway) serves it for the rest of its TTL."""
        self._unsynced.add(event_id)
        if event_id not in self._dropping:
            self._dropping[event_id] = asyncio.create_task(self._drop(event_id))

    async def _drop(self, event_id: uuid.UUID) -> None:
        deadline = time.monotonic() + self._ttl
        try:
            while time.monotonic() < deadline:
                try:
                    await self._redis.delete(self._key(event_id))
                    return
                except (RedisError, OSError):
                    await asyncio.sleep(self._retry_after)
        finally:
            self._dropping.pop(event_id, None)

    def _view_keys(self, user_ids: Iterable[uuid.UUID | str]) -> set[str]:
        """The view keys to delete after a commit that changed these users' listings:
        their cached pages are never read again (a new view token is drawn on the
        next listing)."""
        return {f"{self._view_prefix}:{user}" for user in user_ids}

    def _retire_later(self, keys: set[str]) -> None:
        self._stale_views |= keys
        if keys and self._retiring is None:
            self._retiring = asyncio.create_task(self._retire_stale_views())

    async def _retire_stale_views(self) -> None:
        """Until Redis answers: a stale view would serve old pages for as long as
        listings keep being stored under it, so there is no giving up."""
        try:
            while self._stale_views:
                keys = list(self._stale_views)
                try:
                    await self._redis.delete(*keys)
                    self._stale_views.difference_update(keys)
                except (RedisError, OSError):
                    await asyncio.sleep(self._retry_after)
        finally:
            self._retiring = None

    def _failed(self, error: Exception) -> None:
        self._bypass_until = time.monotonic() + self._retry_after
        log.warning("event cache bypassed", extra={"error": repr(error)})

    async def get(self, event_id: uuid.UUID, user_id: str) -> CachedRead | None:
        """The cached event (`deleted` set for a tombstone) and the user's role, or
        None unless both the event and its access list are cached."""
        cached = await self._read(event_id, user_id)
        self._reads.count(cached is not None)
        return cached

    async def _read(self, event_id: uuid.UUID, user_id: str) -> CachedRead | None:
        if not self._available() or event_id in self._unsynced:
            return None
        try:
            entry = await read_entry(self._redis, self._key(event_id), user_id)
        except (RedisError, OSError) as error:
            self._failed(error)
            return None
        if entry is None:
            return None
        try:
            return CachedRead(StoredEvent.from_json(entry.payload), entry.role)
        except (ValueError, TypeError, KeyError):
            return None

    async def put_new(
        self, events: list[StoredEvent], access_version: int, retiring: Iterable[uuid.UUID]
    ) -> None:
        """Store new events, each with its first access list: its owner's role, and
        retire the listings of `retiring` (`_view_keys`), in one round trip. (Any
        newer version stored meanwhile wins, as always; a failure leaves no entry
        that could be stale.)"""
        views = self._view_keys(retiring)
        if not self._available():
            self._retire_later(views)
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for index, event in enumerate(events):
                    owner_only = AccessList(access_version, {str(event.owner_id): Role.OWNER})
                    keys = [self._key(event.id), *(views if index == 0 else ())]
                    await self._store(keys=keys, args=self._args(event, owner_only), client=pipe)
                await pipe.execute()
        except (RedisError, OSError) as error:
            self._failed(error)
            self._retire_later(views)

    def _args(
        self, event: StoredEvent | None, access: AccessList | None
    ) -> list[str | int | bytes]:
        """The store script's arguments (see `_STORE_IF_NEWER`)."""
        args: list[str | int | bytes] = [
            self._ttl,
            event.version if event else 0,
            event.to_json() if event else b"",
            access.version if access else 0,
        ]
        for user, role in (access.roles if access else {}).items():
            args += [user, role.value]
        return args

    async def put(
        self,
        event_id: uuid.UUID,
        event: StoredEvent | None,
        access: AccessList | None = None,
        retiring: Iterable[uuid.UUID | str] = (),
    ) -> None:
        """Store the event and/or its access list, each unless the cache holds the same
        or a newer version of it, and retire the listings of `retiring`
        (`_view_keys`), in one round trip."""
        views = self._view_keys(retiring)
        if not self._available():
            self._lost_store(event_id)
            self._retire_later(views)
            return
        try:
            await self._store(keys=[self._key(event_id), *views], args=self._args(event, access))
        except (RedisError, OSError) as error:
            self._failed(error)
            self._lost_store(event_id)
            self._retire_later(views)
        else:
            if event is not None and access is not None:  # the whole entry is current again
                self._unsynced.discard(event_id)
