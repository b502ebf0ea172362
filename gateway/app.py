"""The FastAPI application: routers, middleware, error handlers, lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from common import tracing
from common.heap import freeze_startup_heap
from gateway.clients import Gateway
from gateway.config import GatewaySettings
from gateway.errors import install_error_handlers
from gateway.idempotency import IdempotencyMiddleware
from gateway.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from gateway.openapi import document_common_behaviour
from gateway.responses import JSONResponse
from gateway.routes import (
    auth,
    calendar,
    change_stream,
    events,
    freebusy,
    history,
    ops,
    sharing,
)


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = Gateway.connect(settings)
        gateway.start()
        gateway.streams.end_on_exit_signal()
        app.state.gateway = gateway
        freeze_startup_heap()
        try:
            yield
        finally:
            await gateway.close()

    app = FastAPI(
        title="EventHub API",
        version="1.0.0",
        description="Collaborative events: recurrence, sharing, history.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        # FastAPI's own telemetry stays off (requests are traced by
        # `common.tracing.RequestSpans`, at a fraction of its cost); saying so spares it
        # looking for a provider on every request (a few percent of a cached read).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    if tracing.enabled():
        app.add_middleware(tracing.RequestSpans)
    # FastAPI tries the routers in this order on every request (tens of µs each), so
    # the event routes, which carry nearly all traffic, come first.
    # The stream's and the exports' paths come before `/api/events/{event_id}`, which
    # would take them.
    for module in (change_stream, calendar, events, sharing, history, freebusy, auth, ops):
        app.include_router(module.router)
    _declare_common_behaviour(app)
    return app


def _declare_common_behaviour(app: FastAPI) -> None:
    build = app.openapi
    documented: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not documented:
            documented.update(document_common_behaviour(build()))
        return documented

    app.openapi = openapi  # type: ignore[method-assign]
