"""Channels for calls between services and from the gateway.

Every outgoing call carries the current request id and the current caller's
access token (from context variables) and a deadline, added by one interceptor.
"""

from collections.abc import Sequence
from typing import Any

import grpc

from common.grpc_server import caller_var
from common.logging import request_id_var
from eventhub.auth.v1 import auth_pb2, auth_pb2_grpc

_CHANNEL_OPTIONS = [
    ("grpc.lb_policy_name", "round_robin"),
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


def call_metadata() -> list[tuple[str, str]]:
    metadata = [("x-request-id", request_id_var.get())]
    if (caller := caller_var.get()) is not None:
        metadata.append(("authorization", f"Bearer {caller.token}"))
    return metadata


class _CallContextClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        details = client_call_details._replace(
            metadata=grpc.aio.Metadata(*call_metadata(), *(client_call_details.metadata or ())),
            timeout=client_call_details.timeout or self._deadline,
        )
        return await continuation(details, request)


def open_channel(
    addresses: str, deadline: float, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """`options` add to (or override) the default channel options."""
    return grpc.aio.insecure_channel(
        channel_target(addresses),
        options=[*_CHANNEL_OPTIONS, *options],
        interceptors=[_CallContextClientInterceptor(deadline)],
    )


def public_key_fetcher(channel: grpc.aio.Channel):  # type: ignore[no-untyped-def]
    """A `common.tokens.KeyFetcher` asking the auth service for its keys."""
    stub = auth_pb2_grpc.AuthServiceStub(channel)

    async def fetch() -> dict[str, str]:
        response = await stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest())
        return {key.kid: key.public_key_pem for key in response.keys}

    return fetch
