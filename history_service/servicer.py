"""gRPC adapter of the history service: proto in, HistoryService call, proto out."""

from typing import Any

import orjson

from common.grpc_server import current_caller
from common.timeutil import to_timestamp
from eventhub.common.v1 import common_pb2
from eventhub.events.v1 import events_pb2
from eventhub.history.v1 import history_pb2, history_pb2_grpc
from history_service.changes import Snapshot
from history_service.repo import StoredVersion
from history_service.service import HistoryService

CHANGE_TYPES = {
    "created": common_pb2.CHANGE_TYPE_CREATED,
    "updated": common_pb2.CHANGE_TYPE_UPDATED,
    "rolled_back": common_pb2.CHANGE_TYPE_ROLLED_BACK,
    "deleted": common_pb2.CHANGE_TYPE_DELETED,
}


def summary_message(row: StoredVersion) -> history_pb2.VersionSummary:
    return history_pb2.VersionSummary(
        version=row.version,
        changed_by=row.changed_by,
        changed_at=to_timestamp(row.changed_at),
        change_type=CHANGE_TYPES[row.change_type],
    )


def field_changes(changes: dict[str, dict[str, Any]]) -> dict[str, common_pb2.FieldChange]:
    return {
        field: common_pb2.FieldChange(
            old_json=orjson.dumps(change.get("old")).decode(),
            new_json=orjson.dumps(change.get("new")).decode(),
        )
        for field, change in changes.items()
    }


def event_message(row: StoredVersion) -> events_pb2.Event:
    """The event as it stood at a version; no caller role (history has none)."""
    snapshot = Snapshot.model_validate(row.snapshot)
    return events_pb2.Event(
        id=str(snapshot.id),
        title=snapshot.title,
        description=snapshot.description or "",
        location=snapshot.location or "",
        start_time=to_timestamp(snapshot.start_time),
        end_time=to_timestamp(snapshot.end_time),
        timezone=snapshot.timezone,
        is_recurring=snapshot.is_recurring,
        recurrence_rule=snapshot.recurrence_rule or "",
        owner_id=snapshot.owner_id,
        role=common_pb2.ROLE_UNSPECIFIED,
        version=row.version,
        created_at=to_timestamp(snapshot.created_at),
        updated_at=to_timestamp(snapshot.updated_at),
        overrides_json=orjson.dumps(snapshot.overrides).decode(),
    )


class HistoryServicer(history_pb2_grpc.HistoryServiceServicer):
    def __init__(self, service: HistoryService) -> None:
        self._service = service

    async def ListVersions(self, request, context):  # type: ignore[no-untyped-def]
        page = await self._service.list_versions(
            current_caller(), request.event_id, request.after_version, request.limit
        )
        return history_pb2.ListVersionsResponse(
            items=[summary_message(row) for row in page.items],
            next_after_version=page.next_after,
        )

    async def GetVersion(self, request, context):  # type: ignore[no-untyped-def]
        row = await self._service.get_version(current_caller(), request.event_id, request.version)
        return history_pb2.Version(summary=summary_message(row), event=event_message(row))

    async def GetChangelog(self, request, context):  # type: ignore[no-untyped-def]
        page = await self._service.changelog(
            current_caller(), request.event_id, request.after_version, request.limit
        )
        return history_pb2.GetChangelogResponse(
            items=[
                history_pb2.ChangelogEntry(
                    summary=summary_message(row), changes=field_changes(row.changes)
                )
                for row in page.items
            ],
            next_after_version=page.next_after,
        )

    async def DiffVersions(self, request, context):  # type: ignore[no-untyped-def]
        diff = await self._service.diff(
            current_caller(), request.event_id, request.from_version, request.to_version
        )
        return history_pb2.Diff(
            event_id=diff.event_id,
            from_version=diff.from_version,
            to_version=diff.to_version,
            changes=field_changes(diff.changes),
        )

    async def RollbackEvent(self, request, context):  # type: ignore[no-untyped-def]
        expected = request.expected_version if request.HasField("expected_version") else None
        return await self._service.rollback(
            current_caller(),
            request.event_id,
            request.version,
            allow_conflicts=request.allow_conflicts,
            expected_version=expected,
        )
