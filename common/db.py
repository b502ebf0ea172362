"""PostgreSQL access: engines, sessions and Alembic migrations, one schema per service."""

import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
from alembic import command, context
from alembic.config import Config
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import MetaData, create_engine, event, make_url, pool, text
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

from common.tracing import sql_batch

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def connection_options(statement_timeout: float | None) -> str:
    """Settings of every connection: timestamps come back in UTC whatever the server's
    zone, as the API writes them; and a service's statements end after
    `statement_timeout` (its gRPC deadline: nobody waits for an answer after that),
    their lock waits after half of it (what is left is the time to do the work)."""
    options = "-c timezone=UTC"
    if statement_timeout:
        milliseconds = round(statement_timeout * 1000)
        options += f" -c statement_timeout={milliseconds} -c lock_timeout={milliseconds // 2}"
    return options


def make_engine(
    database_url: str, pool_size: int, statement_timeout: float | None = None
) -> AsyncEngine:
    engine = create_async_engine(
        database_url,
        poolclass=WaitCountingPool,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping (a round trip per checkout): a connection the server closed is
        # replaced at checkout (below); one found dead later fails its request with
        # UNAVAILABLE and is replaced.
        pool_recycle=1800,
        pool_timeout=5,
        # Statement parameters (usernames, emails, hashes) stay out of error logs.
        hide_parameters=True,
        # JSON columns (a series' exceptions, history snapshots) decode several times
        # faster than with the standard library.
        json_deserializer=orjson.loads,
        connect_args={"options": connection_options(statement_timeout)},
    )
    event.listen(engine.sync_engine.pool, "checkout", _replace_if_closed_by_server)
    return engine


class WaitCountingPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio pool, counting the requests that find every connection lent
    out and none left to open, and so wait (`common.metrics` reports them)."""

    def __init__(self, *args: Any, pool_size: int = 5, max_overflow: int = 10, **kw: Any) -> None:
        super().__init__(*args, pool_size=pool_size, max_overflow=max_overflow, **kw)
        self.max_connections = pool_size + max_overflow
        self.waiting = 0
        self.waits = 0

    def _do_get(self) -> ConnectionPoolEntry:
        if self.checkedin() or self.checkedout() < self.max_connections:
            return super()._do_get()
        self.waiting += 1
        self.waits += 1
        try:
            return super()._do_get()
        finally:
            self.waiting -= 1


def _replace_if_closed_by_server(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """The pool takes a fresh connection instead of one the server hung up on."""
    if closed_by_server(record.driver_connection):
        raise DisconnectionError("the server closed this connection")


def closed_by_server(connection: psycopg.AsyncConnection) -> bool:
    """An idle connection has nothing to read unless the server hung up on it
    (PostgreSQL restarted, or ended the session). Costs no round trip."""
    try:
        poller = select.poll()
        poller.register(connection.pgconn.socket, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, psycopg.Error):  # the socket is already gone
        return True


def make_driver_pool(
    database_url: str,
    size: int,
    timeout: float,
    statement_timeout: float | None = None,
    name: str = "writes",
) -> AsyncConnectionPool:
    """Psycopg's own pool, for the hot paths (`pipelined_transaction` on writes, plain
    statements on reads): taking and returning one of its connections costs half of
    what SQLAlchemy's async pool does (no greenlet hop, no isolation-level switch),
    measured under load. Open it with `await pool.open()`; it grows from one
    connection to `size` on demand.

    While PostgreSQL is down the pool reconnects in the background (a first retry
    after a second, then giving up after another, so that the next caller's attempt
    starts at once) and callers wait for a connection up to `timeout`: half the gRPC
    deadline answers them 503 within it, and leaves time for that retry when
    PostgreSQL is back.
    """

    async def check(connection: psycopg.AsyncConnection) -> None:
        if closed_by_server(connection):
            await connection.close()  # so that the pool replaces it rather than keep it
            raise psycopg.OperationalError("the server closed this connection")

    return AsyncConnectionPool(
        make_url(database_url).set(drivername="postgresql").render_as_string(False),
        min_size=1,
        max_size=size,
        timeout=timeout,
        reconnect_timeout=1,
        open=False,
        check=check,
        # A connection attempt that hangs (a server that accepts and never answers)
        # gives up, or the pool would wait on it for good.
        kwargs={
            "autocommit": True,
            "options": connection_options(statement_timeout),
            "connect_timeout": 2,
        },
        name=name,
    )


@asynccontextmanager
async def pooled_connection(
    pool: AsyncConnectionPool,
) -> AsyncIterator[psycopg.AsyncConnection]:
    """A connection of `make_driver_pool`, in autocommit mode: a single statement is a
    transaction of its own, in one round trip. Psycopg's connection errors, and a pool
    with no connection free in time, come out as SQLAlchemy's, like everywhere else."""
    try:
        async with pool.connection() as connection:
            yield connection
    except PoolTimeout as error:
        raise SQLAlchemyTimeoutError(repr(error)) from error
    except psycopg.OperationalError as error:
        raise OperationalError(None, None, error) from error
    except psycopg.InterfaceError as error:
        raise InterfaceError(None, None, error) from error


@asynccontextmanager
async def pipelined_transaction(
    pool: AsyncConnectionPool,
) -> AsyncIterator[psycopg.AsyncConnection]:
    """A transaction on a pooled connection (`pooled_connection`) in pipeline mode.

    Statements are sent without waiting for one another: BEGIN travels with the first
    statement and COMMIT with the last, so a transaction whose statements need no
    result in between costs one round trip. Fetching a result waits for it (and for
    everything sent before). The results of the last statements are read after the
    block.

    BEGIN and COMMIT are sent as statements on the autocommit connection: psycopg's
    own transactions would wait for BEGIN's and COMMIT's answers apart.
    """
    async with pooled_connection(pool) as driver:
        with sql_batch(driver):
            try:
                async with driver.pipeline():
                    await driver.execute("BEGIN")
                    yield driver
                    await driver.execute("COMMIT")
            except BaseException:
                status = driver.pgconn.transaction_status
                if driver.broken or status == TransactionStatus.ACTIVE:
                    # Cut, or left mid-statement by a cancellation: not for the next user.
                    await driver.close()
                elif status != TransactionStatus.IDLE:
                    try:
                        await driver.rollback()
                    except psycopg.Error:
                        await driver.close()
                raise


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool without transactions, for reads that need no snapshot: each
    read is one round trip instead of BEGIN, the query and ROLLBACK."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def migrate(migrations_dir: Path, database_url: str, revision: str = "head") -> None:
    """Upgrade a service's schema to `revision` (the newest by default)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["database_url"] = database_url
    command.upgrade(config, revision)


def run_migrations_online(metadata: MetaData) -> None:
    """The body of each service's Alembic env.py: migrate `metadata.schema` in place."""
    schema = metadata.schema
    url = context.config.attributes.get("database_url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def migrations_dir_of(package_file: str) -> Path:
    return Path(package_file).resolve().parent / "migrations"
