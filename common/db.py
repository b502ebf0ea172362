"""PostgreSQL access: engines, sessions and Alembic migrations, one schema per service."""

import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from alembic import command, context
from alembic.config import Config
from psycopg.pq import TransactionStatus
from sqlalchemy import MetaData, create_engine, event, pool, text
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def make_engine(database_url: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping (a round trip per checkout): a connection the server closed is
        # replaced at checkout (below); one found dead later fails its request with
        # UNAVAILABLE and is replaced.
        pool_recycle=1800,
        pool_timeout=5,
        # Statement parameters (usernames, emails, hashes) stay out of error logs.
        hide_parameters=True,
        # Timestamps come back in UTC whatever the server's zone, as the API writes them.
        connect_args={"options": "-c timezone=UTC"},
    )
    event.listen(engine.sync_engine.pool, "checkout", _replace_if_closed_by_server)
    return engine


def _replace_if_closed_by_server(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """An idle connection has nothing to read unless the server hung up on it (PostgreSQL
    restarted, or ended the session): then the pool takes a fresh connection instead."""
    try:
        poller = select.poll()
        poller.register(record.driver_connection.pgconn.socket, select.POLLIN)
        ready = poller.poll(0)
    except (OSError, psycopg.Error) as error:  # the socket is already gone
        raise DisconnectionError(repr(error)) from error
    if ready:
        raise DisconnectionError("the server closed this connection")


@asynccontextmanager
async def pipelined_transaction(engine: AsyncEngine) -> AsyncIterator[psycopg.AsyncConnection]:
    """A transaction on a pooled connection's psycopg connection in pipeline mode.

    Statements are sent without waiting for one another: BEGIN travels with the first
    statement and COMMIT with the last, so a transaction whose statements need no
    result in between costs one round trip. Fetching a result waits for it (and for
    everything sent before). The results of the last statements are read after the
    block. Psycopg's connection errors come out as SQLAlchemy's, like everywhere else.

    The connection is in autocommit mode with BEGIN and COMMIT sent as statements:
    psycopg's own transactions would wait for BEGIN's and COMMIT's answers apart.
    """
    async with _autocommit_view(engine).connect() as conn:
        driver: psycopg.AsyncConnection = (await conn.get_raw_connection()).driver_connection
        try:
            async with driver.pipeline():
                await driver.execute("BEGIN")
                yield driver
                await driver.execute("COMMIT")
        except BaseException as error:
            if driver.broken or driver.pgconn.transaction_status == TransactionStatus.ACTIVE:
                # Cut, or left mid-statement by a cancellation: not for the next user.
                await conn.invalidate()
            elif driver.pgconn.transaction_status != TransactionStatus.IDLE:
                try:
                    await driver.rollback()
                except psycopg.Error:
                    await conn.invalidate()
            if isinstance(error, psycopg.OperationalError):
                raise OperationalError(None, None, error) from error
            if isinstance(error, psycopg.InterfaceError):
                raise InterfaceError(None, None, error) from error
            raise


@cache
def _autocommit_view(engine: AsyncEngine) -> AsyncEngine:
    return autocommit(engine)


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
