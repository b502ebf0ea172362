"""Entity tags of events: `ETag` is the event's version as a strong tag (`"7"`);
If-Match guards changes (412 when stale) and If-None-Match reads (304)."""

import re
from typing import Annotated, Any

from fastapi import Header

from common.notifications import parse_version
from eventhub.events.v1 import events_pb2
from gateway.deps import Services
from gateway.responses import JSONResponse
from gateway.schemas.events import Event

_ENTITY_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*')
# A version no event has: an If-Match that can never match still gets the
# event's 404/403 first and 412 after that.
_NO_VERSION = 0

IfMatch = Annotated[
    str | None,
    Header(description='Apply only if the event is at this version (`"7"`); else 412'),
]
IF_NONE_MATCH_DESCRIPTION = '`"7"`: 304 Not Modified if the event is still at version 7'


ETAG_HEADER = {"description": 'The event\'s version as a strong tag, e.g. `"3"`'}


def documented_headers(status: int, description: str, location: bool = False) -> dict:
    headers = {"ETag": {**ETAG_HEADER, "schema": {"type": "string"}}}
    if location:
        headers["Location"] = {"description": "The new event's URL", "schema": {"type": "string"}}
    return {status: {"description": description, "headers": headers}}


def etag(version: int) -> str:
    return f'"{version}"'


def entity_tags(header: str) -> list[tuple[bool, str]]:
    """(weak, value) of each tag of an If-Match / If-None-Match list; a bare number
    is taken as a strong tag."""
    tags = []
    for item in header.split(","):
        match = _ENTITY_TAG.fullmatch(item)
        if match:
            tags.append((bool(match.group(1)), match.group(2)))
        elif parse_version(item.strip()) is not None:
            tags.append((False, item.strip()))
    return tags


async def _expected_version(if_match: str | None, event_id: str, gateway: Services) -> int | None:
    """The version an If-Match header allows the change at (strong comparison)."""
    if if_match is None or if_match.strip() == "*":
        return None
    tags = entity_tags(if_match)
    versions = {
        version
        for weak, value in tags
        if not weak and (version := parse_version(value)) is not None
    }
    if len(versions) > 1:
        current = await gateway.events.GetEvent(events_pb2.GetEventRequest(id=event_id))
        return current.version if current.version in versions else _NO_VERSION
    return versions.pop() if versions else _NO_VERSION


def not_modified(if_none_match: str | None, version: int) -> bool:
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(value == str(version) for _, value in entity_tags(if_none_match))


def event_response(
    event: events_pb2.Event, status_code: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The event as JSON with its `ETag`, ready to send (see `gateway.responses`)."""
    return fields_response(Event.fields_from_proto(event), status_code, headers)


def fields_response(
    fields: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    """`Event` response fields as JSON with their `ETag`."""
    return JSONResponse(
        fields,
        status_code=status_code,
        headers={"ETag": etag(fields["version"]), **(headers or {})},
    )


async def apply_if_match(
    request: Any, if_match: str | None, event_id: str, gateway: Services
) -> None:
    """Set `request.expected_version` when an If-Match header constrains the version."""
    expected = await _expected_version(if_match, event_id, gateway)
    if expected is not None:
        request.expected_version = expected
