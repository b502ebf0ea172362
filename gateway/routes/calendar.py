"""iCalendar (RFC 5545): exports of one event, of the caller's whole calendar and of
the secret feed URL that calendar apps subscribe to, streamed page by page as the
event service writes them; and imports of a calendar file."""

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field, field_serializer
from starlette.responses import Response, StreamingResponse

from common.timeutil import from_timestamp, rfc3339
from eventhub.events.v1 import events_pb2
from gateway.deps import CurrentUser, Services, apply_decision
from gateway.errors import HTTPProblem
from gateway.etags import IF_NONE_MATCH_DESCRIPTION, etag, not_modified
from gateway.openapi import problem_responses
from gateway.responses import items_response
from gateway.schemas.events import Event

router = APIRouter(tags=["iCalendar"])

CALENDAR_TYPE = "text/calendar; charset=utf-8"
MAX_SECRET_LENGTH = 64
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
        **problem_responses(401, 404, 422, 429),
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


class CalendarFeed(BaseModel):
    url: str = Field(description="Subscribe to it from a calendar app; it needs no token")
    created_at: datetime

    @field_serializer("created_at")
    def _utc(self, value: datetime) -> str:
        return rfc3339(value)


@router.post(
    "/api/calendar/feed",
    status_code=201,
    response_model=CalendarFeed,
    responses=problem_responses(401, 429),
)
async def rotate_feed(request: Request, user: CurrentUser, gateway: Services) -> CalendarFeed:
    """Make the caller's secret feed URL, or a new one: the old URL stops working at
    once. Logging out does not end it; DELETE does."""
    made = await gateway.events.RotateCalendarFeed(events_pb2.RotateCalendarFeedRequest())
    return CalendarFeed(
        url=str(request.url_for("feed_ics", secret=made.secret)),
        created_at=from_timestamp(made.created_at),
    )


@router.delete("/api/calendar/feed", status_code=204, responses=problem_responses(401, 404, 429))
async def delete_feed(user: CurrentUser, gateway: Services) -> Response:
    """End the caller's feed URL (404 if there is none)."""
    await gateway.events.DeleteCalendarFeed(events_pb2.DeleteCalendarFeedRequest())
    return Response(status_code=204)


@router.get(
    "/api/calendar/feed/{secret}.ics",
    name="feed_ics",
    response_class=StreamingResponse,
    responses={200: _CALENDAR, **problem_responses(404, 429)},
)
async def feed_ics(secret: str, request: Request, gateway: Services) -> Response:
    """The feed owner's calendar as of now, as `calendar.ics`; no token, the URL is
    the credential. Each secret has its own rate budget."""
    budget = hashlib.sha256(secret.encode()).hexdigest()[:32]
    apply_decision(request, await gateway.limiter.hit(gateway.feed_limit, "feed", budget))
    if len(secret) > MAX_SECRET_LENGTH:
        raise HTTPProblem(404, "no such calendar feed")
    return await _streamed(
        lambda cursor: gateway.events.ExportFeed(
            events_pb2.ExportFeedRequest(secret=secret, cursor=cursor)
        )
    )


@router.get(
    "/api/calendar.ics",
    response_class=StreamingResponse,
    responses={200: _CALENDAR, **problem_responses(401, 429)},
)
async def calendar_ics(user: CurrentUser, gateway: Services) -> Response:
    """Every event the caller can see as one iCalendar calendar, streamed."""
    return await _streamed(
        lambda cursor: gateway.events.ExportCalendar(
            events_pb2.ExportCalendarRequest(cursor=cursor)
        )
    )


class ImportWarning(BaseModel):
    line: int = Field(description="1-based line of the file")
    message: str


class ImportResult(BaseModel):
    items: list[Event] = Field(description="One per master VEVENT, in file order")
    warnings: list[ImportWarning] = Field(description="What was skipped (VTODO, VALARM...)")


@router.post(
    "/api/events/import",
    status_code=201,
    response_model=ImportResult,
    responses=problem_responses(401, 409, 413, 415, 422, 429),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/calendar": {"schema": {"type": "string"}}},
        }
    },
)
async def import_calendar(
    request: Request,
    user: CurrentUser,
    gateway: Services,
    allow_conflicts: Annotated[
        bool, Query(description="Import even what overlaps the caller's other events")
    ] = False,
) -> Response:
    """Import an iCalendar file, all or nothing: each master VEVENT becomes an event
    the caller owns, or updates the one its UID names (the event's id, or an earlier
    import of that UID); EXDATE and RECURRENCE-ID VEVENTs become its exceptions.

    A 422 names each error's VEVENT and property (`vevents.3.RRULE`, or `body`) and
    its `line`; a 409 carries the clashing VEVENT's `index`. At most 500 events.
    """
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "text/calendar":
        raise HTTPProblem(415, "send the file as text/calendar")
    imported = await gateway.events.ImportCalendar(
        events_pb2.ImportCalendarRequest(ics=await request.body(), allow_conflicts=allow_conflicts)
    )
    return items_response(
        [Event.fields_from_proto(item) for item in imported.items],
        status_code=201,
        warnings=[{"line": w.line, "message": w.message} for w in imported.warnings],
    )


async def _streamed(
    page_after: Callable[[str], Awaitable[events_pb2.ExportCalendarResponse]],
) -> Response:
    """A calendar streamed page by page; the first page is asked for before the
    response starts, so that its errors are answered as problems."""
    first = await page_after("")

    async def pages() -> AsyncIterator[bytes]:
        page = first
        yield page.ics
        while page.next_cursor:
            page = await page_after(page.next_cursor)
            yield page.ics

    return StreamingResponse(
        pages(),
        media_type=CALENDAR_TYPE,
        headers={"Content-Disposition": 'attachment; filename="calendar.ics"'},
    )
