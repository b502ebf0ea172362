"""Prometheus metrics of the gRPC services: every call by method, status code and
latency (`RpcMetricsInterceptor`), the database pools (`PoolMetrics`), and the HTTP
endpoint that serves them (`serve_metrics`).

Families recorded elsewhere live with the code that records them, so a process
exports only what it runs: the outbox relay's in `common.outbox`, the durable
consumers' in `common.consumer`, the read caches' in `common.event_cache`, the
gateway's in `gateway.middleware` and `gateway.ratelimit`.

The endpoint answers from a thread of its own (a scrape gets an answer while the
event loop is busy) and only reads metric values: whatever only the loop may touch
(pool statistics, the outbox backlog, JetStream consumer info) is measured on the
loop in the background and kept in gauges (`refresh_every`).
"""

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

RPC_REQUESTS = Counter(
    "eventhub_grpc_server_requests_total",
    "gRPC calls answered, by full method name and status code",
    ["method", "code"],
)
RPC_DURATION = Histogram(
    "eventhub_grpc_server_request_duration_seconds",
    "Seconds from a gRPC call's arrival to its answer",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
POOL_IN_USE = Gauge("eventhub_db_pool_connections_in_use", "Connections lent out now", ["pool"])
POOL_SIZE = Gauge(
    "eventhub_db_pool_size", "Connections the pool holds now, lent out or idle", ["pool"]
)
POOL_MAX = Gauge(
    "eventhub_db_pool_max_connections", "Connections the pool may hold at most", ["pool"]
)
POOL_WAITING = Gauge("eventhub_db_pool_waiting", "Requests waiting for a connection now", ["pool"])
POOL_WAITS = Counter(
    "eventhub_db_pool_waits_total",
    "Requests that found no connection free and had to wait for one",
    ["pool"],
)

_CODE_NAMES: dict[Any, str] = {code: code.name for code in grpc.StatusCode}
_CODE_NAMES.update({code.value[0]: code.name for code in grpc.StatusCode})


class BoundLabels:
    """The children of a labelled metric, each bound once: `labels()` costs more than
    recording a value. For labels with few values."""

    __slots__ = ("_metric", "_children")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[Any, ...], Any] = {}

    def __call__(self, *values: Any) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class RpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every unary call by method and final status code. It goes
    first among the server's interceptors, so it sees the code the others answer
    with (a domain error's abort, INTERNAL for an unexpected one)."""

    def __init__(self) -> None:
        self._counts = BoundLabels(RPC_REQUESTS)
        self._durations = BoundLabels(RPC_DURATION)

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

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = "UNKNOWN"
            try:
                response = await inner(request, context)
                code = _CODE_NAMES.get(context.code(), "OK")
                return response
            except asyncio.CancelledError:
                remaining = context.time_remaining()
                expired = remaining is not None and remaining <= 0
                code = "DEADLINE_EXCEEDED" if expired else "CANCELLED"
                raise
            except BaseException:
                # An abort has set its code; anything else gRPC answers UNKNOWN.
                code = _CODE_NAMES.get(context.code(), "UNKNOWN")
                raise
            finally:
                self._durations(method).observe(time.perf_counter() - started)
                self._counts(method, code).inc()

        return grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


@dataclass(frozen=True, slots=True)
class PoolReading:
    in_use: int
    size: int
    max_size: int
    waiting: int
    # Requests that had to wait since the pool was made.
    waits: int


def read_driver_pool(pool: AsyncConnectionPool) -> PoolReading:
    """Psycopg's own statistics of a `common.db.make_driver_pool` pool."""
    stats = pool.get_stats()
    size = stats.get("pool_size", 0)
    return PoolReading(
        in_use=size - stats.get("pool_available", 0),
        size=size,
        max_size=stats.get("pool_max", 0),
        waiting=stats.get("requests_waiting", 0),
        waits=stats.get("requests_queued", 0),
    )


def read_engine_pool(engine: AsyncEngine) -> PoolReading:
    """The SQLAlchemy pool of a `common.db.make_engine` engine (a `WaitCountingPool`;
    read anew each time, as disposing of the engine replaces it)."""
    pool: Any = engine.pool
    return PoolReading(
        in_use=pool.checkedout(),
        size=pool.checkedin() + pool.checkedout(),
        max_size=pool.max_connections,
        waiting=pool.waiting,
        waits=pool.waits,
    )


class PoolMetrics:
    """The database pools of a process, measured on the event loop (`refresh`)."""

    def __init__(self) -> None:
        self._pools: dict[str, Callable[[], PoolReading]] = {}
        self._waits_seen: dict[str, int] = {}

    def watch_engine(self, engine: AsyncEngine, name: str = "sqlalchemy") -> None:
        self._pools[name] = lambda: read_engine_pool(engine)

    def watch_driver_pool(self, pool: AsyncConnectionPool) -> None:
        self._pools[pool.name] = lambda: read_driver_pool(pool)

    def refresh(self) -> None:
        for name, read in self._pools.items():
            reading = read()
            POOL_IN_USE.labels(name).set(reading.in_use)
            POOL_SIZE.labels(name).set(reading.size)
            POOL_MAX.labels(name).set(reading.max_size)
            POOL_WAITING.labels(name).set(reading.waiting)
            # The pools count waits themselves; a pool made anew starts again from 0.
            seen = self._waits_seen.get(name, 0)
            POOL_WAITS.labels(name).inc(reading.waits - (seen if reading.waits >= seen else 0))
            self._waits_seen[name] = reading.waits


async def refresh_every(
    seconds: float, refresh: Callable[[], Awaitable[None] | None], what: str
) -> None:
    """Call `refresh` every `seconds` until cancelled. A failure is logged once until
    the next success (the gauges keep their last values meanwhile)."""
    failing = False
    while True:
        try:
            if inspect.isawaitable(result := refresh()):
                await result
            if failing:
                log.info("measuring again", extra={"what": what})
            failing = False
        except Exception as error:
            if not failing:
                log.warning("measuring failed", extra={"what": what, "error": repr(error)})
            failing = True
        await asyncio.sleep(seconds)


def serve_metrics(host: str, port: int) -> Callable[[], Awaitable[None]]:
    """Serve this process's metrics as Prometheus text on http://host:port/metrics,
    from a thread; returns what stops it. Fails (OSError) if the port is taken."""
    server, thread = start_http_server(port, addr=host)
    log.info("serving metrics", extra={"port": port})

    async def stop() -> None:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join()

    return stop
