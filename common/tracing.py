"""Traces with OpenTelemetry, exported over OTLP/gRPC; off unless `EVENTHUB_OTEL_ENDPOINT`
is set.

Off, nothing is installed (no provider, no instrumentation, not even the SDK's import)
and every hook below answers None or a do-nothing context after one check, so no trace
context is ever made, serialised or stored.

On, the gateway picks `EVENTHUB_OTEL_SAMPLE_RATIO` of its requests at random and traces
them (`RequestSpans`); every hop of such a request continues its trace:
- gRPC: the channel (`common.grpc_client`) sends `traceparent` in a traced call's
  metadata from a client span; the server's interceptor (`server_interceptors`)
  continues it in a server span.
- SQL (psycopg, under SQLAlchemy too): the client spans of its instrumentation, with
  statements but never their parameters; a pipelined transaction is one span
  (`sql_batch`). Redis is not traced: its instrumentation cost
  the gateway's cached reads 15% with 10% of requests traced (`bench/RESULTS.md`).
- NATS: a write stores the W3C context of its span with each outbox message
  (`trace_headers`); the relay sends it as message headers, and a consumer stores
  the message in a span that is a child of that one (`consuming`).

Nothing else is traced, and what is not traced costs next to nothing: instrumentation
is suppressed in each process (`setup_tracing`) and turned back on only in the context
of a traced span, so a statement or command of an untraced request, or of background
work (the outbox relay, sweeps, purges), skips it after one look-up; untraced calls
carry no trace context. The gateway ignores trace context sent by clients (a client
could have every request traced).
"""

import random
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any

import grpc
import psycopg
from nats.aio.msg import Msg
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from common.config import CommonSettings

# W3C trace context headers (`traceparent`, and `tracestate` if any) of a span.
TraceHeaders = dict[str, str]

_W3C = TraceContextTextMapPropagator()
_NOTHING: AbstractContextManager[None] = nullcontext()
_SUPPRESS = otel_context._SUPPRESS_INSTRUMENTATION_KEY
_UNTRACED = otel_context.set_value(_SUPPRESS, True, Context())
# gRPC codes that say the server failed (the others are the caller's doing).
_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
# HTTP paths never traced: probes and metrics, the change stream (a span would last as
# long as its connection) and the secret calendar feeds (their URL is the secret).
_UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/api/events/stream"})
_SECRET_PATH_PREFIX = "/api/calendar/feed/"

_tracer: trace.Tracer | None = None  # None: tracing is off
_ratio = 0.0


def setup_tracing(service: str, settings: CommonSettings) -> None:
    """Trace this process as `service` if `settings.otel_endpoint` is set; else do nothing.
    Call it before the event loop starts (or the app is made): what runs after it
    inherits the suppressed instrumentation. Spans still queued when the process exits
    are flushed then."""
    global _tracer, _ratio
    if not settings.otel_endpoint or _tracer is not None:
        return
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = settings.otel_endpoint
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=not endpoint.startswith("https://"))
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": service, "service.namespace": settings.namespace}
        ),
        sampler=_requests_only(),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    PsycopgInstrumentor().instrument(tracer_provider=provider)
    otel_context.attach(_UNTRACED)
    _tracer, _ratio = provider.get_tracer("eventhub"), settings.otel_sample_ratio


def _requests_only() -> Any:
    """Spans follow their parent; without one, only a request's server span is kept
    (whatever else starts outside a traced span is a slip, not a trace)."""
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_ON,
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
    )

    drop = SamplingResult(Decision.DROP)

    class RequestsOnly(Sampler):
        def __init__(self) -> None:
            self._by_parent = ParentBased(ALWAYS_ON)

        def should_sample(  # type: ignore[no-untyped-def]
            self, parent_context, trace_id, name, kind=None, *args, **kwargs
        ) -> SamplingResult:
            parent = trace.get_current_span(parent_context).get_span_context()
            if kind is not SpanKind.SERVER and not parent.is_valid:
                return drop
            return self._by_parent.should_sample(
                parent_context, trace_id, name, kind, *args, **kwargs
            )

        def get_description(self) -> str:
            return "RequestsOnly"

    return RequestsOnly()


def enabled() -> bool:
    return _tracer is not None


def _traced(span: Span, parent: Context | None = None) -> Context:
    """`parent` (else the current context) with `span` current and instrumentation on."""
    return otel_context.set_value(_SUPPRESS, False, trace.set_span_in_context(span, parent))


@contextmanager
def _current(span: Span, parent: Context | None = None) -> Iterator[None]:
    token = otel_context.attach(_traced(span, parent))
    try:
        yield
    finally:
        otel_context.detach(token)


@contextmanager
def _untraced() -> Iterator[None]:
    token = otel_context.attach(_UNTRACED)
    try:
        yield
    finally:
        otel_context.detach(token)


# HTTP (the gateway)


class RequestSpans:
    """ASGI middleware (the gateway's outermost, only while tracing is on): a server span
    for the requests picked, current while the app answers; the others run untraced."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or random.random() >= _ratio or _untraced_path(scope["path"]):
            # As it is: the process's context is untraced (`setup_tracing`).
            await self.app(scope, receive, send)
            return
        assert _tracer is not None
        method = scope["method"]
        span = _tracer.start_span(
            method,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        )
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with _current(span):
                await self.app(scope, receive, send_status)
        finally:
            if route := getattr(scope.get("route"), "path", None):
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()


def _untraced_path(path: str) -> bool:
    return path in _UNTRACED_PATHS or path.startswith(_SECRET_PATH_PREFIX)


# gRPC


def client_span(method: str) -> tuple[Span, list[tuple[str, str]]] | None:
    """Within a traced span: a client span for a call of `method` (`/package.Service/
    Method`) and the metadata that makes the server's span its child; else None."""
    if _tracer is None or current_span() is None:
        return None
    span = _tracer.start_span(method[1:], kind=SpanKind.CLIENT, attributes={"rpc.system": "grpc"})
    carrier: TraceHeaders = {}
    _W3C.inject(carrier, context=trace.set_span_in_context(span))
    return span, list(carrier.items())


async def call_in_span(call: Any, span: Span) -> Any:
    """Await a gRPC call, then end its client span with the call's status."""
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        _set_grpc_status(span, error.code())
        raise
    finally:
        span.end()


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """What a gRPC server adds to trace its calls: nothing while tracing is off."""
    return [] if _tracer is None else [_ServerSpans(_tracer)]


class _ServerSpans(grpc.aio.ServerInterceptor):
    """A unary call that brings `traceparent` runs in a server span, its caller's child;
    any other is left as it is (untraced)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        carrier = {k: v for k, v in details.invocation_metadata or () if k in _W3C.fields}
        if handler is None or handler.unary_unary is None or "traceparent" not in carrier:
            return handler
        inner, tracer, name = handler.unary_unary, self._tracer, details.method[1:]
        parent = _W3C.extract(carrier)

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            span = tracer.start_span(
                name, context=parent, kind=SpanKind.SERVER, attributes={"rpc.system": "grpc"}
            )
            try:
                with _current(span, parent):
                    return await inner(request, context)
            finally:
                _set_grpc_status(span, context.code())
                span.end()

        return grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _set_grpc_status(span: Span, code: grpc.StatusCode | None) -> None:
    code = code or grpc.StatusCode.OK
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_FAULTS:
        span.set_status(Status(StatusCode.ERROR, code.name))


# The NATS hop and work done for several requests at once


def trace_headers() -> TraceHeaders | None:
    """The W3C context of the current span if it is traced, for a message queued now
    (`common.outbox`); None when tracing is off or the request is not traced."""
    if current_span() is None:
        return None
    carrier: TraceHeaders = {}
    _W3C.inject(carrier)
    return carrier


def current_span() -> Span | None:
    """The current span if it is traced, to continue in another task (`within`); None
    when tracing is off or the request is not traced."""
    if _tracer is None:
        return None
    span = trace.get_current_span()
    return span if span.get_span_context().trace_flags.sampled else None


def within(span: Span | None) -> AbstractContextManager[Any]:
    """Make `span` (from `current_span`) current again, without ending it."""
    return _NOTHING if span is None else _current(span)


def batch_span(name: str, spans: Sequence[Span | None]) -> AbstractContextManager[Any]:
    """Work done for several requests at once (their `current_span`s), in a task of its
    own: a span current while it runs, the child of the first traced request, linked to
    the other traced ones; untraced work if none is traced."""
    if _tracer is None:
        return _NOTHING
    traced = [span for span in spans if span]
    if not traced:
        return _untraced()
    return _batch_span(_tracer, name, traced, len(spans))


@contextmanager
def _batch_span(tracer: trace.Tracer, name: str, traced: list[Span], size: int) -> Iterator[None]:
    parent = trace.set_span_in_context(traced[0])
    span = tracer.start_span(
        name,
        context=parent,
        links=[Link(other.get_span_context()) for other in traced[1:]],
        attributes={"eventhub.batch_size": size},
    )
    try:
        with _current(span, parent):
            yield
    except BaseException as error:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        raise
    finally:
        span.end()


def sql_batch(connection: psycopg.AsyncConnection) -> AbstractContextManager[None]:
    """Around a pipelined transaction on `connection` (`common.db.pipelined_transaction`)
    within a traced span: one client span for all of it, holding its statements.

    In pipeline mode a statement's `execute` returns before the server has run it, so
    a span per statement would time only its queuing (and a traced write made five of
    them); this one lasts until COMMIT is answered."""
    if _tracer is None or current_span() is None:
        return _NOTHING
    return _sql_batch(_tracer, connection)


_batch_statements: ContextVar[list[str]] = ContextVar("batch_statements")


class _RecordingCursor(psycopg.AsyncCursor[Any]):
    """Notes each statement for the batch's span, untraced itself."""

    async def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        text = query if isinstance(query, str) else query.as_string(self.connection)
        _batch_statements.get().append(text)
        return await super().execute(query, *args, **kwargs)


@contextmanager
def _sql_batch(tracer: trace.Tracer, connection: psycopg.AsyncConnection) -> Iterator[None]:
    statements: list[str] = []
    recording = _batch_statements.set(statements)
    traced_cursor, connection.cursor_factory = connection.cursor_factory, _RecordingCursor
    span = tracer.start_span(
        "transaction", kind=SpanKind.CLIENT, attributes={"db.system": "postgresql"}
    )
    try:
        yield
    except BaseException as error:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        raise
    finally:
        connection.cursor_factory = traced_cursor
        _batch_statements.reset(recording)
        span.set_attribute("db.statement", ";\n".join(statements))
        span.set_attribute("db.operation.batch.size", len(statements))
        span.end()


def consuming(name: str, messages: Sequence[Msg]) -> AbstractContextManager[None]:
    """While a consumer stores a batch: one consumer span per message that came with a
    trace context, each the child of the span that queued it. The first is current, so
    the batch's statements appear under it."""
    if _tracer is None:
        return _NOTHING
    traced = [msg for msg in messages if msg.headers and "traceparent" in msg.headers]
    return _consumer_spans(_tracer, name, traced) if traced else _NOTHING


@contextmanager
def _consumer_spans(tracer: trace.Tracer, name: str, messages: list[Msg]) -> Iterator[None]:
    parents = [_W3C.extract(msg.headers or {}) for msg in messages]
    spans = [
        tracer.start_span(
            name,
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": msg.subject,
                "messaging.message.id": (msg.headers or {}).get("Nats-Msg-Id", ""),
            },
        )
        for msg, parent in zip(messages, parents, strict=True)
    ]
    try:
        with _current(spans[0], parents[0]):
            yield
    except BaseException as error:
        for span in spans:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        raise
    finally:
        for span in spans:
            span.end()
