import datetime

from eventhub.common.v1 import common_pb2 as _common_pb2
from eventhub.events.v1 import events_pb2 as _events_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VersionSummary(_message.Message):
    __slots__ = ("version", "changed_by", "changed_at", "change_type")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    version: int
    changed_by: str
    changed_at: _timestamp_pb2.Timestamp
    change_type: _common_pb2.ChangeType
    def __init__(self, version: _Optional[int] = ..., changed_by: _Optional[str] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., change_type: _Optional[_Union[_common_pb2.ChangeType, str]] = ...) -> None: ...

class Version(_message.Message):
    __slots__ = ("summary", "event")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    summary: VersionSummary
    event: _events_pb2.Event
    def __init__(self, summary: _Optional[_Union[VersionSummary, _Mapping]] = ..., event: _Optional[_Union[_events_pb2.Event, _Mapping]] = ...) -> None: ...

class ChangelogEntry(_message.Message):
    __slots__ = ("summary", "changes")
    class ChangesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.FieldChange
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.FieldChange, _Mapping]] = ...) -> None: ...
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    summary: VersionSummary
    changes: _containers.MessageMap[str, _common_pb2.FieldChange]
    def __init__(self, summary: _Optional[_Union[VersionSummary, _Mapping]] = ..., changes: _Optional[_Mapping[str, _common_pb2.FieldChange]] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("event_id", "limit", "after_version")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    limit: int
    after_version: int
    def __init__(self, event_id: _Optional[str] = ..., limit: _Optional[int] = ..., after_version: _Optional[int] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("items", "next_after_version")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[VersionSummary]
    next_after_version: int
    def __init__(self, items: _Optional[_Iterable[_Union[VersionSummary, _Mapping]]] = ..., next_after_version: _Optional[int] = ...) -> None: ...

class GetVersionRequest(_message.Message):
    __slots__ = ("event_id", "version")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    version: int
    def __init__(self, event_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetChangelogRequest(_message.Message):
    __slots__ = ("event_id", "limit", "after_version")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    limit: int
    after_version: int
    def __init__(self, event_id: _Optional[str] = ..., limit: _Optional[int] = ..., after_version: _Optional[int] = ...) -> None: ...

class GetChangelogResponse(_message.Message):
    __slots__ = ("items", "next_after_version")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ChangelogEntry]
    next_after_version: int
    def __init__(self, items: _Optional[_Iterable[_Union[ChangelogEntry, _Mapping]]] = ..., next_after_version: _Optional[int] = ...) -> None: ...

class DiffVersionsRequest(_message.Message):
    __slots__ = ("event_id", "from_version", "to_version")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    from_version: int
    to_version: int
    def __init__(self, event_id: _Optional[str] = ..., from_version: _Optional[int] = ..., to_version: _Optional[int] = ...) -> None: ...

class Diff(_message.Message):
    __slots__ = ("event_id", "from_version", "to_version", "changes")
    class ChangesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.FieldChange
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.FieldChange, _Mapping]] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    from_version: int
    to_version: int
    changes: _containers.MessageMap[str, _common_pb2.FieldChange]
    def __init__(self, event_id: _Optional[str] = ..., from_version: _Optional[int] = ..., to_version: _Optional[int] = ..., changes: _Optional[_Mapping[str, _common_pb2.FieldChange]] = ...) -> None: ...

class RollbackEventRequest(_message.Message):
    __slots__ = ("event_id", "version", "allow_conflicts", "expected_version")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ALLOW_CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    version: int
    allow_conflicts: bool
    expected_version: int
    def __init__(self, event_id: _Optional[str] = ..., version: _Optional[int] = ..., allow_conflicts: _Optional[bool] = ..., expected_version: _Optional[int] = ...) -> None: ...
