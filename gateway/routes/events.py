from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from common.errors import InvalidArgument
from common.timeutil import to_timestamp
from eventhub.events.v1 import events_pb2
from gateway.clients import Gateway
from gateway.deps import CurrentUser, Services, cached_event_for_caller
from gateway.etags import (
    ETAG_HEADER,
    IF_NONE_MATCH_DESCRIPTION,
    IfMatch,
    apply_if_match,
    documented_headers,
    etag,
    event_response,
    fields_response,
    not_modified,
)
from gateway.openapi import problem_responses
from gateway.responses import JSONResponse, items_json_response, items_response
from gateway.schemas.events import (
    ROLE_VALUES,
    BatchIn,
    Event,
    EventList,
    EventPage,
    EventPatchIn,
    EventWriteIn,
    Occurrence,
    OccurrenceList,
    OccurrencePage,
    OccurrencePatchIn,
    RoleName,
    SplitOut,
    SyncPage,
    Timestamp,
)
from gateway.schemas.text import NoNul

router = APIRouter(prefix="/api/events", tags=["events"])

WindowStart = Annotated[
    Timestamp | None, Query(description="Only occurrences ending after this instant")
]
WindowEnd = Annotated[
    Timestamp | None, Query(description="Only occurrences starting before this instant")
]
_OccurrenceChange = events_pb2.ChangeOccurrenceRequest
ShowCancelled = Annotated[
    bool,
    Query(description="List cancelled occurrences too (at their original time, series values)"),
]
RecurrenceId = Annotated[
    str,
    Path(
        max_length=64,
        description="The occurrence's original start, e.g. 2026-03-02T09:00:00Z "
        "(an offset instead of Z is taken too, URL-encoded)",
    ),
]


@router.post(
    "",
    status_code=201,
    response_model=Event,
    responses={
        **problem_responses(401, 409, 422, 429),
        **documented_headers(201, "Created", True),
    },
)
async def create_event(body: EventWriteIn, user: CurrentUser, gateway: Services) -> Response:
    """Create an event in the caller's calendar; the caller becomes its owner.

    An overlap with another of the caller's events is 409 with `conflicts`
    unless `allow_conflicts` is true. A recurring event needs `is_recurring`
    and an RFC 5545 RRULE body (FREQ DAILY, WEEKLY, MONTHLY or YEARLY;
    COUNT up to 10,000 or UNTIL, not both).
    """
    event = await gateway.events.CreateEvent(
        events_pb2.CreateEventRequest(event=body.to_proto(), allow_conflicts=body.allow_conflicts)
    )
    return event_response(event, 201, {"Location": f"/api/events/{event.id}"})


@router.get(
    "",
    response_model=EventPage | OccurrencePage | SyncPage,
    responses=problem_responses(401, 410, 422, 429),
)
async def list_events(
    request: Request,
    user: CurrentUser,
    gateway: Services,
    start: WindowStart = None,
    end: WindowEnd = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Text in title, description or location"),
        NoNul,
    ] = None,
    role: Annotated[RoleName | None, Query(description="Only events with this role")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=4000, description="`next_cursor` of the previous page")
    ] = None,
    expand: Annotated[
        bool,
        Query(description="Return every occurrence in [start, end) (both required, ≤ 1 year)"),
    ] = False,
    show_cancelled: ShowCancelled = False,
    sync_token: Annotated[
        str | None,
        Query(
            max_length=200,
            description="`next_sync_token` of a listing or sync: what changed since (no "
            "filters); 410 if it expired (7 days) or is not yours",
        ),
    ] = None,
) -> Response:
    """Events the caller owns or was shared, newest first, or with `expand=true` their
    occurrences in a window, by start time; with `sync_token`, the events changed for
    the caller since (as events, or tombstones for those deleted or no longer shared),
    oldest change first."""
    if sync_token is not None:
        if start or end or q is not None or role or expand:
            raise InvalidArgument.field(
                "sync_token", "cannot be combined with start, end, q, role or expand"
            )
        return await _sync(gateway, sync_token, limit, cursor)
    query = request.url.query
    cached = await gateway.cached_events.page(user, query)
    if cached is not None and cached.body is not None:
        return Response(cached.body, media_type="application/json")
    response = await _listing(gateway, start, end, q, role, limit, cursor, expand, show_cancelled)
    if cached is not None:
        await gateway.cached_events.store_page(user, cached, query, bytes(response.body))
    return response


async def _listing(
    gateway: Gateway,
    start: datetime | None,
    end: datetime | None,
    q: str | None,
    role: RoleName | None,
    limit: int,
    cursor: str | None,
    expand: bool,
    show_cancelled: bool,
) -> Response:
    role_value = ROLE_VALUES[role] if role else 0
    if expand:
        expanded = await gateway.events.ExpandEvents(
            events_pb2.ExpandEventsRequest(
                start=to_timestamp(start) if start else None,
                end=to_timestamp(end) if end else None,
                q=q or "",
                role=role_value,  # type: ignore[arg-type]
                json_items=True,
                show_cancelled=show_cancelled,
            )
        )
        return items_json_response(expanded.items_json)
    page = await gateway.events.ListEvents(
        events_pb2.ListEventsRequest(
            start=to_timestamp(start) if start else None,
            end=to_timestamp(end) if end else None,
            q=q or "",
            role=role_value,  # type: ignore[arg-type]
            limit=limit,
            cursor=cursor or "",
            json_items=True,
        )
    )
    return items_json_response(
        page.items_json,
        next_cursor=page.next_cursor or None,
        next_sync_token=page.next_sync_token or None,
    )


async def _sync(gateway: Gateway, sync_token: str, limit: int, cursor: str | None) -> Response:
    page = await gateway.events.SyncEvents(
        events_pb2.SyncEventsRequest(sync_token=sync_token, cursor=cursor or "", limit=limit)
    )
    return items_json_response(
        page.items_json,
        next_cursor=page.next_cursor or None,
        next_sync_token=page.next_sync_token or None,
    )


@router.post(
    "/batch",
    status_code=201,
    response_model=EventList,
    responses=problem_responses(401, 409, 422, 429),
)
async def batch_create_events(body: BatchIn, user: CurrentUser, gateway: Services) -> Response:
    """Create 1 to 500 events, all or none.

    A 422 names the bad item's fields (`events.2.start_time`); a 409 carries the
    `index` of the item that overlaps an existing event or an earlier item.
    """
    response = await gateway.events.BatchCreateEvents(
        events_pb2.BatchCreateEventsRequest(
            events=[item.to_proto() for item in body.events],
            allow_conflicts=body.allow_conflicts,
        )
    )
    return items_response([Event.fields_from_proto(e) for e in response.items], status_code=201)


# What the read by id's parameters would document if FastAPI solved them: it reads
# its request itself (see `gateway.deps.CallerReadingEvent`).
_READ_BY_ID_PARAMETERS = {
    "security": [{"OAuth2PasswordBearer": []}],
    "parameters": [
        {"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}},
        {
            "name": "if-none-match",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": IF_NONE_MATCH_DESCRIPTION,
        },
    ],
}


@router.get(
    "/{event_id}",
    response_model=Event,
    responses={
        304: {
            "description": "Not Modified",
            "headers": {"ETag": {**ETAG_HEADER, "schema": {"type": "string"}}},
        },
        **problem_responses(401, 404, 429),
        **documented_headers(200, "The event"),
    },
    openapi_extra=_READ_BY_ID_PARAMETERS,
)
async def get_event(request: Request) -> Response:
    """One event with the caller's role on it; `ETag` is its version."""
    fields = await cached_event_for_caller(request)
    if fields is None:
        gateway: Gateway = request.app.state.gateway
        event_id = request.path_params["event_id"]
        fields = Event.fields_from_proto(
            await gateway.events.GetEvent(events_pb2.GetEventRequest(id=event_id))
        )
    if not_modified(request.headers.get("if-none-match"), fields["version"]):
        return Response(status_code=304, headers={"ETag": etag(fields["version"])})
    return fields_response(fields)


@router.put(
    "/{event_id}",
    response_model=Event,
    responses={
        **problem_responses(401, 403, 404, 409, 412, 422, 429),
        **documented_headers(200, "The changed event"),
    },
)
async def replace_event(
    event_id: str,
    body: EventWriteIn,
    user: CurrentUser,
    gateway: Services,
    if_match: IfMatch = None,
) -> Response:
    """Replace every editable field (editors and owners). Omitted optional fields
    take their defaults."""
    request = events_pb2.ReplaceEventRequest(
        id=event_id, event=body.to_proto(), allow_conflicts=body.allow_conflicts
    )
    await apply_if_match(request, if_match, event_id, gateway)
    return event_response(await gateway.events.ReplaceEvent(request))


@router.patch(
    "/{event_id}",
    response_model=Event | SplitOut,
    responses={
        **problem_responses(401, 403, 404, 409, 412, 422, 429),
        **documented_headers(200, "The changed event"),
        201: {
            "description": "`scope=this_and_following`: the series split, and the new one",
            "model": SplitOut,
            "headers": {"Location": {"description": "The new series' URL"}},
        },
    },
)
async def update_event(
    event_id: str,
    body: EventPatchIn,
    user: CurrentUser,
    gateway: Services,
    if_match: IfMatch = None,
    scope: Annotated[
        str,
        Query(
            description="`all` (the default): the whole series; `this_and_following`: "
            "split the series at `from` and change the new part only"
        ),
    ] = "all",
    split_from: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=64,
            description="With `scope=this_and_following`: the recurrence_id of the "
            "occurrence the new series starts at (not the first)",
        ),
    ] = None,
) -> Response:
    """Change the fields present (editors and owners); the result must be valid as a
    whole, e.g. setting `is_recurring` needs a `recurrence_rule`. Exceptions stay;
    moving the series moves them to its occurrence on the same local date."""
    if null_fields := body.null_fields():
        raise InvalidArgument([{"field": f, "message": "may not be null"} for f in null_fields])
    if scope == "this_and_following":
        return await _split(event_id, body, split_from, gateway, if_match)
    if scope != "all":
        raise InvalidArgument.field("scope", "must be all or this_and_following")
    request = events_pb2.UpdateEventRequest(
        id=event_id, patch=body.to_proto(), allow_conflicts=body.allow_conflicts
    )
    await apply_if_match(request, if_match, event_id, gateway)
    return event_response(await gateway.events.UpdateEvent(request))


async def _split(
    event_id: str,
    body: EventPatchIn,
    split_from: str | None,
    gateway: Gateway,
    if_match: str | None,
) -> Response:
    if not split_from:
        raise InvalidArgument.field("from", "is required with scope=this_and_following")
    request = events_pb2.SplitSeriesRequest(
        id=event_id,
        split_at=split_from,
        patch=body.to_proto(),
        allow_conflicts=body.allow_conflicts,
    )
    await apply_if_match(request, if_match, event_id, gateway)
    answer = await gateway.events.SplitSeries(request)
    return JSONResponse(
        {
            "updated": Event.fields_from_proto(answer.updated),
            "created": Event.fields_from_proto(answer.created),
        },
        status_code=201,
        headers={"Location": f"/api/events/{answer.created.id}"},
    )


@router.delete(
    "/{event_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404, 412, 429),
)
async def delete_event(
    event_id: str, user: CurrentUser, gateway: Services, if_match: IfMatch = None
) -> Response:
    """Delete an event (owners only). Its history stays readable by its owners."""
    request = events_pb2.DeleteEventRequest(id=event_id)
    await apply_if_match(request, if_match, event_id, gateway)
    await gateway.events.DeleteEvent(request)
    return Response(status_code=204)


@router.get(
    "/{event_id}/occurrences",
    response_model=OccurrenceList,
    responses=problem_responses(401, 404, 422, 429),
)
async def list_occurrences(
    event_id: str,
    user: CurrentUser,
    gateway: Services,
    start: Annotated[Timestamp, Query(description="Window start (inclusive)")],
    end: Annotated[Timestamp, Query(description="Window end (exclusive), ≤ 1 year later")],
    show_cancelled: ShowCancelled = False,
) -> Response:
    """The event's occurrences overlapping [start, end), expanded in its time zone,
    exceptions applied: by effective start (ties by `recurrence_id`)."""
    response = await gateway.events.ListOccurrences(
        events_pb2.ListOccurrencesRequest(
            event_id=event_id,
            start=to_timestamp(start),
            end=to_timestamp(end),
            json_items=True,
            show_cancelled=show_cancelled,
        )
    )
    return items_json_response(response.items_json)


@router.get(
    "/{event_id}/occurrences/{recurrence_id}",
    response_model=Occurrence,
    responses={
        **problem_responses(401, 404, 422, 429),
        **documented_headers(200, "The occurrence"),
    },
)
async def get_occurrence(
    event_id: str, recurrence_id: RecurrenceId, user: CurrentUser, gateway: Services
) -> Response:
    """One occurrence, cancelled or not; `ETag` is the series' version."""
    answer = await gateway.events.GetOccurrence(
        events_pb2.GetOccurrenceRequest(event_id=event_id, recurrence_id=recurrence_id)
    )
    return JSONResponse(
        Occurrence.fields_from_proto(answer.occurrence), headers={"ETag": etag(answer.version)}
    )


@router.patch(
    "/{event_id}/occurrences/{recurrence_id}",
    response_model=Occurrence,
    responses={
        **problem_responses(401, 403, 404, 409, 412, 422, 429),
        **documented_headers(200, "The changed occurrence"),
    },
)
async def update_occurrence(
    event_id: str,
    recurrence_id: RecurrenceId,
    body: OccurrencePatchIn,
    user: CurrentUser,
    gateway: Services,
    if_match: IfMatch = None,
) -> Response:
    """Change one occurrence of a series (editors and owners): merged into its
    exception, reinstating it if it was cancelled; a new version of the series.
    `If-Match` and `ETag` are the series'."""
    if null_fields := body.null_fields():
        raise InvalidArgument([{"field": f, "message": "may not be null"} for f in null_fields])
    request = _occurrence_request(event_id, recurrence_id, _OccurrenceChange.ACTION_CHANGE)
    request.patch.CopyFrom(body.to_proto())
    request.allow_conflicts = body.allow_conflicts
    return await _change_occurrence(gateway, if_match, request, with_body=True)


@router.delete(
    "/{event_id}/occurrences/{recurrence_id}",
    status_code=204,
    responses={
        **problem_responses(401, 403, 404, 412, 422, 429),
        **documented_headers(204, "Cancelled"),
    },
)
async def cancel_occurrence(
    event_id: str,
    recurrence_id: RecurrenceId,
    user: CurrentUser,
    gateway: Services,
    if_match: IfMatch = None,
) -> Response:
    """Cancel one occurrence of a series (RFC 5545 EXDATE; editors and owners); it
    drops the occurrence's changed values. Undo with `DELETE .../override`."""
    request = _occurrence_request(event_id, recurrence_id, _OccurrenceChange.ACTION_CANCEL)
    return await _change_occurrence(gateway, if_match, request)


@router.delete(
    "/{event_id}/occurrences/{recurrence_id}/override",
    status_code=204,
    responses={
        **problem_responses(401, 403, 404, 409, 412, 422, 429),
        **documented_headers(204, "Back to the rule"),
    },
)
async def restore_occurrence(
    event_id: str,
    recurrence_id: RecurrenceId,
    user: CurrentUser,
    gateway: Services,
    if_match: IfMatch = None,
    allow_conflicts: Annotated[
        bool, Query(description="Restore even if it then overlaps the owner's other events")
    ] = False,
) -> Response:
    """Drop one occurrence's exception (a change or a cancellation): it happens as the
    rule says again. 404 if it has none."""
    request = _occurrence_request(event_id, recurrence_id, _OccurrenceChange.ACTION_RESTORE)
    request.allow_conflicts = allow_conflicts
    return await _change_occurrence(gateway, if_match, request)


def _occurrence_request(event_id: str, recurrence_id: str, action: int) -> _OccurrenceChange:
    return _OccurrenceChange(
        event_id=event_id,
        recurrence_id=recurrence_id,
        action=action,  # type: ignore[arg-type]
    )


async def _change_occurrence(
    gateway: Gateway,
    if_match: str | None,
    request: _OccurrenceChange,
    with_body: bool = False,
) -> Response:
    await apply_if_match(request, if_match, request.event_id, gateway)
    answer = await gateway.events.ChangeOccurrence(request)
    headers = {"ETag": etag(answer.version)}
    if not with_body:
        return Response(status_code=204, headers=headers)
    return JSONResponse(Occurrence.fields_from_proto(answer.occurrence), headers=headers)
