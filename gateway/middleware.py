"""Pure ASGI middleware: request ids, body size limit, extra headers, metrics."""

import itertools
import re
import secrets
import time

from prometheus_client import Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.grpc_server import caller_var
from common.logging import request_id_var
from common.metrics import BoundLabels
from gateway.errors import problem_response

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,200}$")
# Request ids made here need to be unique, not secret: a random prefix per process and a
# counter (uuid4 costs a system call per request).
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)

REQUESTS = Counter("eventhub_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "eventhub_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
# Few label values: the routes, the methods the HTTP parser knows, the statuses answered.
_request_counts = BoundLabels(REQUESTS)
_latencies = BoundLabels(LATENCY)


def add_response_headers(scope: Scope, headers: dict[str, str]) -> None:
    """Headers for whatever response this request ends with, errors included."""
    scope.setdefault("state", {}).setdefault("extra_headers", {}).update(headers)


class RequestContextMiddleware:
    """Echoes or makes `X-Request-ID`, adds extra headers, records metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = (
            incoming
            if _VALID_REQUEST_ID.match(incoming)
            else f"{_ID_PREFIX}{next(_id_counter):016x}"
        )
        request_id_var.set(request_id)
        caller_var.set(None)
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                for name, value in scope.get("state", {}).get("extra_headers", {}).items():
                    headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            _request_counts(scope["method"], route, status).inc()
            _latencies(scope["method"], route).observe(time.perf_counter() - started)


class BodySizeLimitMiddleware:
    """413 for bodies over the limit, whether declared by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            # Raised while buffering outside the app (the app answers it itself).
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(413, detail=f"request body exceeds {self.max_bytes} bytes")
        await response(scope, receive, send)


class _BodyTooLarge(HTTPException):
    """An HTTPException so that the app's error handler answers it when the app is
    the one reading the body (FastAPI turns other exceptions there into 400)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body exceeds {max_bytes} bytes")
