"""OpenAPI declarations of the problem+json error responses."""

from http import HTTPStatus
from typing import Any

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; some errors add members (conflicts, index).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

# Statuses any route may answer: body too large, and upstream failures.
_EVERY_ROUTE = (413, 500, 503, 504)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status (and those every route may give) as problem+json."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
        }
        for status in sorted({*statuses, *_EVERY_ROUTE})
    }


def _header(description: str, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


REQUEST_ID_HEADER = _header("The request's id, echoed from the request or made up", True)
RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": _header("Requests allowed in the window"),
    "RateLimit-Remaining": _header("Requests left in the window"),
    "RateLimit-Reset": _header("Seconds until the window frees a request"),
}
RETRY_AFTER_HEADER = _header("Seconds to wait before retrying")
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A repeat with the same key, user and body within 24 h returns the first "
    "response and applies nothing again; the same key with another body is 422, and while "
    "the first request runs, 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def document_common_behaviour(schema: dict[str, Any]) -> dict[str, Any]:
    """What the middleware and dependencies add to every route, declared on each operation:
    `X-Request-ID`, rate-limit headers, `Retry-After`, `WWW-Authenticate`, 413 and 500 for
    any route, and `Idempotency-Key` (with its 409 and 422) on POST routes."""
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if method == "post":
                operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY)
                extra: tuple[int, ...] = (409, 413, 422, 500)
            else:
                extra = (413, 500)
            for status, response in problem_responses(*extra).items():
                if str(status) in responses:
                    responses[str(status)].setdefault("content", response["content"])
                else:
                    responses[str(status)] = response
            operation["responses"] = responses = dict(sorted(responses.items()))
            limited = "429" in responses
            for status, response in responses.items():
                headers = response.setdefault("headers", {})
                headers["X-Request-ID"] = REQUEST_ID_HEADER
                if limited:
                    headers.update(RATE_LIMIT_HEADERS)
                if status in ("429", "503"):
                    headers["Retry-After"] = RETRY_AFTER_HEADER
                if status == "401":
                    headers["WWW-Authenticate"] = _header("`Bearer`", True)
                if method == "post" and not status.startswith("5"):
                    headers["Idempotent-Replayed"] = _header("`true` on a replayed response")
    return schema
