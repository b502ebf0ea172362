"""Bootstrap shared by the four gRPC services: interceptor, health, reflection, shutdown."""

import asyncio
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextvars import ContextVar
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from common.deadlines import deadline_var
from common.errors import DomainError, Unauthenticated, error_trailer
from common.heap import freeze_startup_heap
from common.idempotency import Replayed, key_from_metadata, request_key_var
from common.logging import request_id_var
from common.metrics import RpcMetricsInterceptor
from common.service_identity import SERVICE_METADATA, service_token_var
from common.tokens import Caller, TokenVerifier, bearer_token
from common.tracing import server_interceptors

log = logging.getLogger(__name__)

caller_var: ContextVar[Caller | None] = ContextVar("caller", default=None)


def current_caller() -> Caller:
    """The verified user of the current call; Unauthenticated if it carried no token."""
    caller = caller_var.get()
    if caller is None:
        raise Unauthenticated("an access token is required")
    return caller


class CallContextInterceptor(grpc.aio.ServerInterceptor):
    """Sets the request id, verified caller, deadline, idempotency key and service
    token of each call; answers a replayed write with its first answer, and turns
    domain errors into gRPC statuses (unexpected ones into INTERNAL with no detail)."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self._verifier = verifier

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = handler_call_details.method
        metadata = dict(handler_call_details.invocation_metadata or ())
        verifier = self._verifier

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            request_id_var.set(str(metadata.get("x-request-id") or uuid.uuid4()))
            caller_var.set(None)
            remaining = context.time_remaining()
            deadline_var.set(None if remaining is None else time.monotonic() + remaining)
            request_key_var.set(key_from_metadata(metadata))
            service_token_var.set(metadata.get(SERVICE_METADATA))
            try:
                token = bearer_token(metadata.get("authorization"))
                if token is not None and verifier is not None:
                    caller_var.set(await verifier.verify(token))
                return await inner(request, context)
            except Replayed as replayed:
                return replayed
            except DomainError as error:
                await context.abort(
                    error.code, error.detail, trailing_metadata=error_trailer(error)
                )
            except asyncio.CancelledError:
                raise
            except (OperationalError, InterfaceError, SQLAlchemyTimeoutError) as error:
                if context.code() is not None:
                    raise
                log.warning("database unavailable", extra={"method": method, "error": repr(error)})
                await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable")
            except Exception:
                if context.code() is not None:  # already aborted by the handler
                    raise
                log.exception("unhandled error", extra={"method": method})
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")

        return grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=handler.request_deserializer,
            response_serializer=_with_replays(handler.response_serializer),
        )


def _with_replays(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """A replayed write is answered with the bytes recorded when it was applied."""

    def answer(response: Any) -> bytes:
        return response.answer if isinstance(response, Replayed) else serialize(response)

    return answer


def run_service(main: Coroutine[Any, Any, None]) -> None:
    """Run a service's main coroutine on uvloop: its event loop, transports and
    timers cost a fraction of asyncio's, and every call crosses them many times."""
    uvloop.run(main)


async def serve(
    *,
    port: int,
    service_names: Iterable[str],
    register: Callable[[grpc.aio.Server], None],
    verifier: TokenVerifier | None,
    shutdown_grace: float,
    host: str,
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run a gRPC server until SIGTERM/SIGINT, then stop gracefully and call `on_stop`."""
    server = grpc.aio.server(
        # Tracing's (none while it is off) first: their spans hold the whole call; then
        # metrics, which see the status the call context's errors become.
        interceptors=[
            *server_interceptors(),
            RpcMetricsInterceptor(),
            CallContextInterceptor(verifier),
        ],
        options=[
            ("grpc.so_reuseport", 0),
            # Clients reconnect now and then, so calls spread onto replicas added later.
            ("grpc.max_connection_age_ms", 300_000),
            ("grpc.max_connection_age_grace_ms", 30_000),
        ],
    )
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    freeze_startup_heap()
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving", extra={"port": port, "services": list(service_names)})

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("stopping", extra={"grace": shutdown_grace})
    await health_servicer.enter_graceful_shutdown()
    await server.stop(shutdown_grace)
    if on_stop is not None:
        await on_stop()
    log.info("stopped")
