import datetime

from eventhub.common.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Permission(_message.Message):
    __slots__ = ("event_id", "user_id", "username", "role", "granted_by", "granted_at")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    GRANTED_BY_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    user_id: str
    username: str
    role: _common_pb2.Role
    granted_by: str
    granted_at: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., user_id: _Optional[str] = ..., username: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., granted_by: _Optional[str] = ..., granted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ShareTarget(_message.Message):
    __slots__ = ("user_id", "username", "role")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    username: str
    role: _common_pb2.Role
    def __init__(self, user_id: _Optional[str] = ..., username: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ...) -> None: ...

class ShareEventRequest(_message.Message):
    __slots__ = ("event_id", "users")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    users: _containers.RepeatedCompositeFieldContainer[ShareTarget]
    def __init__(self, event_id: _Optional[str] = ..., users: _Optional[_Iterable[_Union[ShareTarget, _Mapping]]] = ...) -> None: ...

class ShareEventResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Permission]
    def __init__(self, items: _Optional[_Iterable[_Union[Permission, _Mapping]]] = ...) -> None: ...

class ListPermissionsRequest(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...

class ListPermissionsResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Permission]
    def __init__(self, items: _Optional[_Iterable[_Union[Permission, _Mapping]]] = ...) -> None: ...

class UpdatePermissionRequest(_message.Message):
    __slots__ = ("event_id", "user_id", "role")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    user_id: str
    role: _common_pb2.Role
    def __init__(self, event_id: _Optional[str] = ..., user_id: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ...) -> None: ...

class RevokePermissionRequest(_message.Message):
    __slots__ = ("event_id", "user_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    user_id: str
    def __init__(self, event_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class RevokePermissionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FreeBusyUser(_message.Message):
    __slots__ = ("user_id", "username")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    username: str
    def __init__(self, user_id: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class FreeBusyRequest(_message.Message):
    __slots__ = ("start", "end", "users", "timezone")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    users: _containers.RepeatedCompositeFieldContainer[FreeBusyUser]
    timezone: str
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., users: _Optional[_Iterable[_Union[FreeBusyUser, _Mapping]]] = ..., timezone: _Optional[str] = ...) -> None: ...

class UserFreeBusy(_message.Message):
    __slots__ = ("busy_json", "error_reason", "error_message")
    BUSY_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    busy_json: bytes
    error_reason: str
    error_message: str
    def __init__(self, busy_json: _Optional[bytes] = ..., error_reason: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class FreeBusyResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserFreeBusy]
    def __init__(self, users: _Optional[_Iterable[_Union[UserFreeBusy, _Mapping]]] = ...) -> None: ...

class FreeBusyGrant(_message.Message):
    __slots__ = ("user_id", "username", "granted_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    username: str
    granted_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., username: _Optional[str] = ..., granted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListFreeBusyGrantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListFreeBusyGrantsResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[FreeBusyGrant]
    def __init__(self, items: _Optional[_Iterable[_Union[FreeBusyGrant, _Mapping]]] = ...) -> None: ...

class PutFreeBusyGrantRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class PutFreeBusyGrantResponse(_message.Message):
    __slots__ = ("grant", "created")
    GRANT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    grant: FreeBusyGrant
    created: bool
    def __init__(self, grant: _Optional[_Union[FreeBusyGrant, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class DeleteFreeBusyGrantRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class DeleteFreeBusyGrantResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
