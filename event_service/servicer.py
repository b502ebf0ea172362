"""gRPC adapter of the event service: proto in, EventService call, proto out."""

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from common.errors import InvalidArgument
from common.grpc_server import current_caller
from common.idempotency import IdempotencyKeys
from common.roles import NO_ROLE, Role, role_to_proto
from common.service_identity import ServiceTokens
from common.timeutil import from_timestamp, to_timestamp
from event_service.access import AccessService, RequestedChange
from event_service.busy import BusyTimes
from event_service.calendar_export import CalendarExport
from event_service.calendar_import import CalendarImport, Imported
from event_service.domain.events import EventDraft
from event_service.reads import EventReader, EventView, ListQuery, OccurrenceView
from event_service.repo import EventAccessRows
from event_service.series_edits import SeriesEdits
from event_service.service import EventService
from event_service.sync import SyncReader, Tombstone
from eventhub.events.v1 import events_pb2, events_pb2_grpc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PATCH_SCALARS = (
    "title",
    "description",
    "location",
    "timezone",
    "is_recurring",
    "recurrence_rule",
)


def event_message(view: EventView) -> events_pb2.Event:
    event = view.event
    return events_pb2.Event(
        id=str(event.id),
        title=event.title,
        description=event.description,
        location=event.location,
        start_time=to_timestamp(event.start_time),
        end_time=to_timestamp(event.end_time),
        timezone=event.timezone,
        is_recurring=event.is_recurring,
        recurrence_rule=event.recurrence_rule or "",
        owner_id=str(event.owner_id),
        role=view.role.to_proto(),  # type: ignore[arg-type]
        version=event.version,
        created_at=to_timestamp(event.created_at),
        updated_at=to_timestamp(event.updated_at),
        overrides_json=orjson.dumps(event.overrides).decode(),
    )


def _serialized_event(view: EventView) -> bytes:
    return event_message(view).SerializeToString()


def _batch_message(views: list[EventView]) -> events_pb2.BatchCreateEventsResponse:
    return events_pb2.BatchCreateEventsResponse(items=[event_message(v) for v in views])


def _import_message(imported: Imported) -> events_pb2.ImportCalendarResponse:
    return events_pb2.ImportCalendarResponse(
        items=[event_message(view) for view in imported.views],
        warnings=[events_pb2.ImportWarning(**warning) for warning in imported.warnings],
    )


def event_json(views: list[EventView]) -> bytes:
    """The events as a JSON array in the REST API's Event shape (`json_items`)."""
    return orjson.dumps([_event_fields(view) for view in views], option=orjson.OPT_UTC_Z)


def _event_fields(view: EventView) -> dict[str, Any]:
    return {
        "id": str(view.event.id),
        "title": view.event.title,
        "description": view.event.description,
        "location": view.event.location,
        "start_time": view.event.start_time,
        "end_time": view.event.end_time,
        "timezone": view.event.timezone,
        "is_recurring": view.event.is_recurring,
        "recurrence_rule": view.event.recurrence_rule,
        "owner_id": str(view.event.owner_id),
        "role": view.role.value,
        "version": view.event.version,
        "created_at": view.event.created_at,
        "updated_at": view.event.updated_at,
        "overrides": view.event.overrides,
    }


def sync_json(items: list[EventView | Tombstone]) -> bytes:
    """A sync page's items as a JSON array of the REST API's Event and Tombstone."""
    return orjson.dumps(
        [
            _event_fields(item)
            if isinstance(item, EventView)
            else {
                "id": str(item.event_id),
                "deleted": True,
                "version": item.version,
                "reason": item.reason,
            }
            for item in items
        ],
        option=orjson.OPT_UTC_Z,
    )


def occurrence_json(views: list[OccurrenceView]) -> bytes:
    """The occurrences as a JSON array in the REST API's Occurrence shape."""
    return orjson.dumps(
        [
            {
                "event_id": view.event_id,
                "title": view.title,
                "start_time": view.start,
                "end_time": view.end,
                "recurrence_id": view.recurrence_id,
                "original_start_time": view.recurrence_id,
                "status": "cancelled" if view.cancelled else "confirmed",
                "is_override": view.is_override,
                "description": view.description,
                "location": view.location,
            }
            for view in views
        ],
        option=orjson.OPT_UTC_Z,
    )


def add_occurrences(items: Any, views: list[OccurrenceView]) -> None:
    """Append to a repeated Occurrence field in place: copying thousands of built
    messages into a response costs more than building them."""
    for view in views:
        items.add(**_occurrence_fields(view))


def _occurrence_fields(view: OccurrenceView) -> dict[str, Any]:
    return {
        "event_id": view.event_id,
        "title": view.title,
        "start_time": _timestamp_fields(view.start),
        "end_time": _timestamp_fields(view.end),
        "recurrence_id": _timestamp_fields(view.recurrence_id),
        "description": view.description,
        "location": view.location,
        "cancelled": view.cancelled,
        "is_override": view.is_override,
    }


def _timestamp_fields(value: datetime) -> dict[str, int]:
    delta = value - _EPOCH
    return {"seconds": delta.days * 86_400 + delta.seconds, "nanos": delta.microseconds * 1000}


def draft_of(message: events_pb2.EventInput) -> EventDraft:
    return EventDraft(
        title=message.title,
        description=message.description,
        location=message.location,
        start_time=_time(message, "start_time"),
        end_time=_time(message, "end_time"),
        timezone=message.timezone,
        is_recurring=message.is_recurring,
        recurrence_rule=message.recurrence_rule,
    )


def changes_of(patch: events_pb2.EventPatch) -> dict[str, Any]:
    changes: dict[str, Any] = {
        name: getattr(patch, name) for name in _PATCH_SCALARS if patch.HasField(name)
    }
    for name in ("start_time", "end_time"):
        if patch.HasField(name):
            changes[name] = from_timestamp(getattr(patch, name))
    return changes


def occurrence_changes_of(patch: events_pb2.OccurrencePatch) -> dict[str, Any]:
    changes: dict[str, Any] = {
        name: getattr(patch, name)
        for name in ("title", "description", "location")
        if patch.HasField(name)
    }
    for name in ("start_time", "end_time"):
        if patch.HasField(name):
            changes[name] = from_timestamp(getattr(patch, name))
    return changes


_OCCURRENCE_ACTIONS = {
    events_pb2.ChangeOccurrenceRequest.ACTION_CHANGE: "change",
    events_pb2.ChangeOccurrenceRequest.ACTION_CANCEL: "cancel",
    events_pb2.ChangeOccurrenceRequest.ACTION_RESTORE: "restore",
}


def _time(message: Any, name: str):  # type: ignore[no-untyped-def]
    return from_timestamp(getattr(message, name)) if message.HasField(name) else None


def _expected_version(request: Any) -> int | None:
    return request.expected_version if request.HasField("expected_version") else None


def _role_filter(value: int) -> Role | None:
    role = Role.from_proto(value)
    if role is None and value != NO_ROLE:
        raise InvalidArgument.field("role", "must be owner, editor or viewer")
    return role


def access_message(access: EventAccessRows) -> events_pb2.Access:
    return events_pb2.Access(
        event_id=str(access.event_id),
        access_version=access.version,
        entries=[
            events_pb2.AccessEntry(
                user_id=str(entry.user_id),
                username=entry.username,
                role=entry.role.to_proto(),  # type: ignore[arg-type]
                granted_by=str(entry.granted_by),
                granted_at=to_timestamp(entry.granted_at),
            )
            for entry in access.entries
        ],
    )


class EventServicer(events_pb2_grpc.EventServiceServicer):
    def __init__(
        self,
        reader: EventReader,
        service: EventService,
        series: SeriesEdits,
        access: AccessService,
        keys: IdempotencyKeys,
        services: ServiceTokens,
        sync: SyncReader,
        busy: BusyTimes,
        export: CalendarExport,
        imports: CalendarImport,
    ) -> None:
        self._reader = reader
        self._sync = sync
        self._busy = busy
        self._export = export
        self._imports = imports
        self._service = service
        self._series = series
        self._access = access
        self._keys = keys
        self._services = services

    async def CreateEvent(self, request, context):  # type: ignore[no-untyped-def]
        caller = current_caller()
        once = self._keys.of_call(caller.user_id, _serialized_event)
        view = await self._service.create(
            caller, draft_of(request.event), request.allow_conflicts, once
        )
        return event_message(view)

    async def BatchCreateEvents(self, request, context):  # type: ignore[no-untyped-def]
        caller = current_caller()
        once = self._keys.of_call(
            caller.user_id, lambda views: _batch_message(views).SerializeToString()
        )
        views = await self._service.create_many(
            caller, [draft_of(e) for e in request.events], request.allow_conflicts, once
        )
        return _batch_message(views)

    async def GetEvent(self, request, context):  # type: ignore[no-untyped-def]
        return event_message(await self._reader.get(current_caller(), request.id))

    async def ListEvents(self, request, context):  # type: ignore[no-untyped-def]
        query = ListQuery(
            start=_time(request, "start"),
            end=_time(request, "end"),
            text=request.q,
            role=_role_filter(request.role),
            limit=request.limit,
            cursor=request.cursor,
        )
        caller = current_caller()
        page = await self._reader.list_events(caller, query)
        sync_token = ""
        if page.sync_horizon is not None:
            sync_token = self._sync.token(uuid.UUID(caller.user_id), page.sync_horizon)
        if request.json_items:
            return events_pb2.ListEventsResponse(
                items_json=event_json(page.items),
                next_cursor=page.next_cursor,
                next_sync_token=sync_token,
            )
        return events_pb2.ListEventsResponse(
            items=[event_message(v) for v in page.items],
            next_cursor=page.next_cursor,
            next_sync_token=sync_token,
        )

    async def SyncEvents(self, request, context):  # type: ignore[no-untyped-def]
        page = await self._sync.sync(
            current_caller(), request.sync_token, request.cursor, request.limit
        )
        return events_pb2.SyncEventsResponse(
            items_json=sync_json(page.items),
            next_cursor=page.next_cursor,
            next_sync_token=page.next_sync_token,
        )

    async def ExpandEvents(self, request, context):  # type: ignore[no-untyped-def]
        occurrences = await self._reader.expand(
            current_caller(),
            _time(request, "start"),
            _time(request, "end"),
            request.q,
            _role_filter(request.role),
            request.show_cancelled,
        )
        if request.json_items:
            return events_pb2.ExpandEventsResponse(items_json=occurrence_json(occurrences))
        response = events_pb2.ExpandEventsResponse()
        add_occurrences(response.items, occurrences)
        return response

    async def ListOccurrences(self, request, context):  # type: ignore[no-untyped-def]
        occurrences = await self._reader.occurrences(
            current_caller(),
            request.event_id,
            _time(request, "start"),
            _time(request, "end"),
            request.show_cancelled,
        )
        if request.json_items:
            return events_pb2.ListOccurrencesResponse(items_json=occurrence_json(occurrences))
        response = events_pb2.ListOccurrencesResponse()
        add_occurrences(response.items, occurrences)
        return response

    async def GetOccurrence(self, request, context):  # type: ignore[no-untyped-def]
        view, occurrence = await self._reader.occurrence(
            current_caller(), request.event_id, request.recurrence_id
        )
        return events_pb2.GetOccurrenceResponse(
            occurrence=events_pb2.Occurrence(**_occurrence_fields(occurrence)),
            version=view.event.version,
        )

    async def ChangeOccurrence(self, request, context):  # type: ignore[no-untyped-def]
        caller = current_caller()
        action = _OCCURRENCE_ACTIONS.get(request.action)
        if action is None:
            raise InvalidArgument.field("action", "must be change, cancel or restore")
        view, occurrence = await self._series.change_occurrence(
            caller,
            request.event_id,
            request.recurrence_id,
            action,  # type: ignore[arg-type]
            occurrence_changes_of(request.patch),
            request.allow_conflicts,
            _expected_version(request),
        )
        return events_pb2.GetOccurrenceResponse(
            occurrence=events_pb2.Occurrence(**_occurrence_fields(occurrence)),
            version=view.event.version,
        )

    async def ReplaceEvent(self, request, context):  # type: ignore[no-untyped-def]
        view = await self._service.replace(
            current_caller(),
            request.id,
            draft_of(request.event),
            request.allow_conflicts,
            _expected_version(request),
        )
        return event_message(view)

    async def SplitSeries(self, request, context):  # type: ignore[no-untyped-def]
        updated, created = await self._series.split(
            current_caller(),
            request.id,
            request.split_at,
            changes_of(request.patch),
            request.allow_conflicts,
            _expected_version(request),
        )
        return events_pb2.SplitSeriesResponse(
            updated=event_message(updated), created=event_message(created)
        )

    async def UpdateEvent(self, request, context):  # type: ignore[no-untyped-def]
        view = await self._service.update(
            current_caller(),
            request.id,
            changes_of(request.patch),
            request.allow_conflicts,
            _expected_version(request),
        )
        return event_message(view)

    async def DeleteEvent(self, request, context):  # type: ignore[no-untyped-def]
        await self._service.delete(current_caller(), request.id, _expected_version(request))
        return events_pb2.DeleteEventResponse()

    async def RollbackEvent(self, request, context):  # type: ignore[no-untyped-def]
        caller = current_caller()
        self._services.require("history", "roll back an event to given content")
        view = await self._service.rollback(
            caller,
            request.id,
            draft_of(request.event),
            orjson.loads(request.overrides_json or "{}"),
            request.allow_conflicts,
            _expected_version(request),
            self._keys.of_call(caller.user_id, _serialized_event),
        )
        return event_message(view)

    async def GetEventVersion(self, request, context):  # type: ignore[no-untyped-def]
        view = await self._reader.get_version(current_caller(), request.id)
        return events_pb2.GetEventVersionResponse(
            version=view.event.version,
            deleted=view.event.deleted,
            role=role_to_proto(view.role),  # type: ignore[arg-type]
        )

    async def GetAccess(self, request, context):  # type: ignore[no-untyped-def]
        return access_message(await self._access.get(current_caller(), request.event_id))

    async def ExportEvent(self, request, context):  # type: ignore[no-untyped-def]
        ics, version = await self._export.event(current_caller(), request.id)
        return events_pb2.ExportEventResponse(ics=ics, version=version)

    async def ExportCalendar(self, request, context):  # type: ignore[no-untyped-def]
        ics, next_cursor = await self._export.page(current_caller(), request.cursor)
        return events_pb2.ExportCalendarResponse(ics=ics, next_cursor=next_cursor)

    async def RotateCalendarFeed(self, request, context):  # type: ignore[no-untyped-def]
        secret, created_at = await self._export.rotate_feed(current_caller())
        return events_pb2.RotateCalendarFeedResponse(
            secret=secret, created_at=to_timestamp(created_at)
        )

    async def DeleteCalendarFeed(self, request, context):  # type: ignore[no-untyped-def]
        await self._export.delete_feed(current_caller())
        return events_pb2.DeleteCalendarFeedResponse()

    async def ExportFeed(self, request, context):  # type: ignore[no-untyped-def]
        # No caller: the feed's secret is the credential.
        ics, next_cursor = await self._export.feed_page(request.secret, request.cursor)
        return events_pb2.ExportCalendarResponse(ics=ics, next_cursor=next_cursor)

    async def ImportCalendar(self, request, context):  # type: ignore[no-untyped-def]
        caller = current_caller()
        once = self._keys.of_call(
            caller.user_id, lambda imported: _import_message(imported).SerializeToString()
        )
        imported = await self._imports.run(caller, request.ics, request.allow_conflicts, once)
        return _import_message(imported)

    async def BusyTimes(self, request, context):  # type: ignore[no-untyped-def]
        current_caller()  # a verified user first, as on every call
        self._services.require("sharing", "read users' busy times")
        busy = await self._busy.of(
            list(request.user_ids),
            _time(request, "start"),
            _time(request, "end"),
            request.timezone,
        )
        return events_pb2.BusyTimesResponse(
            users=[
                events_pb2.UserBusyTimes(user_id=user_id, busy_json=times)
                for user_id, times in zip(request.user_ids, busy, strict=True)
            ]
        )

    async def ChangeAccess(self, request, context):  # type: ignore[no-untyped-def]
        changes = [
            RequestedChange(change.user_id, change.username, Role.from_proto(change.role))
            for change in request.changes
        ]
        caller = current_caller()
        self._services.require("sharing", "change an event's access list")
        access = await self._access.change(
            caller,
            request.event_id,
            request.expected_access_version,
            changes,
            self._keys.of_call(caller.user_id, lambda a: access_message(a).SerializeToString()),
        )
        return access_message(access)
