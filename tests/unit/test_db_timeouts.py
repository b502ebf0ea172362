"""Every service connection ends a statement at the gRPC deadline and a lock wait at
half of it: an answer later than that has nobody waiting for it, and the wait would
hold a connection of a small pool (on real PostgreSQL)."""

import asyncio

import psycopg
import pytest
from sqlalchemy import text

from common.db import make_driver_pool, make_engine, pooled_connection

DEADLINE = 0.5


@pytest.fixture
def database_url(stack_env: dict[str, str]) -> str:
    return stack_env["EVENTHUB_DATABASE_URL"]


async def _pool_statement(database_url: str, statement: str) -> None:
    pool = make_driver_pool(database_url, 1, timeout=5, statement_timeout=DEADLINE)
    await pool.open()
    try:
        async with pooled_connection(pool) as conn:
            await conn.execute(statement)
    finally:
        await pool.close()


async def _engine_statement(database_url: str, statement: str) -> None:
    engine = make_engine(database_url, 1, statement_timeout=DEADLINE)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("run", [_pool_statement, _engine_statement])
def test_a_statement_longer_than_the_deadline_is_cancelled(database_url: str, run) -> None:
    with pytest.raises(Exception, match="statement timeout"):
        asyncio.run(run(database_url, "SELECT pg_sleep(5)"))


@pytest.mark.parametrize("run", [_pool_statement, _engine_statement])
def test_a_lock_wait_longer_than_the_deadline_ends(database_url: str, run) -> None:
    plain = database_url.replace("+psycopg", "")
    with psycopg.connect(plain) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(424242)")  # held until rollback
        with pytest.raises(Exception, match="lock timeout"):
            asyncio.run(run(database_url, "SELECT pg_advisory_lock(424242)"))
