"""`GET /api/events/stream`: the caller's changes as Server-Sent Events
(`gateway.change_stream`)."""

import math
from typing import Annotated

from fastapi import APIRouter, Header
from redis.exceptions import RedisError
from starlette.responses import Response, StreamingResponse

from gateway.deps import CurrentUser, Services
from gateway.errors import HTTPProblem
from gateway.openapi import problem_responses

router = APIRouter(prefix="/api/events", tags=["events"])

_EVENT_STREAM = {
    "description": "Server-Sent Events: `id`, `event` (changed, deleted, shared, "
    "access_lost, reset, closed) and JSON `data` per change; `: ping` comments between",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: _EVENT_STREAM, **problem_responses(401, 422, 429, 503)},
)
async def change_stream(
    user: CurrentUser,
    gateway: Services,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=64,
            description="The `id` of the last message received: resume after it",
        ),
    ] = None,
) -> Response:
    """Each change to an event the caller may see, within 2 s, in commit order, until
    the access token expires or is revoked (`event: closed`). At most
    `EVENTHUB_STREAMS_PER_USER` (5) open per user across replicas."""
    streams = gateway.streams
    client = streams.new_client(user)
    try:
        wait = await streams.slots.take(client)
    except RedisError:
        raise HTTPProblem(
            503, "stream slots unavailable, retry later", headers={"Retry-After": "1"}
        ) from None
    if wait is not None:
        raise HTTPProblem(
            429,
            f"at most {gateway.settings.streams_per_user} open streams per user",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    return StreamingResponse(
        streams.frames(client, last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
