"""The layout of the event read cache, shared by its one writer (the event service)
and its readers (the event service and the gateway, which answers cached reads
without a gRPC hop).

One Redis hash per event: `event` (the event's fields as JSON) with its `version`,
and the access list, a field `u:<user id>` per role holder, with its
`access_version`. The writer replaces each part only by a newer version
(`event_service.cache`), so a reader that finds both parts may trust them: one
HMGET answers an event and the caller's role.

Listings (`GET /api/events`, any query) are cached per user: a view key holds a
random token, and the pages computed under it live in the hash `pages:<user>:<token>`,
one field per query string. A write deletes the view key of every user whose listing
it changes, after commit; the next reader sets a new token, so pages stored under the
old one (even by a reader that queried before the commit and stores after it) are
never read again and expire.

Every reader counts its reads in `eventhub_cache_requests_total` (`CacheReads`).
"""

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import Counter
from redis.asyncio import Redis

from common.errors import EVENT_NOT_FOUND, NotFound
from common.roles import Role

CACHE_REQUESTS = Counter(
    "eventhub_cache_requests_total",
    "Reads of a Redis read cache: a hit answered from it, a miss read through (not cached,"
    " or the cache distrusted or unreachable)",
    ["cache", "result"],
)


class CacheReads:
    """Counts the reads of one cache (`event`, `listing`, `busy`); its label children are
    bound once."""

    __slots__ = ("_hits", "_misses")

    def __init__(self, cache: str) -> None:
        self._hits = CACHE_REQUESTS.labels(cache, "hit")
        self._misses = CACHE_REQUESTS.labels(cache, "miss")

    def count(self, hit: bool) -> None:
        (self._hits if hit else self._misses).inc()

    def count_many(self, hits: int, misses: int) -> None:
        self._hits.inc(hits)
        self._misses.inc(misses)


def event_cache_prefix(namespace: str) -> str:
    return f"{namespace}:events:event"


class ReaderTrust:
    """Whether a reader outside the event service may use the cache. While Redis is
    unreachable the event service cannot replace entries, so entries written before
    an outage may be stale once it is back (until the event service deletes them):
    a reader that saw Redis fail reads through the event service for one cache TTL,
    by when every such entry has expired."""

    def __init__(self, cache_ttl: float) -> None:
        self._cache_ttl = cache_ttl
        self._trusted_from = 0.0

    def redis_failed(self) -> None:
        self._trusted_from = time.monotonic() + self._cache_ttl

    def trusted(self) -> bool:
        return time.monotonic() >= self._trusted_from


@dataclass(frozen=True, slots=True)
class CachedEntry:
    """An event's cached JSON and one user's role on it (None: no role)."""

    payload: bytes
    role: Role | None


def entry_fields(user_id: str) -> tuple[str, str, str]:
    """The hash fields that answer an event and one user's role on it."""
    return ("event", "access_version", f"u:{user_id}")


def parse_entry(values: Sequence[bytes | None]) -> CachedEntry | None:
    """The entry from the values of `entry_fields`, or None unless both the event and
    its access list are cached."""
    payload, access_version, role = values
    if payload is None or access_version is None:
        return None
    try:
        return CachedEntry(payload, Role(role.decode()) if role else None)
    except ValueError:
        return None


def visible_event(entry: CachedEntry) -> tuple[dict[str, Any], Role] | None:
    """The cached event's stored fields and the reader's role on it: NotFound if the
    entry says the reader has none, None if the JSON is unreadable (read through the
    event service instead)."""
    if entry.role is None:
        raise NotFound(EVENT_NOT_FOUND)
    try:
        stored = orjson.loads(entry.payload)
    except orjson.JSONDecodeError:
        return None
    return (stored, entry.role) if isinstance(stored, dict) else None


async def read_entry(redis: Redis, key: str, user_id: str) -> CachedEntry | None:
    """The cached event and the user's role (see `parse_entry`). Redis errors
    propagate: each reader has its own policy."""
    return parse_entry(await redis.hmget(key, entry_fields(user_id)))


def view_prefix(namespace: str) -> str:
    return f"{namespace}:events:view"


def pages_prefix(namespace: str) -> str:
    return f"{namespace}:events:pages"


# KEYS[1] the user's view key; ARGV: pages prefix with the user (`...:pages:<user>`),
# query, a new token. Returns {token, page or false}; sets the token if there is none.
# (The page key depends on the token, so it cannot be declared: standalone Redis.)
# Users' view tokens, each set to a fresh one if missing, and the page stored under each
# for a query. KEYS: their view keys; ARGV[1]: the query, then per user the prefix of
# their page hashes and a fresh token. Flat answer: token, body (false: none) per user.
_READ_PAGES = """
local answer = {}
for i, view in ipairs(KEYS) do
  local token = redis.call('GET', view)
  if not token then
    token = ARGV[2 * i + 1]
    redis.call('SET', view, token, 'EX', 86400)
    answer[2 * i - 1], answer[2 * i] = token, false
  else
    answer[2 * i - 1] = token
    answer[2 * i] = redis.call('HGET', ARGV[2 * i] .. ':' .. token, ARGV[1])
  end
end
return answer
"""


@dataclass(frozen=True, slots=True)
class CachedPage:
    """A listing's cached body (None: not cached) and the token to store it under."""

    body: bytes | None
    token: str


class PageCache:
    """Listing pages per user and query (layout in the module docstring). Redis errors
    propagate: each reader has its own policy."""

    def __init__(self, redis: Redis, namespace: str, ttl: int) -> None:
        self._redis = redis
        self._views = view_prefix(namespace)
        self._pages = pages_prefix(namespace)
        self._ttl = ttl
        self._read_pages = redis.register_script(_READ_PAGES)

    async def read(self, user_id: str, query: str) -> CachedPage:
        return (await self.read_many([user_id], query))[0]

    async def store(self, user_id: str, page: CachedPage, query: str, body: bytes) -> None:
        await self.store_many([(user_id, page, body)], query)

    async def read_many(self, user_ids: Sequence[str], query: str) -> list[CachedPage]:
        """`read` for several users in one round trip."""
        args = [query]
        for user_id in user_ids:
            args += [f"{self._pages}:{user_id}", uuid.uuid4().hex]
        found = await self._read_pages(keys=[f"{self._views}:{u}" for u in user_ids], args=args)
        return [
            CachedPage(found[2 * i + 1] or None, found[2 * i].decode())
            for i in range(len(user_ids))
        ]

    async def store_many(self, pages: Sequence[tuple[str, CachedPage, bytes]], query: str) -> None:
        """Store (user id, the page read before computing it, body) in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id, page, body in pages:
                key = f"{self._pages}:{user_id}:{page.token}"
                pipe.hset(key, query, body)
                pipe.expire(key, self._ttl)
            await pipe.execute()
