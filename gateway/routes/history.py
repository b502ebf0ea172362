"""Versions, changelog, diffs and rollback of an event (kept by the history service)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response

from eventhub.history.v1 import history_pb2
from gateway.deps import CurrentUser, Services
from gateway.etags import IfMatch, apply_if_match, documented_headers, event_response
from gateway.openapi import problem_responses
from gateway.schemas.events import Event
from gateway.schemas.history import (
    Changelog,
    ChangelogEntry,
    Diff,
    RollbackIn,
    Version,
    VersionList,
    VersionSummary,
)

router = APIRouter(prefix="/api/events", tags=["history"])

MAX_PAGE = 1000
MAX_VERSION = 2**63 - 1

VersionId = Annotated[int, Path(ge=1, le=MAX_VERSION, description="A version number")]
Limit = Annotated[
    int | None,
    Query(ge=1, le=MAX_PAGE, description=f"Versions per page (1-{MAX_PAGE}, default {MAX_PAGE})"),
]
After = Annotated[
    int,
    Query(
        ge=0,
        le=MAX_VERSION,
        description="Only versions after this version number (the `Link: rel=next` page sets it)",
    ),
]

_PAGED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Oldest first. A longer history continues on the page that the "
        '`Link` header names with `rel="next"` (absent on the last page).',
        "headers": {
            "Link": {
                "description": 'RFC 8288 link to the next page: `<...?after=N>; rel="next"`',
                "schema": {"type": "string"},
            }
        },
    },
    **problem_responses(401, 404, 422, 429),
}
_READ = problem_responses(401, 404, 422, 429)
_ROLLBACK = {
    **problem_responses(401, 403, 404, 409, 412, 422, 429),
    **documented_headers(200, "The event at its new version"),
}


def _link_next_page(request: Request, response: Response, next_after: int) -> None:
    if next_after:
        url = request.url.include_query_params(after=next_after)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'


@router.get("/{event_id}/history", responses=_PAGED)
async def list_versions(
    event_id: str,
    request: Request,
    response: Response,
    user: CurrentUser,
    gateway: Services,
    limit: Limit = None,
    after: After = 0,
) -> VersionList:
    """Every version of the event, oldest first (any role, also after deletion)."""
    page = await gateway.history.ListVersions(
        history_pb2.ListVersionsRequest(event_id=event_id, limit=limit or 0, after_version=after)
    )
    _link_next_page(request, response, page.next_after_version)
    return VersionList(items=[VersionSummary.from_proto(item) for item in page.items])


@router.get("/{event_id}/history/{version_id}", responses=_READ)
async def get_version(
    event_id: str, version_id: VersionId, user: CurrentUser, gateway: Services
) -> Version:
    """One version with the full event as it stood then."""
    version = await gateway.history.GetVersion(
        history_pb2.GetVersionRequest(event_id=event_id, version=version_id)
    )
    return Version.from_version_proto(version)


@router.post("/{event_id}/rollback/{version_id}", response_model=Event, responses=_ROLLBACK)
async def rollback(
    event_id: str,
    version_id: VersionId,
    user: CurrentUser,
    gateway: Services,
    body: Annotated[RollbackIn | None, Body()] = None,
    if_match: IfMatch = None,
) -> Response:
    """Make a new version whose content equals `version_id`'s (editor or owner).

    Audited as `rolled_back`; honours `If-Match` (412) and conflict detection
    (409, unless `allow_conflicts`) like an update.
    """
    request = history_pb2.RollbackEventRequest(
        event_id=event_id,
        version=version_id,
        allow_conflicts=body.allow_conflicts if body else False,
    )
    await apply_if_match(request, if_match, event_id, gateway)
    return event_response(await gateway.history.RollbackEvent(request))


@router.get("/{event_id}/changelog", responses=_PAGED)
async def changelog(
    event_id: str,
    request: Request,
    response: Response,
    user: CurrentUser,
    gateway: Services,
    limit: Limit = None,
    after: After = 0,
) -> Changelog:
    """Every version with the fields it changed, oldest first."""
    page = await gateway.history.GetChangelog(
        history_pb2.GetChangelogRequest(event_id=event_id, limit=limit or 0, after_version=after)
    )
    _link_next_page(request, response, page.next_after_version)
    return Changelog(items=[ChangelogEntry.from_entry_proto(item) for item in page.items])


@router.get("/{event_id}/diff/{version_id1}/{version_id2}", responses=_READ)
async def diff(
    event_id: str,
    version_id1: VersionId,
    version_id2: VersionId,
    user: CurrentUser,
    gateway: Services,
) -> Diff:
    """The editable fields that differ between two versions, in either order."""
    result = await gateway.history.DiffVersions(
        history_pb2.DiffVersionsRequest(
            event_id=event_id, from_version=version_id1, to_version=version_id2
        )
    )
    return Diff.from_proto(result)
