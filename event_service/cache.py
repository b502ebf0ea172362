"""Read-through cache of single events in Redis.

Each entry holds an event and its version; writers store the new version after
commit, and a store only replaces an older version (compared inside Redis), so a
reader that loaded an older row before a write cannot put it back afterwards. A
deleted event is kept as a tombstone for the same reason. Roles are never cached.
When Redis fails the cache is bypassed for a moment: reads go to PostgreSQL. An
event whose new version could not be stored is not read from the cache by this
replica until a store succeeds; entries expire after a short TTL in any case.
"""

import logging
import time
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from event_service.models import StoredEvent

log = logging.getLogger(__name__)

# KEYS[1] entry; ARGV: version, payload, ttl seconds. Stores unless a newer or equal
# version is already there.
_STORE_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'event', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class EventCache:
    def __init__(self, redis: Redis, key_prefix: str, ttl: int, retry_after: float) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._ttl = ttl
        self._retry_after = retry_after
        self._bypass_until = 0.0
        # Events whose newest version this replica failed to store.
        self._unsynced: set[uuid.UUID] = set()
        self._store = redis.register_script(_STORE_IF_NEWER)

    def _key(self, event_id: uuid.UUID) -> str:
        return f"{self._prefix}:{event_id}"

    def _available(self) -> bool:
        return time.monotonic() >= self._bypass_until

    def _failed(self, error: Exception) -> None:
        self._bypass_until = time.monotonic() + self._retry_after
        log.warning("event cache bypassed", extra={"error": repr(error)})

    async def get(self, event_id: uuid.UUID) -> StoredEvent | None:
        """The cached event (`deleted` set for a tombstone), or None on a miss."""
        if not self._available() or event_id in self._unsynced:
            return None
        try:
            payload = await self._redis.hget(self._key(event_id), "event")
        except (RedisError, OSError) as error:
            self._failed(error)
            return None
        if payload is None:
            return None
        try:
            return StoredEvent.from_json(payload)
        except (ValueError, TypeError, KeyError):
            return None

    async def put(self, event: StoredEvent) -> None:
        """Store the event unless the cache holds the same or a newer version."""
        if not self._available():
            self._unsynced.add(event.id)
            return
        try:
            await self._store(
                keys=[self._key(event.id)], args=[event.version, event.to_json(), self._ttl]
            )
        except (RedisError, OSError) as error:
            self._unsynced.add(event.id)
            self._failed(error)
        else:
            self._unsynced.discard(event.id)
