"""Every error the gateway answers is RFC 9457 problem+json, built here."""

import logging
import re
from http import HTTPStatus
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from common.errors import DomainError, problem_from_rpc_error
from gateway.responses import JSONResponse

log = logging.getLogger(__name__)

HTTP_STATUS_BY_GRPC_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.OUT_OF_RANGE: 410,  # a sync token that cannot be honoured
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    # No service answers this status: it is gRPC's own "message larger than max".
    grpc.StatusCode.RESOURCE_EXHAUSTED: 502,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
# Details of these come from inside the system and are not shown to clients.
_UPSTREAM_DETAIL = {
    500: "internal error",
    501: "not implemented",
    502: "a service this request needs gave an answer too large to pass on",
    503: "a service this request needs is unavailable; retry later",
    504: "a service this request needs did not answer in time",
}


class HTTPProblem(Exception):
    """An error the gateway itself decides on (413, 429, 304-less cases...)."""

    def __init__(
        self,
        status: int,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    status: int,
    detail: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or HTTPStatus(status).description,
        **extra,
    }
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = (
        [str(p) for p in loc[1:]]
        if loc and loc[0] in ("body", "query", "path", "header")
        else [str(p) for p in loc]
    )
    return ".".join(parts) or str(loc[0] if loc else "body")


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            errors.append({"field": "body", "message": "malformed JSON"})
            continue
        message = str(error.get("msg", "invalid value"))
        errors.append({"field": _field_path(tuple(error.get("loc", ()))), "message": message})
    return errors


def problem_for_rpc_error(error: grpc.aio.AioRpcError) -> JSONResponse:
    status = HTTP_STATUS_BY_GRPC_CODE.get(error.code(), 500)
    if status in _UPSTREAM_DETAIL:
        log.warning(
            "upstream call failed",
            extra={"grpc_code": error.code().name, "detail": error.details()},
        )
        headers = {"Retry-After": "1"} if status == 503 else None
        return problem_response(status, detail=_UPSTREAM_DETAIL[status], headers=headers)
    problem = problem_from_rpc_error(error)
    detail = problem.pop("detail", None) or error.details()
    title = problem.pop("title", None)
    return problem_response(status, detail=detail, title=title, **problem)


def validation_problem(errors: list[dict[str, str]]) -> JSONResponse:
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem_response(422, detail=detail, title="Validation failed", errors=errors)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PARAMS = re.compile(r"{[^}]*}")


def allowed_methods(request: Request) -> str:
    """Every method documented for the resource at this path (Starlette names only the
    first route's). Of the templates the path matches, the resource is the one with
    the most fixed characters: /api/events/batch is its own resource, and so is
    /api/events/x.ics, though /api/events/{event_id} matches both."""
    paths = request.app.openapi()["paths"]
    path = request.scope["path"]
    matching = [template for template in paths if _template_pattern(template).fullmatch(path)]
    if not matching:
        return ""
    resource = max(matching, key=lambda template: len(_PARAMS.sub("", template)))
    return ", ".join(method for method in _METHODS if method.lower() in paths[resource])


def _template_pattern(template: str) -> re.Pattern[str]:
    """`/api/events/{event_id}.ics` as a pattern: each parameter one path segment."""
    fixed = (re.escape(part) for part in _PARAMS.split(template))
    return re.compile("[^/]+".join(fixed))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_exception(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:
            # FastAPI and Starlette raise 400 only for a body they cannot decode (bad
            # UTF-8, JSON nested too deep, broken multipart): malformed input is 422 here.
            return validation_problem([{"field": "body", "message": "malformed body"}])
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return problem_response(exc.status_code, detail=str(exc.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def request_validation(request: Request, exc: RequestValidationError) -> Response:
        return validation_problem(validation_errors(exc))

    @app.exception_handler(HTTPProblem)
    async def http_problem(request: Request, exc: HTTPProblem) -> Response:
        return problem_response(exc.status, detail=exc.detail, headers=exc.headers, **exc.extra)

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        status = HTTP_STATUS_BY_GRPC_CODE.get(exc.code, 500)
        headers = {"Retry-After": "1"} if status == 503 else None
        return problem_response(
            status, detail=exc.detail, title=exc.title, headers=headers, **exc.extra
        )

    @app.exception_handler(grpc.aio.AioRpcError)
    async def rpc_error(request: Request, exc: grpc.aio.AioRpcError) -> Response:
        return problem_for_rpc_error(exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return problem_response(500, detail="internal error")
