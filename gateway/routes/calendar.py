"""iCalendar (RFC 5545) exports: one event, or the caller's whole calendar, streamed
page by page as the event service writes it."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header
from starlette.responses import Response, StreamingResponse

from eventhub.events.v1 import events_pb2
from gateway.deps import CurrentUser, Services
from gateway.etags import IF_NONE_MATCH_DESCRIPTION, etag, not_modified
from gateway.openapi import problem_responses

router = APIRouter(tags=["iCalendar"])

CALENDAR_TYPE = "text/calendar; charset=utf-8"
_CALENDAR = {
    "description": "An iCalendar (RFC 5545) VCALENDAR",
    "content": {"text/calendar": {"schema": {"type": "string"}}},
}


@router.get(
    "/api/events/{event_id}.ics",
    response_class=Response,
    responses={
        200: _CALENDAR,
        304: {"description": "Not modified"},
        **problem_responses(401, 404, 429),
    },
)
async def event_ics(
    event_id: str,
    user: CurrentUser,
    gateway: Services,
    if_none_match: Annotated[
        str | None, Header(max_length=1000, description=IF_NONE_MATCH_DESCRIPTION)
    ] = None,
) -> Response:
    """The event as an iCalendar calendar: its VEVENT (UID = id, SEQUENCE = version − 1),
    one per exception (RECURRENCE-ID), EXDATEs for cancellations, and VTIMEZONE."""
    answer = await gateway.events.ExportEvent(events_pb2.ExportEventRequest(id=event_id))
    headers = {"ETag": etag(answer.version)}
    if not_modified(if_none_match, answer.version):
        return Response(status_code=304, headers=headers)
    return Response(answer.ics, media_type=CALENDAR_TYPE, headers=headers)


@router.get(
    "/api/calendar.ics",
    response_class=StreamingResponse,
    responses={200: _CALENDAR, **problem_responses(401, 429)},
)
async def calendar_ics(user: CurrentUser, gateway: Services) -> Response:
    """Every event the caller can see as one iCalendar calendar, streamed."""
    first = await gateway.events.ExportCalendar(events_pb2.ExportCalendarRequest())

    async def pages() -> AsyncIterator[bytes]:
        page = first
        yield page.ics
        while page.next_cursor:
            page = await gateway.events.ExportCalendar(
                events_pb2.ExportCalendarRequest(cursor=page.next_cursor)
            )
            yield page.ics

    return StreamingResponse(
        pages(),
        media_type=CALENDAR_TYPE,
        headers={"Content-Disposition": 'attachment; filename="calendar.ics"'},
    )
