"""JSON shapes of permissions and share requests, and their conversion from/to protobuf."""

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, field_serializer, model_validator
from pydantic_core import PydanticCustomError

from common.timeutil import from_timestamp, rfc3339
from eventhub.sharing.v1 import sharing_pb2
from gateway.schemas.events import ROLE_NAMES, ROLE_VALUES, RoleName
from gateway.schemas.text import NoNul

# The sharing service refuses more too.
MAX_SHARE_TARGETS = 100


class ShareTargetIn(BaseModel):
    """A user to share with, by `user_id` or by `username` (exactly one)."""

    user_id: Annotated[str | None, Field(min_length=1, max_length=64), NoNul] = None
    username: Annotated[str | None, Field(min_length=1, max_length=320), NoNul] = None
    role: RoleName

    @model_validator(mode="after")
    def _exactly_one_user(self) -> "ShareTargetIn":
        if (self.user_id is None) == (self.username is None):
            raise PydanticCustomError("one_user", "give exactly one of user_id or username")
        return self

    def to_proto(self) -> sharing_pb2.ShareTarget:
        role = ROLE_VALUES[self.role]
        if self.user_id is not None:
            return sharing_pb2.ShareTarget(user_id=self.user_id, role=role)
        return sharing_pb2.ShareTarget(username=self.username, role=role)


class ShareIn(BaseModel):
    users: Annotated[list[ShareTargetIn], Field(min_length=1, max_length=MAX_SHARE_TARGETS)]


class PermissionUpdateIn(BaseModel):
    role: RoleName


class Permission(BaseModel):
    user_id: str
    username: str
    role: RoleName
    granted_by: str = Field(description="Id of the owner who granted the current role")
    granted_at: datetime

    @field_serializer("granted_at")
    def _utc(self, value: datetime) -> str:
        return rfc3339(value)

    @classmethod
    def from_proto(cls, permission: sharing_pb2.Permission) -> "Permission":
        return cls(
            user_id=permission.user_id,
            username=permission.username,
            role=ROLE_NAMES[permission.role],
            granted_by=permission.granted_by,
            granted_at=from_timestamp(permission.granted_at),
        )


class PermissionList(BaseModel):
    items: list[Permission]

    @classmethod
    def from_proto(cls, permissions: Iterable[sharing_pb2.Permission]) -> "PermissionList":
        return cls(items=[Permission.from_proto(p) for p in permissions])
