from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import JSONResponse as StarletteJSONResponse


class JSONResponse(StarletteJSONResponse):
    """JSON encoded with orjson: several times faster than the standard library.
    UTC datetimes end in `Z`, as pydantic writes them."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z)


def items_response(items: list[BaseModel], status_code: int = 200, **extra: Any) -> JSONResponse:
    """`{"items": [...]}` of models built from our own services' data, skipping
    FastAPI's response validation, which costs more than the rest of a long list."""
    content = {"items": [item.model_dump() for item in items], **extra}
    return JSONResponse(content, status_code=status_code)
