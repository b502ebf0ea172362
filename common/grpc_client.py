"""Channels for calls between services and from the gateway.

Every outgoing call carries the current request id, the current caller's access
token and the request's idempotency key (from context variables) and a deadline,
added by the channel itself; with tracing on, also a client span's `traceparent`.
(A gRPC client interceptor did this before; aio interceptors wrap every call in an
extra task and cost a few percent of a whole cached request.)
"""

import time
from collections.abc import Sequence
from typing import Any, cast

import grpc

from common import tracing
from common.deadlines import deadline_var
from common.grpc_server import caller_var
from common.idempotency import key_metadata
from common.logging import request_id_var
from common.service_identity import SERVICE_METADATA, ServiceTokens
from eventhub.auth.v1 import auth_pb2, auth_pb2_grpc

# The largest answer a service gives is an expansion of 20,000 occurrences with
# 200-character titles: under 20 MiB. Pages of events and changes are cut at 4 MiB
# (`common.paging`). gRPC's default limit (4 MiB) refused large pages; an answer
# over this one is a bug, answered 502 by the gateway.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024

# Problem details travel in trailing metadata: a batch of 500 items, each with errors
# in several fields, names them all (gRPC's default refuses more than 8 KiB).
MAX_METADATA_BYTES = 1024 * 1024

_CHANNEL_OPTIONS = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    # A restarted replica gets calls again within a second, however long it was down
    # (gRPC's default backoff grows to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]


def channel_target(addresses: str) -> str:
    """A gRPC target for one `host:port` or a comma-separated list of replicas,
    which round-robin then spreads calls over."""
    parts = [a.strip() for a in addresses.split(",") if a.strip()]
    return parts[0] if len(parts) == 1 else "ipv4:" + ",".join(parts)


def call_timeout(own: float) -> float:
    """`own`, or what is left of the deadline of the call being served if that is less:
    a service does not keep working for a caller that has given up (it then gets
    DEADLINE_EXCEEDED at once)."""
    deadline = deadline_var.get()
    if deadline is None:
        return own
    return max(0.0, min(own, deadline - time.monotonic()))


def call_metadata() -> list[tuple[str, str]]:
    metadata = [("x-request-id", request_id_var.get())]
    if (caller := caller_var.get()) is not None:
        metadata.append(("authorization", f"Bearer {caller.token}"))
    return metadata + key_metadata()


class _WithCallContext:
    """A unary-unary method whose calls carry the call context, the calling service's
    token (if it has one) and a deadline."""

    __slots__ = ("_method", "_deadline", "_service")

    def __init__(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable,
        deadline: float,
        service: ServiceTokens | None,
    ) -> None:
        self._method = method
        self._deadline = deadline
        self._service = service

    def __call__(
        self, request: Any, *, timeout: float | None = None, metadata: Any = None, **kwargs: Any
    ) -> Any:
        context = call_metadata()
        if self._service is not None:
            context.append((SERVICE_METADATA, self._service.mint()))
        return self._method(
            request,
            timeout=call_timeout(timeout or self._deadline),
            metadata=(*context, *(metadata or ())),
            **kwargs,
        )


class _TracedCall(_WithCallContext):
    """A `_WithCallContext` whose calls within a traced span are client spans (only
    while tracing is on)."""

    __slots__ = ("_name",)

    def __init__(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable,
        deadline: float,
        service: ServiceTokens | None,
        name: str,
    ) -> None:
        super().__init__(method, deadline, service)
        self._name = name

    def __call__(
        self, request: Any, *, timeout: float | None = None, metadata: Any = None, **kwargs: Any
    ) -> Any:
        traced = tracing.client_span(self._name)
        if traced is None:
            return super().__call__(request, timeout=timeout, metadata=metadata, **kwargs)
        span, trace_context = traced
        call = super().__call__(
            request, timeout=timeout, metadata=(*trace_context, *(metadata or ())), **kwargs
        )
        return tracing.call_in_span(call, span)


class _CallContextChannel:
    """A channel whose unary-unary methods (what the stubs are made of) add the call
    context; everything else is the channel's own."""

    def __init__(
        self, channel: grpc.aio.Channel, deadline: float, service: ServiceTokens | None
    ) -> None:
        self._channel = channel
        self._deadline = deadline
        self._service = service

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> _WithCallContext:
        multicallable = self._channel.unary_unary(method, *args, **kwargs)
        if tracing.enabled():
            return _TracedCall(multicallable, self._deadline, self._service, method)
        return _WithCallContext(multicallable, self._deadline, self._service)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)


def open_channel(
    addresses: str,
    deadline: float,
    options: Sequence[tuple[str, Any]] = (),
    service: ServiceTokens | None = None,
) -> grpc.aio.Channel:
    """`options` add to (or override) the default channel options; with `service`,
    every call carries that service's token (`common.service_identity`)."""
    channel = grpc.aio.insecure_channel(
        channel_target(addresses), options=[*_CHANNEL_OPTIONS, *options]
    )
    return cast(grpc.aio.Channel, _CallContextChannel(channel, deadline, service))


def public_key_fetcher(channel: grpc.aio.Channel):  # type: ignore[no-untyped-def]
    """A `common.tokens.KeyFetcher` asking the auth service for its keys."""
    stub = auth_pb2_grpc.AuthServiceStub(channel)

    async def fetch() -> dict[str, str]:
        response = await stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest())
        return {key.kid: key.public_key_pem for key in response.keys}

    return fetch
