"""A pipelined transaction within a traced span is one SQL span holding its statements;
outside one, no span. On real PostgreSQL, with an in-memory exporter."""

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from common import tracing
from common.db import make_driver_pool, pipelined_transaction


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    yield exporter


async def _run(database_url: str, statements: list[str], traced: bool) -> type:
    """Run `statements` in a pipelined transaction (within a traced span if `traced`);
    the cursor class of the connection afterwards."""
    pool = make_driver_pool(database_url, 1, timeout=5, name="writes")
    await pool.open()
    try:
        request = tracing._tracer.start_as_current_span("request", kind=SpanKind.SERVER)
        with request if traced else tracing._NOTHING:
            try:
                async with pipelined_transaction(pool) as conn:
                    for statement in statements:
                        await conn.execute(statement)
            except psycopg.Error:
                pass
        async with pool.connection() as conn:
            assert (await (await conn.execute("SELECT 1")).fetchone()) == (1,)
            return conn.cursor_factory
    finally:
        await pool.close()


def test_a_traced_transaction_is_one_span_with_its_statements(
    stack_env: dict[str, str], exported: InMemorySpanExporter
) -> None:
    cursor = asyncio.run(
        _run(stack_env["EVENTHUB_DATABASE_URL"], ["SELECT 1", "SELECT 2"], traced=True)
    )

    (request,) = [s for s in exported.get_finished_spans() if s.name == "request"]
    (transaction,) = [s for s in exported.get_finished_spans() if s.name == "transaction"]
    assert transaction.kind is SpanKind.CLIENT
    assert transaction.parent.span_id == request.context.span_id
    assert transaction.attributes["db.system"] == "postgresql"
    assert transaction.attributes["db.statement"] == "BEGIN;\nSELECT 1;\nSELECT 2;\nCOMMIT"
    assert transaction.attributes["db.operation.batch.size"] == 4
    assert transaction.status.status_code is StatusCode.UNSET
    assert cursor is not tracing._RecordingCursor  # the connection's own cursors again


def test_a_failed_traced_transaction_is_an_error_span(
    stack_env: dict[str, str], exported: InMemorySpanExporter
) -> None:
    cursor = asyncio.run(
        _run(stack_env["EVENTHUB_DATABASE_URL"], ["SELECT 1/0", "SELECT 2"], traced=True)
    )

    (transaction,) = [s for s in exported.get_finished_spans() if s.name == "transaction"]
    assert transaction.status.status_code is StatusCode.ERROR
    assert transaction.attributes["db.statement"].startswith("BEGIN;\nSELECT 1/0")
    assert cursor is not tracing._RecordingCursor


def test_an_untraced_transaction_makes_no_span(
    stack_env: dict[str, str], exported: InMemorySpanExporter
) -> None:
    asyncio.run(_run(stack_env["EVENTHUB_DATABASE_URL"], ["SELECT 1"], traced=False))

    assert exported.get_finished_spans() == ()
