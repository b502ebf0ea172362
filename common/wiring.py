"""What every gRPC service's `main.py` wires the same way: settings and logging, its
database pools, channels to other services, the verifier of users' tokens, the gRPC
server and its metrics endpoint, and closing all of it in reverse order on stop."""

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, Generic, TypeVar

import grpc
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.ext.asyncio import AsyncEngine

from common.config import CommonSettings
from common.db import make_driver_pool, make_engine
from common.grpc_client import open_channel, public_key_fetcher
from common.grpc_server import run_service, serve
from common.logging import configure_logging
from common.metrics import PoolMetrics, refresh_every, serve_metrics
from common.service_identity import ServiceTokens
from common.tokens import KeyFetcher, TokenVerifier
from common.tracing import setup_tracing

Settings = TypeVar("Settings", bound=CommonSettings)

# Seconds between readings of the database pools' gauges.
POOL_MEASURE_INTERVAL = 1.0


class Wiring(Generic[Settings]):
    """A service process being wired; whatever it opens is closed when it stops,
    last opened first."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._closers: list[Callable[[], Any]] = []
        self._pools = PoolMetrics()

    def on_stop(self, close: Callable[[], Any]) -> None:
        """Call `close` (and await what it returns, if anything) when the server stops."""
        self._closers.append(close)

    def in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` beside the server; it is cancelled when the server stops."""
        self.on_stop(asyncio.create_task(work, name=name).cancel)

    def engine(self) -> AsyncEngine:
        """The service's SQLAlchemy engine; statements end at the gRPC deadline."""
        settings = self.settings
        engine = make_engine(settings.database_url, settings.db_pool_size, settings.grpc_deadline)
        self.on_stop(engine.dispose)
        self._pools.watch_engine(engine)
        return engine

    async def driver_pool(self, name: str) -> AsyncConnectionPool:
        """An open pool of psycopg's own (`common.db.make_driver_pool`) named `name`;
        statements end at the gRPC deadline, and waits for a connection at half of it."""
        settings = self.settings
        pool = make_driver_pool(
            settings.database_url,
            settings.db_pool_size,
            timeout=settings.grpc_deadline / 2,
            statement_timeout=settings.grpc_deadline,
            name=name,
        )
        await pool.open()
        self.on_stop(pool.close)
        self._pools.watch_driver_pool(pool)
        return pool

    def channel(self, addresses: str, identity: ServiceTokens | None = None) -> grpc.aio.Channel:
        """A channel to another service; with `identity`, its calls carry this
        service's token (`common.service_identity`)."""
        channel = open_channel(addresses, self.settings.grpc_deadline, service=identity)
        self.on_stop(channel.close)
        return channel

    def service_tokens(self, identity: str) -> ServiceTokens:
        """Tokens naming this service `identity`, made with the deployment's service key."""
        return ServiceTokens(self.settings.internal_service_key(), identity)

    def user_verifier(self, fetch_keys: KeyFetcher | None = None) -> TokenVerifier:
        """The verifier of users' access tokens, with the auth service's public keys."""
        settings = self.settings
        fetch = fetch_keys or public_key_fetcher(self.channel(settings.auth_addr))
        return TokenVerifier(settings.jwt_issuer, settings.jwt_audience, fetch)

    async def serve(
        self,
        protos: ModuleType,
        service_name: str,
        add_servicer: Callable[[Any, grpc.aio.Server], None],
        servicer: Any,
        verifier: TokenVerifier,
    ) -> None:
        """Serve `servicer` as `service_name` of `protos` until SIGTERM/SIGINT, then close."""

        async def close() -> None:
            for closer in reversed(self._closers):
                if inspect.isawaitable(closing := closer()):
                    await closing

        settings = self.settings
        self._serve_metrics()
        await serve(
            port=settings.grpc_port,  # type: ignore[attr-defined]
            service_names=[protos.DESCRIPTOR.services_by_name[service_name].full_name],
            register=lambda server: add_servicer(servicer, server),
            verifier=verifier,
            shutdown_grace=settings.shutdown_grace,
            host=settings.grpc_listen_host,
            on_stop=close,
        )

    def _serve_metrics(self) -> None:
        """Serve Prometheus metrics on the service's metrics port, unless it is 0."""
        port = self.settings.metrics_port  # type: ignore[attr-defined]
        if not port:
            return
        self.on_stop(serve_metrics(self.settings.grpc_listen_host, port))
        self.in_background(
            refresh_every(POOL_MEASURE_INTERVAL, self._pools.refresh, "database pools"),
            "pool-metrics",
        )


def run_process(
    name: str,
    settings_type: type[Settings],
    run: Callable[[Wiring[Settings]], Coroutine[Any, Any, None]],
) -> None:
    """A service's `main`: read settings, set up logging and tracing, run `run` on uvloop."""
    settings = settings_type()
    configure_logging(name, settings.log_level)
    setup_tracing(name, settings)
    run_service(run(Wiring(settings)))
