"""The event service, as the sharing service needs it: read an event's access list,
and change it if nobody else did meanwhile; read users' busy times."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import grpc

from common.roles import Role, role_to_proto
from common.timeutil import from_timestamp, to_timestamp
from common.upstream import UpstreamError, call
from eventhub.events.v1 import events_pb2
from eventhub.events.v1.events_pb2_grpc import EventServiceStub


@dataclass(frozen=True)
class Permission:
    """A user's role on an event."""

    event_id: uuid.UUID
    user_id: uuid.UUID
    username: str
    role: Role
    granted_by: uuid.UUID
    granted_at: datetime


@dataclass(frozen=True)
class EventAccess:
    event_id: uuid.UUID
    version: int
    permissions: list[Permission]

    def permission_of(self, user_id: uuid.UUID) -> Permission | None:
        return next((p for p in self.permissions if p.user_id == user_id), None)


@dataclass(frozen=True)
class RoleChange:
    """Give `user_id` `role`, or take its role away (`role` None)."""

    user_id: uuid.UUID
    username: str
    role: Role | None


class StaleAccess(Exception):
    """The access list changed since it was read."""


class EventAccessClient:
    """Acts as the current caller: the event service checks the role itself (and
    answers busy times to the sharing service only, which decides who may see them)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._events = EventServiceStub(channel)

    async def get(self, event_id: uuid.UUID) -> EventAccess:
        request = events_pb2.GetAccessRequest(event_id=str(event_id))
        return _access(await call(self._events.GetAccess, request))

    async def change(
        self, event_id: uuid.UUID, expected_version: int, changes: list[RoleChange]
    ) -> EventAccess:
        request = events_pb2.ChangeAccessRequest(
            event_id=str(event_id),
            expected_access_version=expected_version,
            changes=[
                events_pb2.AccessChange(
                    user_id=str(change.user_id),
                    username=change.username,
                    role=role_to_proto(change.role),  # type: ignore[arg-type]
                )
                for change in changes
            ],
        )
        try:
            return _access(await call(self._events.ChangeAccess, request))
        except UpstreamError as error:
            if error.code == grpc.StatusCode.FAILED_PRECONDITION:
                raise StaleAccess() from None
            raise

    async def busy_times(
        self, user_ids: Sequence[uuid.UUID], start: datetime, end: datetime, timezone: str
    ) -> dict[uuid.UUID, bytes]:
        """Each user's busy intervals in [start, end) as the REST API's JSON array
        (merged, sorted, clipped, in the zone's offsets)."""
        request = events_pb2.BusyTimesRequest(
            user_ids=[str(user_id) for user_id in user_ids],
            start=to_timestamp(start),
            end=to_timestamp(end),
            timezone=timezone,
        )
        response = await call(self._events.BusyTimes, request)
        busy = {uuid.UUID(user.user_id): user.busy_json for user in response.users}
        if busy.keys() != set(user_ids):
            raise ValueError("the event service answered busy times for other users than asked")
        return busy


def _access(message: events_pb2.Access) -> EventAccess:
    event_id = uuid.UUID(message.event_id)
    return EventAccess(
        event_id,
        message.access_version,
        [
            Permission(
                event_id=event_id,
                user_id=uuid.UUID(entry.user_id),
                username=entry.username,
                role=_role(entry.role),
                granted_by=uuid.UUID(entry.granted_by),
                granted_at=from_timestamp(entry.granted_at),
            )
            for entry in message.entries
        ],
    )


def _role(value: int) -> Role:
    role = Role.from_proto(value)
    if role is None:
        raise ValueError(f"the event service sent an access entry without a role ({value})")
    return role
