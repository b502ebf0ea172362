import datetime

from eventhub.common.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Event(_message.Message):
    __slots__ = ("id", "title", "description", "location", "start_time", "end_time", "timezone", "is_recurring", "recurrence_rule", "owner_id", "role", "version", "created_at", "updated_at", "overrides_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    IS_RECURRING_FIELD_NUMBER: _ClassVar[int]
    RECURRENCE_RULE_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    description: str
    location: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    timezone: str
    is_recurring: bool
    recurrence_rule: str
    owner_id: str
    role: _common_pb2.Role
    version: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    overrides_json: str
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., location: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timezone: _Optional[str] = ..., is_recurring: _Optional[bool] = ..., recurrence_rule: _Optional[str] = ..., owner_id: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overrides_json: _Optional[str] = ...) -> None: ...

class EventInput(_message.Message):
    __slots__ = ("title", "description", "location", "start_time", "end_time", "timezone", "is_recurring", "recurrence_rule")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    IS_RECURRING_FIELD_NUMBER: _ClassVar[int]
    RECURRENCE_RULE_FIELD_NUMBER: _ClassVar[int]
    title: str
    description: str
    location: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    timezone: str
    is_recurring: bool
    recurrence_rule: str
    def __init__(self, title: _Optional[str] = ..., description: _Optional[str] = ..., location: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timezone: _Optional[str] = ..., is_recurring: _Optional[bool] = ..., recurrence_rule: _Optional[str] = ...) -> None: ...

class EventPatch(_message.Message):
    __slots__ = ("title", "description", "location", "start_time", "end_time", "timezone", "is_recurring", "recurrence_rule")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    IS_RECURRING_FIELD_NUMBER: _ClassVar[int]
    RECURRENCE_RULE_FIELD_NUMBER: _ClassVar[int]
    title: str
    description: str
    location: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    timezone: str
    is_recurring: bool
    recurrence_rule: str
    def __init__(self, title: _Optional[str] = ..., description: _Optional[str] = ..., location: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timezone: _Optional[str] = ..., is_recurring: _Optional[bool] = ..., recurrence_rule: _Optional[str] = ...) -> None: ...

class Occurrence(_message.Message):
    __slots__ = ("event_id", "title", "start_time", "end_time", "recurrence_id", "description", "location", "cancelled", "is_override")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    RECURRENCE_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    IS_OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    title: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    recurrence_id: _timestamp_pb2.Timestamp
    description: str
    location: str
    cancelled: bool
    is_override: bool
    def __init__(self, event_id: _Optional[str] = ..., title: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recurrence_id: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., description: _Optional[str] = ..., location: _Optional[str] = ..., cancelled: _Optional[bool] = ..., is_override: _Optional[bool] = ...) -> None: ...

class CreateEventRequest(_message.Message):
    __slots__ = ("event", "allow_conflicts")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ALLOW_CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    event: EventInput
    allow_conflicts: bool
    def __init__(self, event: _Optional[_Union[EventInput, _Mapping]] = ..., allow_conflicts: _Optional[bool] = ...) -> None: ...

class BatchCreateEventsRequest(_message.Message):
    __slots__ = ("events", "allow_conflicts")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[EventInput]
    allow_conflicts: bool
    def __init__(self, events: _Optional[_Iterable[_Union[EventInput, _Mapping]]] = ..., allow_conflicts: _Optional[bool] = ...) -> None: ...

class BatchCreateEventsResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, items: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class GetEventRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("start", "end", "q", "role", "limit", "cursor", "json_items")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    Q_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    JSON_ITEMS_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    q: str
    role: _common_pb2.Role
    limit: int
    cursor: str
    json_items: bool
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., q: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., json_items: _Optional[bool] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("items", "next_cursor", "items_json", "next_sync_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    ITEMS_JSON_FIELD_NUMBER: _ClassVar[int]
    NEXT_SYNC_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Event]
    next_cursor: str
    items_json: bytes
    next_sync_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., next_cursor: _Optional[str] = ..., items_json: _Optional[bytes] = ..., next_sync_token: _Optional[str] = ...) -> None: ...

class SyncEventsRequest(_message.Message):
    __slots__ = ("sync_token", "cursor", "limit")
    SYNC_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    sync_token: str
    cursor: str
    limit: int
    def __init__(self, sync_token: _Optional[str] = ..., cursor: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class SyncEventsResponse(_message.Message):
    __slots__ = ("items_json", "next_cursor", "next_sync_token")
    ITEMS_JSON_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    NEXT_SYNC_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items_json: bytes
    next_cursor: str
    next_sync_token: str
    def __init__(self, items_json: _Optional[bytes] = ..., next_cursor: _Optional[str] = ..., next_sync_token: _Optional[str] = ...) -> None: ...

class ExpandEventsRequest(_message.Message):
    __slots__ = ("start", "end", "q", "role", "json_items", "show_cancelled")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    Q_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    JSON_ITEMS_FIELD_NUMBER: _ClassVar[int]
    SHOW_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    q: str
    role: _common_pb2.Role
    json_items: bool
    show_cancelled: bool
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., q: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., json_items: _Optional[bool] = ..., show_cancelled: _Optional[bool] = ...) -> None: ...

class ExpandEventsResponse(_message.Message):
    __slots__ = ("items", "items_json")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_JSON_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Occurrence]
    items_json: bytes
    def __init__(self, items: _Optional[_Iterable[_Union[Occurrence, _Mapping]]] = ..., items_json: _Optional[bytes] = ...) -> None: ...

class ListOccurrencesRequest(_message.Message):
    __slots__ = ("event_id", "start", "end", "json_items", "show_cancelled")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    JSON_ITEMS_FIELD_NUMBER: _ClassVar[int]
    SHOW_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    json_items: bool
    show_cancelled: bool
    def __init__(self, event_id: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., json_items: _Optional[bool] = ..., show_cancelled: _Optional[bool] = ...) -> None: ...

class ListOccurrencesResponse(_message.Message):
    __slots__ = ("items", "items_json")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_JSON_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Occurrence]
    items_json: bytes
    def __init__(self, items: _Optional[_Iterable[_Union[Occurrence, _Mapping]]] = ..., items_json: _Optional[bytes] = ...) -> None: ...

class GetOccurrenceRequest(_message.Message):
    __slots__ = ("event_id", "recurrence_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECURRENCE_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    recurrence_id: str
    def __init__(self, event_id: _Optional[str] = ..., recurrence_id: _Optional[str] = ...) -> None: ...

class ChangeOccurrenceRequest(_message.Message):
    __slots__ = ("event_id", "recurrence_id", "action", "patch", "allow_conflicts", "expected_version")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[ChangeOccurrenceRequest.Action]
        ACTION_CHANGE: _ClassVar[ChangeOccurrenceRequest.Action]
        ACTION_CANCEL: _ClassVar[ChangeOccurrenceRequest.Action]
        ACTION_RESTORE: _ClassVar[ChangeOccurrenceRequest.Action]
    ACTION_UNSPECIFIED: ChangeOccurrenceRequest.Action
    ACTION_CHANGE: ChangeOccurrenceRequest.Action
    ACTION_CANCEL: ChangeOccurrenceRequest.Action
    ACTION_RESTORE: ChangeOccurrenceRequest.Action
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECURRENCE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    ALLOW_CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    recurrence_id: str
    action: ChangeOccurrenceRequest.Action
    patch: OccurrencePatch
    allow_conflicts: bool
    expected_version: int
    def __init__(self, event_id: _Optional[str] = ..., recurrence_id: _Optional[str] = ..., action: _Optional[_Union[ChangeOccurrenceRequest.Action, str]] = ..., patch: _Optional[_Union[OccurrencePatch, _Mapping]] = ..., allow_conflicts: _Optional[bool] = ..., expected_version: _Optional[int] = ...) -> None: ...

class OccurrencePatch(_message.Message):
    __slots__ = ("title", "description", "location", "start_time", "end_time")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    title: str
    description: str
    location: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, title: _Optional[str] = ..., description: _Optional[str] = ..., location: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SplitSeriesRequest(_message.Message):
    __slots__ = ("id", "split_at", "patch", "allow_conflicts", "expected_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_AT_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    ALLOW_CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    split_at: str
    patch: EventPatch
    allow_conflicts: bool
    expected_version: int
    def __init__(self, id: _Optional[str] = ..., split_at: _Optional[str] = ..., patch: _Optional[_Union[EventPatch, _Mapping]] = ..., allow_conflicts: _Optional[bool] = ..., expected_version: _Optional[int] = ...) -> None: ...

class SplitSeriesResponse(_message.Message):
    __slots__ = ("updated", "created")
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    updated: Event
    created: Event
    def __init__(self, updated: _Optional[_Union[Event, _Mapping]] = ..., created: _Optional[_Union[Event, _Mapping]] = ...) -> None: ...

class GetOccurrenceResponse(_message.Message):
    __slots__ = ("occurrence", "version")
    OCCURRENCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    occurrence: Occurrence
    version: int
    def __init__(self, occurrence: _Optional[_Union[Occurrence, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class ReplaceEventRequest(_message.Message):
    __slots__ = ("id", "event", "allow_conflicts", "expected_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ALLOW_CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    event: EventInput
    allow_conflicts: bool
    expected_version: int
    def __init__(self, id: _Optional[str] = ..., event: _Optional[_Union[EventInput, _Mapping]] = ..., allow_conflicts: _Optional[bool] = ..., expected_version: _Optional[int] = ...) -> None: ...

class UpdateEventRequest(_message.Message):
    __slots__ = ("id", "patch", "allow_conflicts", "expected_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    ALLOW_CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    patch: EventPatch
    allow_conflicts: bool
    expected_version: int
    def __init__(self, id: _Optional[str] = ..., patch: _Optional[_Union[EventPatch, _Mapping]] = ..., allow_conflicts: _Optional[bool] = ..., expected_version: _Optional[int] = ...) -> None: ...

class DeleteEventRequest(_message.Message):
    __slots__ = ("id", "expected_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    expected_version: int
    def __init__(self, id: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class DeleteEventResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RollbackEventRequest(_message.Message):
    __slots__ = ("id", "event", "rolled_back_to", "allow_conflicts", "expected_version", "overrides_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_TO_FIELD_NUMBER: _ClassVar[int]
    ALLOW_CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    event: EventInput
    rolled_back_to: int
    allow_conflicts: bool
    expected_version: int
    overrides_json: str
    def __init__(self, id: _Optional[str] = ..., event: _Optional[_Union[EventInput, _Mapping]] = ..., rolled_back_to: _Optional[int] = ..., allow_conflicts: _Optional[bool] = ..., expected_version: _Optional[int] = ..., overrides_json: _Optional[str] = ...) -> None: ...

class GetEventVersionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetEventVersionResponse(_message.Message):
    __slots__ = ("version", "deleted", "role")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    version: int
    deleted: bool
    role: _common_pb2.Role
    def __init__(self, version: _Optional[int] = ..., deleted: _Optional[bool] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ...) -> None: ...

class AccessEntry(_message.Message):
    __slots__ = ("user_id", "username", "role", "granted_by", "granted_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    GRANTED_BY_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    username: str
    role: _common_pb2.Role
    granted_by: str
    granted_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., username: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., granted_by: _Optional[str] = ..., granted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Access(_message.Message):
    __slots__ = ("event_id", "access_version", "entries")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCESS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    access_version: int
    entries: _containers.RepeatedCompositeFieldContainer[AccessEntry]
    def __init__(self, event_id: _Optional[str] = ..., access_version: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[AccessEntry, _Mapping]]] = ...) -> None: ...

class GetAccessRequest(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...

class AccessChange(_message.Message):
    __slots__ = ("user_id", "username", "role")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    username: str
    role: _common_pb2.Role
    def __init__(self, user_id: _Optional[str] = ..., username: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ...) -> None: ...

class ChangeAccessRequest(_message.Message):
    __slots__ = ("event_id", "expected_access_version", "changes")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ACCESS_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    expected_access_version: int
    changes: _containers.RepeatedCompositeFieldContainer[AccessChange]
    def __init__(self, event_id: _Optional[str] = ..., expected_access_version: _Optional[int] = ..., changes: _Optional[_Iterable[_Union[AccessChange, _Mapping]]] = ...) -> None: ...

class BusyTimesRequest(_message.Message):
    __slots__ = ("user_ids", "start", "end", "timezone")
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    timezone: str
    def __init__(self, user_ids: _Optional[_Iterable[str]] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timezone: _Optional[str] = ...) -> None: ...

class UserBusyTimes(_message.Message):
    __slots__ = ("user_id", "busy_json")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    BUSY_JSON_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    busy_json: bytes
    def __init__(self, user_id: _Optional[str] = ..., busy_json: _Optional[bytes] = ...) -> None: ...

class BusyTimesResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserBusyTimes]
    def __init__(self, users: _Optional[_Iterable[_Union[UserBusyTimes, _Mapping]]] = ...) -> None: ...

class ExportEventRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ExportEventResponse(_message.Message):
    __slots__ = ("ics", "version")
    ICS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ics: bytes
    version: int
    def __init__(self, ics: _Optional[bytes] = ..., version: _Optional[int] = ...) -> None: ...

class ExportCalendarRequest(_message.Message):
    __slots__ = ("cursor",)
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    def __init__(self, cursor: _Optional[str] = ...) -> None: ...

class ExportCalendarResponse(_message.Message):
    __slots__ = ("ics", "next_cursor")
    ICS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    ics: bytes
    next_cursor: str
    def __init__(self, ics: _Optional[bytes] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class RotateCalendarFeedRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateCalendarFeedResponse(_message.Message):
    __slots__ = ("secret", "created_at")
    SECRET_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    secret: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, secret: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeleteCalendarFeedRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteCalendarFeedResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ImportCalendarRequest(_message.Message):
    __slots__ = ("ics", "allow_conflicts")
    ICS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    ics: bytes
    allow_conflicts: bool
    def __init__(self, ics: _Optional[bytes] = ..., allow_conflicts: _Optional[bool] = ...) -> None: ...

class ImportWarning(_message.Message):
    __slots__ = ("line", "message")
    LINE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    line: int
    message: str
    def __init__(self, line: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ImportCalendarResponse(_message.Message):
    __slots__ = ("items", "warnings")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Event]
    warnings: _containers.RepeatedCompositeFieldContainer[ImportWarning]
    def __init__(self, items: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[ImportWarning, _Mapping]]] = ...) -> None: ...

class ExportFeedRequest(_message.Message):
    __slots__ = ("secret", "cursor")
    SECRET_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    secret: str
    cursor: str
    def __init__(self, secret: _Optional[str] = ..., cursor: _Optional[str] = ...) -> None: ...
