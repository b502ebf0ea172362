"""The layout of the event read cache, shared by its one writer (the event service)
and its readers (the event service and the gateway, which answers cached reads
without a gRPC hop).

One Redis hash per event: `event` (the event's fields as JSON) with its `version`,
and the access list, a field `u:<user id>` per role holder, with its
`access_version`. The writer replaces each part only by a newer version
(`event_service.cache`), so a reader that finds both parts may trust them: one
HMGET answers an event and the caller's role.
"""

from dataclasses import dataclass

from redis.asyncio import Redis

from common.roles import Role


def event_cache_prefix(namespace: str) -> str:
    return f"{namespace}:events:event"


@dataclass(frozen=True, slots=True)
class CachedEntry:
    """An event's cached JSON and one user's role on it (None: no role)."""

    payload: bytes
    role: Role | None


async def read_entry(redis: Redis, key: str, user_id: str) -> CachedEntry | None:
    """The cached event and the user's role, or None unless both the event and its
    access list are cached. Redis errors propagate: each reader has its own policy."""
    payload, access_version, role = await redis.hmget(
        key, ("event", "access_version", f"u:{user_id}")
    )
    if payload is None or access_version is None:
        return None
    try:
        return CachedEntry(payload, Role(role.decode()) if role else None)
    except ValueError:
        return None
