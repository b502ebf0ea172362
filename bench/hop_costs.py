"""What the hops of a write cost on this machine, measured bare: the CPU of one
`grpc.aio` unary call (client and server in separate processes, as the gateway and a
service are) and of one pipelined transaction on psycopg's pool (the event service's
write path). No part of EventHub runs here: these are the floors its write paths
build on. `python -m bench.hop_costs` (about 20 s; needs PostgreSQL).
"""

import asyncio
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable
from multiprocessing.synchronize import Event

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.db import make_driver_pool, pipelined_transaction
from scripts.stack import free_port

CALLS = 20_000
CONCURRENCY = 32
DATABASE_URL = os.environ.get(
    "EVENTHUB_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


class _Health(health_pb2_grpc.HealthServicer):
    async def Check(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def _serve(port: int, ready: Event) -> None:
    async def main() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(_Health(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()
        await server.wait_for_termination()

    uvloop.run(main())


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(call: Callable[[], Awaitable[object]], count: int) -> tuple[float, float]:
    """Wall and process CPU seconds of `count` calls, CONCURRENCY at a time."""

    async def worker() -> None:
        for _ in range(count // CONCURRENCY):
            await call()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started, time.process_time() - cpu


async def _grpc_client(port: int) -> tuple[float, float]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest()
        await _drive(lambda: stub.Check(request, timeout=5), 1_000)  # warm up
        return await _drive(lambda: stub.Check(request, timeout=5), CALLS)


def grpc_unary() -> None:
    port, ready = free_port(), multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(port, ready), daemon=True)
    server.start()
    try:
        ready.wait(10)
        before = _cpu_seconds(server.pid)  # type: ignore[arg-type]
        wall, client_cpu = uvloop.run(_grpc_client(port))
        server_cpu = _cpu_seconds(server.pid) - before  # type: ignore[arg-type]
    finally:
        server.terminate()
    print(
        f"grpc.aio unary call: {CALLS / wall:,.0f} calls/s; CPU per call: client "
        f"{1e6 * client_cpu / CALLS:.0f} µs, server {1e6 * server_cpu / CALLS:.0f} µs"
    )


async def _transactions() -> tuple[float, float]:
    pool = make_driver_pool(DATABASE_URL, 10, timeout=5)
    await pool.open()

    async def transaction() -> None:
        async with pipelined_transaction(pool) as conn:
            await conn.execute("SELECT 1")

    try:
        await _drive(transaction, 1_000)
        return await _drive(transaction, CALLS // 2)
    finally:
        await pool.close()


def pooled_transaction() -> None:
    wall, cpu = uvloop.run(_transactions())
    count = CALLS // 2
    print(
        f"pipelined transaction (BEGIN, one statement, COMMIT) on psycopg's pool: "
        f"{count / wall:,.0f}/s; client CPU {1e6 * cpu / count:.0f} µs each"
    )


def main() -> None:
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    grpc_unary()
    pooled_transaction()


if __name__ == "__main__":
    main()
