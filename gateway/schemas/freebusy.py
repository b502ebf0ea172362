"""JSON shapes of free/busy queries and grants, and their conversion from protobuf."""

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, Field, field_serializer, model_validator
from pydantic_core import PydanticCustomError

from common.timeutil import from_timestamp, rfc3339, to_timestamp
from eventhub.sharing.v1 import sharing_pb2
from gateway.schemas.events import Timestamp, TimeZoneName
from gateway.schemas.text import NoNul

MAX_USERS = 50  # the sharing service refuses more too


def _known_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError("time_zone", "is not an IANA time zone") from None
    return name


class FreeBusyUserIn(BaseModel):
    """A user whose free/busy to show, by `user_id` or by `username` (exactly one); the
    answer is keyed by whichever was given."""

    user_id: Annotated[str | None, Field(min_length=1, max_length=64), NoNul] = None
    username: Annotated[str | None, Field(min_length=1, max_length=320), NoNul] = None

    @model_validator(mode="after")
    def _exactly_one_user(self) -> "FreeBusyUserIn":
        if (self.user_id is None) == (self.username is None):
            raise PydanticCustomError("one_user", "give exactly one of user_id or username")
        return self

    @property
    def key(self) -> str:
        return self.user_id if self.user_id is not None else self.username or ""

    def to_proto(self) -> sharing_pb2.FreeBusyUser:
        return sharing_pb2.FreeBusyUser(user_id=self.user_id or "", username=self.username or "")


class FreeBusyIn(BaseModel):
    start: Timestamp
    end: Timestamp
    users: Annotated[list[FreeBusyUserIn], Field(min_length=1, max_length=MAX_USERS)]
    timezone: Annotated[TimeZoneName, AfterValidator(_known_zone)] = Field(
        default="UTC", description="IANA zone whose offsets the answer's times carry"
    )

    def to_proto(self) -> sharing_pb2.FreeBusyRequest:
        return sharing_pb2.FreeBusyRequest(
            start=to_timestamp(self.start),
            end=to_timestamp(self.end),
            users=[user.to_proto() for user in self.users],
            timezone=self.timezone,
        )


class BusyInterval(BaseModel):
    start: datetime
    end: datetime


class FreeBusyError(BaseModel):
    reason: str = Field(description="`forbidden` (no grant) or `not_found` (no such user)")
    message: str


class UserFreeBusy(BaseModel):
    busy: list[BusyInterval]
    errors: list[FreeBusyError]


class FreeBusy(BaseModel):
    start: datetime
    end: datetime
    timezone: str
    users: dict[str, UserFreeBusy] = Field(description="By `user_id` or `username` as sent")


class FreeBusyGrant(BaseModel):
    """A user who may see the caller's free/busy."""

    user_id: str
    username: str
    granted_at: datetime

    @field_serializer("granted_at")
    def _utc(self, value: datetime) -> str:
        return rfc3339(value)

    @classmethod
    def from_proto(cls, grant: sharing_pb2.FreeBusyGrant) -> "FreeBusyGrant":
        return cls(
            user_id=grant.user_id,
            username=grant.username,
            granted_at=from_timestamp(grant.granted_at),
        )


class FreeBusyGrantList(BaseModel):
    items: list[FreeBusyGrant]
