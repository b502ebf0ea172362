"""Responses the routes build themselves, skipping FastAPI's response-model
validation and serialisation of data our own services just produced (the
routes keep `response_model=`, so OpenAPI still documents the shapes)."""

from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response


class JSONResponse(StarletteJSONResponse):
    """JSON encoded with orjson: several times faster than the standard library.
    UTC datetimes end in `Z`, as pydantic writes them."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z)


def items_response(
    items: list[dict[str, Any]], status_code: int = 200, **extra: Any
) -> JSONResponse:
    """`{"items": [...], **extra}` of plain values (a model's `fields_from_proto`)."""
    return JSONResponse({"items": items, **extra}, status_code=status_code)


def items_json_response(items_json: bytes, **extra: Any) -> Response:
    """`{"items": [...], **extra}` around an items array a service already wrote as
    JSON (`json_items` in the event service's API): relayed as it is."""
    tail = b"".join(
        b"," + orjson.dumps(name) + b":" + orjson.dumps(value) for name, value in extra.items()
    )
    return Response(
        b'{"items":' + (items_json or b"[]") + tail + b"}", media_type="application/json"
    )
