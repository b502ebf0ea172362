"""Free/busy: when users are busy (their own events, no details), and who may see
the caller's. The sharing service decides who may see whose; the times come from
the event service through it."""

from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from eventhub.sharing.v1 import sharing_pb2
from gateway.deps import CurrentUser, Services
from gateway.openapi import problem_responses
from gateway.responses import JSONResponse
from gateway.schemas.freebusy import FreeBusy, FreeBusyGrant, FreeBusyGrantList, FreeBusyIn

router = APIRouter(prefix="/api/freebusy", tags=["free/busy"])


@router.post("", response_model=FreeBusy, responses=problem_responses(401, 422, 429))
async def free_busy(body: FreeBusyIn, user: CurrentUser, gateway: Services) -> Response:
    """Merged busy intervals of each user's own events (exceptions applied) in the
    window, in `timezone`'s offsets: the caller's, and those of users who granted the
    caller theirs; for others an error (`forbidden`, `not_found`), still 200. A read:
    an `Idempotency-Key` is ignored."""
    answer = await gateway.sharing.FreeBusy(body.to_proto())
    zone = ZoneInfo(body.timezone)
    head = orjson.dumps(
        {
            "start": body.start.astimezone(zone),
            "end": body.end.astimezone(zone),
            "timezone": body.timezone,
        },
        option=orjson.OPT_UTC_Z,
    )
    answers = {asked.key: found for asked, found in zip(body.users, answer.users, strict=True)}
    users = [
        orjson.dumps(key)
        + b':{"busy":'
        + (found.busy_json or b"[]")
        + b',"errors":'
        + orjson.dumps(
            [{"reason": found.error_reason, "message": found.error_message}]
            if found.error_reason
            else []
        )
        + b"}"
        for key, found in answers.items()
    ]
    # The busy times arrive as JSON (cached so): relayed, not parsed and written again.
    return Response(
        head[:-1] + b',"users":{' + b",".join(users) + b"}}", media_type="application/json"
    )


@router.get("/grants", responses=problem_responses(401, 429))
async def list_grants(user: CurrentUser, gateway: Services) -> FreeBusyGrantList:
    """The users who may see the caller's free/busy."""
    answer = await gateway.sharing.ListFreeBusyGrants(sharing_pb2.ListFreeBusyGrantsRequest())
    return FreeBusyGrantList(items=[FreeBusyGrant.from_proto(g) for g in answer.items])


@router.put(
    "/grants/{user_id}",
    status_code=201,
    response_model=FreeBusyGrant,
    responses={200: {"description": "Already granted"}, **problem_responses(401, 404, 422, 429)},
)
async def grant(user_id: str, user: CurrentUser, gateway: Services) -> Response:
    """Let a user see the caller's free/busy (201; 200 if they already may)."""
    answer = await gateway.sharing.PutFreeBusyGrant(
        sharing_pb2.PutFreeBusyGrantRequest(user_id=user_id)
    )
    shown = FreeBusyGrant.from_proto(answer.grant).model_dump(mode="json")
    return JSONResponse(shown, status_code=201 if answer.created else 200)


@router.delete("/grants/{user_id}", status_code=204, responses=problem_responses(401, 404, 429))
async def revoke_grant(user_id: str, user: CurrentUser, gateway: Services) -> Response:
    """Stop letting a user see the caller's free/busy."""
    await gateway.sharing.DeleteFreeBusyGrant(
        sharing_pb2.DeleteFreeBusyGrantRequest(user_id=user_id)
    )
    return Response(status_code=204)
