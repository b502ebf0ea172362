"""The event service, as the history service needs it: an event's current version
with the caller's role, and rollback."""

import logging
import uuid
from dataclasses import dataclass

import grpc
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.errors import NotFound
from common.event_cache import (
    CacheReads,
    ReaderTrust,
    event_cache_prefix,
    read_entry,
    visible_event,
)
from common.roles import Role
from common.upstream import call
from eventhub.events.v1 import events_pb2
from eventhub.events.v1.events_pb2_grpc import EventServiceStub

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurrentVersion:
    version: int
    deleted: bool
    # The caller's role; the event service answers NOT_FOUND without one.
    role: Role


class EventClient:
    """Acts as the current caller (the event service checks the role itself).

    An event's current version and the caller's role come from the event service's
    read cache when it holds them (one Redis read, as the gateway's cached reads do;
    the event service replaces the entry before it acknowledges a change, so a
    revoked role is gone from it at once), else from the event service: under
    writes, the call waits behind them and made up half of a history read."""

    def __init__(self, channel: grpc.aio.Channel, cache: "CachedVersions") -> None:
        self._events = EventServiceStub(channel)
        self._cache = cache

    async def current_version(self, event_id: uuid.UUID, user_id: str) -> CurrentVersion:
        cached = await self._cache.current_version(event_id, user_id)
        if cached is not None:
            return cached
        response = await call(
            self._events.GetEventVersion, events_pb2.GetEventVersionRequest(id=str(event_id))
        )
        role = Role.from_proto(response.role)
        assert role is not None, "the event service answers NOT_FOUND without a role"
        return CurrentVersion(response.version, response.deleted, role)

    async def rollback(self, request: events_pb2.RollbackEventRequest) -> events_pb2.Event:
        return await call(self._events.RollbackEvent, request)


class CachedVersions:
    """Current versions and roles from the event read cache (`common.event_cache`)."""

    def __init__(self, redis: Redis, namespace: str, cache_ttl: float) -> None:
        self._redis = redis
        self._prefix = event_cache_prefix(namespace)
        self._trust = ReaderTrust(cache_ttl)
        self._reads = CacheReads("event")

    async def current_version(self, event_id: uuid.UUID, user_id: str) -> CurrentVersion | None:
        """None if the cache cannot answer; NotFound if it says the user has no role."""
        try:
            current = await self._read(event_id, user_id)
        except NotFound:  # an answer from the cache too
            self._reads.count(hit=True)
            raise
        self._reads.count(current is not None)
        return current

    async def _read(self, event_id: uuid.UUID, user_id: str) -> CurrentVersion | None:
        if not self._trust.trusted():
            return None
        try:
            entry = await read_entry(self._redis, f"{self._prefix}:{event_id}", user_id)
        except (RedisError, OSError) as error:
            log.warning("event cache unreadable", extra={"error": repr(error)})
            self._trust.redis_failed()
            return None
        visible = visible_event(entry) if entry else None
        if visible is None:
            return None
        stored, role = visible
        try:
            return CurrentVersion(int(stored["version"]), bool(stored["deleted"]), role)
        except (KeyError, TypeError, ValueError):
            return None
