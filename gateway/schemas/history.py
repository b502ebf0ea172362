"""JSON shapes of versions, changelog entries and diffs, built from the history protos."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field, field_serializer

from common.timeutil import from_timestamp, rfc3339
from eventhub.common.v1 import common_pb2
from eventhub.history.v1 import history_pb2
from gateway.schemas.events import Event

ChangeTypeName = Literal["created", "updated", "rolled_back", "deleted"]

CHANGE_TYPE_NAMES: dict[int, ChangeTypeName] = {
    common_pb2.CHANGE_TYPE_CREATED: "created",
    common_pb2.CHANGE_TYPE_UPDATED: "updated",
    common_pb2.CHANGE_TYPE_ROLLED_BACK: "rolled_back",
    common_pb2.CHANGE_TYPE_DELETED: "deleted",
}


class FieldChange(BaseModel):
    old: Any = Field(description="The value before (null if it had none)")
    new: Any = Field(description="The value after (null if it has none)")


def field_changes(changes: Mapping[str, common_pb2.FieldChange]) -> dict[str, FieldChange]:
    return {
        field: FieldChange(old=orjson.loads(change.old_json), new=orjson.loads(change.new_json))
        for field, change in changes.items()
    }


class VersionSummary(BaseModel):
    version: int
    changed_by: str = Field(description="Id of the user who made the change")
    changed_at: datetime
    change_type: ChangeTypeName

    @field_serializer("changed_at")
    def _utc(self, value: datetime) -> str:
        return rfc3339(value)

    @classmethod
    def fields_from_proto(cls, summary: history_pb2.VersionSummary) -> dict[str, Any]:
        return {
            "version": summary.version,
            "changed_by": summary.changed_by,
            "changed_at": from_timestamp(summary.changed_at),
            "change_type": CHANGE_TYPE_NAMES[summary.change_type],
        }

    @classmethod
    def from_proto(cls, summary: history_pb2.VersionSummary) -> "VersionSummary":
        return cls(**cls.fields_from_proto(summary))


class Version(VersionSummary):
    event: Event = Field(description="The event as it stood at this version (`role` is null)")

    @classmethod
    def from_version_proto(cls, version: history_pb2.Version) -> "Version":
        return cls(**cls.fields_from_proto(version.summary), event=Event.from_proto(version.event))


class ChangelogEntry(VersionSummary):
    changes: dict[str, FieldChange] = Field(
        description="Each field this version changed, with its old and new value"
    )

    @classmethod
    def from_entry_proto(cls, entry: history_pb2.ChangelogEntry) -> "ChangelogEntry":
        return cls(**cls.fields_from_proto(entry.summary), changes=field_changes(entry.changes))


class VersionList(BaseModel):
    items: list[VersionSummary]


class Changelog(BaseModel):
    items: list[ChangelogEntry]


class Diff(BaseModel):
    event_id: str
    from_version: int
    to_version: int
    changes: dict[str, FieldChange] = Field(
        description="The editable fields that differ: `old` at from_version, `new` at to_version"
    )

    @classmethod
    def from_proto(cls, diff: history_pb2.Diff) -> "Diff":
        return cls(
            event_id=diff.event_id,
            from_version=diff.from_version,
            to_version=diff.to_version,
            changes=field_changes(diff.changes),
        )


class RollbackIn(BaseModel):
    allow_conflicts: bool = False
