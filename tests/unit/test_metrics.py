"""The metrics `common.metrics` records itself: each gRPC call's final status code as
the caller gets it (aborts and domain errors included), on an in-process server; and
the database pools' readings, waits included, on real PostgreSQL."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from common.db import make_driver_pool, make_engine, pooled_connection
from common.errors import NotFound
from common.grpc_server import CallContextInterceptor
from common.metrics import RpcMetricsInterceptor, read_driver_pool, read_engine_pool

SERVICE = f"test.Probe{uuid.uuid4().hex[:8]}"
Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def not_found(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise NotFound("no such thing")


async def deny(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not yours")
    raise AssertionError("abort returned")


async def crash(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise RuntimeError("a bug")


async def stall(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.sleep(5)
    return request


HANDLERS: dict[str, Handler] = {
    "Answer": answer,
    "NotFound": not_found,
    "Deny": deny,
    "Crash": crash,
    "Stall": stall,
}
EXPECTED_CODES = {
    "Answer": grpc.StatusCode.OK,
    "NotFound": grpc.StatusCode.NOT_FOUND,
    "Deny": grpc.StatusCode.PERMISSION_DENIED,
    "Crash": grpc.StatusCode.INTERNAL,
    "Stall": grpc.StatusCode.DEADLINE_EXCEEDED,
}


def count(method: str, code: str) -> float:
    labels = {"method": f"/{SERVICE}/{method}", "code": code}
    return REGISTRY.get_sample_value("eventhub_grpc_server_requests_total", labels) or 0.0


def timed(method: str) -> float:
    name = "eventhub_grpc_server_request_duration_seconds_count"
    return REGISTRY.get_sample_value(name, {"method": f"/{SERVICE}/{method}"}) or 0.0


async def _call_each_method() -> dict[str, grpc.StatusCode]:
    server = grpc.aio.server(interceptors=[RpcMetricsInterceptor(), CallContextInterceptor(None)])
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(h, bytes, bytes) for name, h in HANDLERS.items()
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    codes = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for method in HANDLERS:
                call = channel.unary_unary(f"/{SERVICE}/{method}")
                try:
                    await call(b"ping", timeout=0.3)
                    codes[method] = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as error:
                    codes[method] = error.code()
        # The server learns of an expired deadline a moment after the caller.
        deadline = asyncio.get_running_loop().time() + 5
        while count("Stall", "DEADLINE_EXCEEDED") == 0:
            assert asyncio.get_running_loop().time() < deadline, "the stalled call was not counted"
            await asyncio.sleep(0.01)
    finally:
        await server.stop(None)
    return codes


def test_each_call_is_counted_with_the_code_its_caller_got() -> None:
    codes = asyncio.run(_call_each_method())

    assert codes == EXPECTED_CODES
    for method, code in codes.items():
        assert count(method, code.name) == 1, method
        assert timed(method) == 1, method


@pytest.fixture
def database_url(stack_env: dict[str, str]) -> str:
    return stack_env["EVENTHUB_DATABASE_URL"]


async def _until(condition: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + 5
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _hold_every_connection_and_one_more(
    take: Callable[[], Any], read: Callable[[], Any], pool_size: int
) -> tuple[Any, Any, Any]:
    """Readings with every connection lent out, with one more request waiting, and
    after all are done."""
    release = asyncio.Event()

    async def hold() -> None:
        async with take():
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(pool_size)]
    await _until(lambda: read().in_use == pool_size and read().waiting == 0)
    busy = read()
    holders.append(asyncio.create_task(hold()))
    await _until(lambda: read().waiting == 1)
    waiting = read()
    release.set()
    await asyncio.gather(*holders)
    return busy, waiting, read()


async def _driver_pool_readings(database_url: str) -> tuple[Any, Any, Any]:
    pool = make_driver_pool(database_url, 2, timeout=5, name="reads")
    await pool.open()
    try:
        return await _hold_every_connection_and_one_more(
            lambda: pooled_connection(pool), lambda: read_driver_pool(pool), 2
        )
    finally:
        await pool.close()


async def _engine_readings(database_url: str) -> tuple[Any, Any, Any]:
    engine = make_engine(database_url, 1)  # one connection, and one more in overflow
    try:
        return await _hold_every_connection_and_one_more(
            engine.connect, lambda: read_engine_pool(engine), 2
        )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("readings", [_driver_pool_readings, _engine_readings])
def test_pool_readings_count_connections_and_waits(database_url: str, readings) -> None:
    busy, waiting, after = asyncio.run(readings(database_url))

    # (Psycopg's pool grows on demand: a request may also have waited for that before.)
    assert (busy.in_use, busy.size, busy.max_size, busy.waiting) == (2, 2, 2, 0)
    assert (waiting.in_use, waiting.waiting, waiting.waits) == (2, 1, busy.waits + 1)
    assert (after.in_use, after.waiting, after.waits) == (0, 0, busy.waits + 1)
