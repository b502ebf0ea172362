"""The event service, as the history service needs it: an event's current version
with the caller's role, and rollback."""

from dataclasses import dataclass

import grpc

from common.roles import Role
from common.upstream import call
from eventhub.events.v1 import events_pb2
from eventhub.events.v1.events_pb2_grpc import EventServiceStub


@dataclass(frozen=True)
class CurrentVersion:
    version: int
    deleted: bool
    # The caller's role; the event service answers NOT_FOUND without one.
    role: Role


class EventClient:
    """Acts as the current caller (the event service checks the role itself)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._events = EventServiceStub(channel)

    async def current_version(self, event_id: str) -> CurrentVersion:
        response = await call(
            self._events.GetEventVersion, events_pb2.GetEventVersionRequest(id=event_id)
        )
        role = Role.from_proto(response.role)
        assert role is not None, "the event service answers NOT_FOUND without a role"
        return CurrentVersion(response.version, response.deleted, role)

    async def rollback(self, request: events_pb2.RollbackEventRequest) -> events_pb2.Event:
        return await call(self._events.RollbackEvent, request)
