"""Traces with OpenTelemetry, exported over OTLP/gRPC; off unless `EVENTHUB_OTEL_ENDPOINT`
is set.

Off, nothing is installed (no provider, no instrumentation, not even the SDK's import)
and every hook below answers None or a do-nothing context after one check, so no trace
context is ever made, serialised or stored.

On, a trace starts where a request enters: the gateway's HTTP server span, kept for
`EVENTHUB_OTEL_SAMPLE_RATIO` of requests; every hop after it follows that decision:
- gRPC: the channel (`common.grpc_client`) sends `traceparent` in each call's metadata
  from a client span; the server's interceptor (`server_interceptors`) continues it.
- SQL (psycopg, under SQLAlchemy too) and Redis: the client spans of their
  instrumentations, with statements and commands but never their parameters.
- NATS: a write stores the W3C context of its span with each outbox message
  (`trace_headers`); the relay sends it as message headers, and a consumer stores
  the message in a span that is a child of that one (`consuming`).

Nothing else starts a trace: statements of background loops (the outbox relay, its
sweep, purges) and calls without a traced caller are not recorded on their own. The
gateway ignores trace context sent by clients (a client could have every request
sampled); EventHub's own hops propagate W3C trace context explicitly.
"""

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import grpc
from nats.aio.msg import Msg
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from common.config import CommonSettings

# W3C trace context headers (`traceparent`, and `tracestate` if any) of a span.
TraceHeaders = dict[str, str]

_W3C = TraceContextTextMapPropagator()
_NOTHING: AbstractContextManager[None] = nullcontext()
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
# HTTP paths with no server span: probes and metrics, the change stream (a span would
# last as long as its connection) and the secret calendar feeds (their URL is the secret).
_UNTRACED_PATHS = ("/healthz", "/readyz", "/metrics", "/api/events/stream")
_SECRET_PATH_PREFIX = "/api/calendar/feed/"

_tracer: trace.Tracer | None = None  # None: tracing is off


def setup_tracing(service: str, settings: CommonSettings) -> None:
    """Trace this process as `service` if `settings.otel_endpoint` is set; else do nothing.
    Spans still queued when the process exits are flushed then."""
    global _tracer
    if not settings.otel_endpoint or _tracer is not None:
        return
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = settings.otel_endpoint
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=not endpoint.startswith("https://"))
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": service, "service.namespace": settings.namespace}
        ),
        sampler=_requests_only(settings.otel_sample_ratio),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(_IgnoreIncoming())
    PsycopgInstrumentor().instrument(tracer_provider=provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    _tracer = provider.get_tracer("eventhub")


class _IgnoreIncoming(TextMapPropagator):
    """The global propagator, which only FastAPI uses (on requests from clients): it
    finds no trace context, so the gateway starts every trace itself."""

    def extract(self, carrier: Any, context: Context | None = None, getter: Any = None) -> Context:
        return context if context is not None else Context()

    def inject(self, carrier: Any, context: Context | None = None, setter: Any = None) -> None:
        pass

    @property
    def fields(self) -> set[str]:
        return set()


def _requests_only(ratio: float) -> Any:
    """`ParentBased(TraceIdRatioBased(ratio))`, except that only a server span (a request
    coming in) may start a trace."""
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )

    drop = SamplingResult(Decision.DROP)

    class RequestsOnly(Sampler):
        def __init__(self) -> None:
            self._by_parent = ParentBased(TraceIdRatioBased(ratio))

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
            return f"RequestsOnly{{{self._by_parent.get_description()}}}"

    return RequestsOnly()


def enabled() -> bool:
    return _tracer is not None


def http_telemetry() -> dict[str, Any]:
    """The gateway's `FastAPI(telemetry=...)`: a server span per request when tracing is
    on (none of FastAPI's metrics, logs or per-step spans), nothing at all when off."""
    if _tracer is None:
        return {"tracing": False, "metrics": False, "logs": False}
    return {
        "tracing": True,
        "metrics": False,
        "logs": False,
        "operation_spans": False,
        "exclude": _untraced_request,
    }


def _untraced_request(scope: dict[str, Any]) -> bool:
    path = scope.get("path", "")
    return path in _UNTRACED_PATHS or path.startswith(_SECRET_PATH_PREFIX)


# gRPC


def client_span(method: str) -> tuple[Span, list[tuple[str, str]]]:
    """A client span for a call of `method` (`/package.Service/Method`), and the metadata
    that makes the server's span its child. Only while tracing is on."""
    assert _tracer is not None
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
    """Each unary call of our services (not health checks or reflection) in a server span,
    a child of the caller's span when the call brings `traceparent`."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        method = details.method
        if handler is None or handler.unary_unary is None or method.startswith("/grpc."):
            return handler
        inner, tracer, name = handler.unary_unary, self._tracer, method[1:]
        parent = _W3C.extract(dict(details.invocation_metadata or ()))

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with tracer.start_as_current_span(
                name,
                context=parent,
                kind=SpanKind.SERVER,
                attributes={"rpc.system": "grpc"},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    return await inner(request, context)
                finally:
                    _set_grpc_status(span, context.code())

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
    """The W3C context of the current span if it is sampled, for a message queued now
    (`common.outbox`); None when tracing is off or the request is not traced."""
    if _tracer is None:
        return None
    if not trace.get_current_span().get_span_context().trace_flags.sampled:
        return None
    carrier: TraceHeaders = {}
    _W3C.inject(carrier)
    return carrier


def current_span() -> Span | None:
    """The current span, to continue in another task (`within`); None when tracing is off."""
    return None if _tracer is None else trace.get_current_span()


def within(span: Span | None) -> AbstractContextManager[Any]:
    """Make `span` (from `current_span`) current again, without ending it."""
    if span is None:
        return _NOTHING
    return trace.use_span(span, record_exception=False, set_status_on_exception=False)


def batch_span(name: str, spans: Sequence[Span | None]) -> AbstractContextManager[Any]:
    """A span for work done for several requests at once (their `current_span`s), current
    while it runs: the child of the first traced one, linked to the other traced ones."""
    if _tracer is None or not spans or spans[0] is None:
        return _NOTHING
    traced = [span for span in spans if span and span.get_span_context().trace_flags.sampled]
    parent = traced[0] if traced else spans[0]
    return _tracer.start_as_current_span(
        name,
        context=trace.set_span_in_context(parent),
        links=[Link(span.get_span_context()) for span in traced[1:]],
        attributes={"eventhub.batch_size": len(spans)},
    )


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
    spans = [
        tracer.start_span(
            name,
            context=_W3C.extract(msg.headers or {}),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": msg.subject,
                "messaging.message.id": (msg.headers or {}).get("Nats-Msg-Id", ""),
            },
        )
        for msg in messages
    ]
    try:
        with trace.use_span(spans[0], record_exception=False, set_status_on_exception=False):
            yield
    except BaseException as error:
        for span in spans:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        raise
    finally:
        for span in spans:
            span.end()
