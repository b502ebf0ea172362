"""JSON shapes of events and occurrences, and their conversion from/to protobuf.

The gateway checks types and lengths; the event service checks the rules that
involve several fields (end after start, recurrence, time zone) for every caller.
"""

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    field_serializer,
)
from pydantic_core import PydanticCustomError

from common.timeutil import MAX_YEAR, MIN_YEAR, from_timestamp, rfc3339, to_timestamp
from eventhub.common.v1 import common_pb2
from eventhub.events.v1 import events_pb2
from gateway.schemas.text import NoNul

Title = Annotated[str, Field(min_length=1, max_length=200), NoNul]
Description = Annotated[str, Field(max_length=10_000), NoNul]
Location = Annotated[str, Field(max_length=1_000), NoNul]
TimeZoneName = Annotated[str, Field(max_length=64, description="IANA time zone name"), NoNul]
RecurrenceRule = Annotated[
    str,
    Field(
        max_length=1_000,
        description="RFC 5545 RRULE body, e.g. FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10",
    ),
    NoNul,
]
RoleName = Literal["owner", "editor", "viewer"]

_RFC3339_DATE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]")


def _rfc3339_only(value: object) -> object:
    """Pydantic also takes numbers as Unix times; the API takes RFC 3339 only."""
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339_DATE.match(value)):
        return value
    raise PydanticCustomError(
        "datetime_format", "must be an RFC 3339 timestamp with an offset, e.g. 2026-03-01T09:00:00Z"
    )


def _in_supported_years(value: datetime) -> datetime:
    """The instant in UTC, within the API's years (`0001-01-01T00:00:00+14:00` is in
    year 0 in UTC, which no datetime holds)."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise PydanticCustomError(
            "datetime_range", f"must be in the years {MIN_YEAR}-{MAX_YEAR} (in UTC)"
        )
    return utc


Timestamp = Annotated[
    AwareDatetime, BeforeValidator(_rfc3339_only), AfterValidator(_in_supported_years)
]

ROLE_NAMES: dict[int, RoleName] = {
    common_pb2.ROLE_OWNER: "owner",
    common_pb2.ROLE_EDITOR: "editor",
    common_pb2.ROLE_VIEWER: "viewer",
}
ROLE_VALUES: dict[RoleName, int] = {name: value for value, name in ROLE_NAMES.items()}


class EventIn(BaseModel):
    """The editable fields of an event (POST, PUT, batch items); null or absent
    description and location are empty, and timezone UTC."""

    title: Title
    description: Description | None = ""
    location: Location | None = ""
    start_time: Timestamp
    end_time: Timestamp
    timezone: TimeZoneName | None = "UTC"
    is_recurring: bool = False
    recurrence_rule: RecurrenceRule | None = None

    def to_proto(self) -> events_pb2.EventInput:
        return events_pb2.EventInput(
            title=self.title,
            description=self.description or "",
            location=self.location or "",
            start_time=to_timestamp(self.start_time),
            end_time=to_timestamp(self.end_time),
            timezone=self.timezone or "UTC",
            is_recurring=self.is_recurring,
            recurrence_rule=self.recurrence_rule or "",
        )


class EventWriteIn(EventIn):
    """POST and PUT body: the event plus whether overlaps are accepted."""

    allow_conflicts: bool = False


class OccurrencePatchIn(BaseModel):
    """PATCH body of one occurrence: only the fields present change; the result must
    end after it starts. `null` clears description and location."""

    title: Title | None = None
    description: Description | None = None
    location: Location | None = None
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None
    allow_conflicts: bool = False

    def null_fields(self) -> list[str]:
        return [
            name
            for name in ("title", "start_time", "end_time")
            if name in self.model_fields_set and getattr(self, name) is None
        ]

    def to_proto(self) -> events_pb2.OccurrencePatch:
        present = self.model_fields_set
        patch = events_pb2.OccurrencePatch()
        if self.title is not None:
            patch.title = self.title
        for name in ("description", "location"):
            if name in present:
                setattr(patch, name, getattr(self, name) or "")
        for name in ("start_time", "end_time"):
            if getattr(self, name) is not None:
                getattr(patch, name).CopyFrom(to_timestamp(getattr(self, name)))
        return patch


class EventPatchIn(BaseModel):
    """PATCH body: only the fields present change. `null` clears description,
    location and recurrence_rule and resets timezone to UTC."""

    title: Title | None = None
    description: Description | None = None
    location: Location | None = None
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None
    timezone: TimeZoneName | None = None
    is_recurring: bool | None = None
    recurrence_rule: RecurrenceRule | None = None
    allow_conflicts: bool = False

    def to_proto(self) -> events_pb2.EventPatch:
        """The patch, or field errors for fields that may not be null."""
        present = self.model_fields_set
        patch = events_pb2.EventPatch()
        for name in ("title", "is_recurring"):
            if name in present and getattr(self, name) is not None:
                setattr(patch, name, getattr(self, name))
        for name in ("start_time", "end_time"):
            if name in present and getattr(self, name) is not None:
                getattr(patch, name).CopyFrom(to_timestamp(getattr(self, name)))
        for name in ("description", "location", "recurrence_rule"):
            if name in present:
                setattr(patch, name, getattr(self, name) or "")
        if "timezone" in present:
            patch.timezone = self.timezone or "UTC"
        return patch

    def null_fields(self) -> list[str]:
        """Present fields that were sent as null but may not be."""
        return [
            name
            for name in ("title", "start_time", "end_time", "is_recurring")
            if name in self.model_fields_set and getattr(self, name) is None
        ]


class BatchIn(BaseModel):
    events: Annotated[list[EventIn], Field(min_length=1, max_length=500)]
    allow_conflicts: bool = False


class Event(BaseModel):
    id: str
    title: str
    description: str
    location: str
    start_time: datetime
    end_time: datetime
    timezone: str
    is_recurring: bool
    recurrence_rule: str | None
    owner_id: str
    role: RoleName | None = Field(description="The caller's role on the event")
    version: int
    created_at: datetime
    updated_at: datetime
    overrides: dict[str, dict[str, Any]] = Field(
        description="A series' exceptions (read-only), by recurrence id: the fields that "
        'differ from the series there, or {"status": "cancelled"}; {} if none'
    )

    @field_serializer("start_time", "end_time", "created_at", "updated_at")
    def _utc(self, value: datetime) -> str:
        return rfc3339(value)

    @classmethod
    def fields_from_proto(cls, event: events_pb2.Event) -> dict[str, Any]:
        """The event's members in field order, as plain values: a response can send
        them as they are (`gateway.responses.JSONResponse` writes UTC datetimes with
        `Z`, like `_utc`), skipping the model's construction and serialisation."""
        return {
            "id": event.id,
            "title": event.title,
            "description": event.description,
            "location": event.location,
            "start_time": from_timestamp(event.start_time),
            "end_time": from_timestamp(event.end_time),
            "timezone": event.timezone or "UTC",
            "is_recurring": event.is_recurring,
            "recurrence_rule": event.recurrence_rule or None,
            "owner_id": event.owner_id,
            "role": ROLE_NAMES.get(event.role),
            "version": event.version,
            "created_at": from_timestamp(event.created_at),
            "updated_at": from_timestamp(event.updated_at),
            "overrides": orjson.loads(event.overrides_json or "{}"),
        }

    @classmethod
    def from_proto(cls, event: events_pb2.Event) -> "Event":
        return cls.model_construct(**cls.fields_from_proto(event))


class Occurrence(BaseModel):
    """An occurrence as it happens: an exception's values over the series'."""

    event_id: str
    title: str
    start_time: datetime
    end_time: datetime
    recurrence_id: datetime = Field(
        description="The occurrence's original start as the rule generates it (UTC): "
        "its stable id (RFC 5545 RECURRENCE-ID)"
    )
    original_start_time: datetime = Field(description="The same as `recurrence_id`")
    status: Literal["confirmed", "cancelled"] = Field(
        description="`cancelled` only with `show_cancelled=true`, at the original time"
    )
    is_override: bool = Field(description="Whether an exception changes its values or times")
    description: str
    location: str

    @field_serializer("start_time", "end_time", "recurrence_id", "original_start_time")
    def _utc(self, value: datetime) -> str:
        return rfc3339(value)

    @classmethod
    def fields_from_proto(cls, occurrence: events_pb2.Occurrence) -> dict[str, Any]:
        """Plain values in field order, like `Event.fields_from_proto`."""
        recurrence_id = from_timestamp(occurrence.recurrence_id)
        return {
            "event_id": occurrence.event_id,
            "title": occurrence.title,
            "start_time": from_timestamp(occurrence.start_time),
            "end_time": from_timestamp(occurrence.end_time),
            "recurrence_id": recurrence_id,
            "original_start_time": recurrence_id,
            "status": "cancelled" if occurrence.cancelled else "confirmed",
            "is_override": occurrence.is_override,
            "description": occurrence.description,
            "location": occurrence.location,
        }


class SplitOut(BaseModel):
    """`PATCH /api/events/{id}?scope=this_and_following`: both series."""

    updated: Event = Field(description="The series split, now ending before `from`")
    created: Event = Field(description="The new series, from `from` on")


class EventList(BaseModel):
    items: list[Event]


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )
    next_sync_token: str | None = Field(
        description="On the last page of a listing without filters: pass as `sync_token` "
        "to get what changed since its first page; else null"
    )


class Tombstone(BaseModel):
    """An event the caller can no longer see, in a sync."""

    id: str
    deleted: Literal[True] = True
    version: int = Field(
        description="The delete's own version; for access lost, the event's version then"
    )
    reason: Literal["deleted", "access_lost"]


class SyncPage(BaseModel):
    """`GET /api/events?sync_token=`: the events changed for the caller since the
    token, oldest change first, each at most once."""

    items: list[Event | Tombstone]
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same `sync_token`) for the next page"
    )
    next_sync_token: str | None = Field(description="On the last page: the next sync's token")


class OccurrenceList(BaseModel):
    items: list[Occurrence]


class OccurrencePage(BaseModel):
    """`GET /api/events?expand=true`: every occurrence in the window, by start time."""

    items: list[Occurrence]
    next_cursor: None = None
