"""Transactional outbox: a change and its notification commit together; a relay
publishes them to JetStream afterwards.

The writer hands its messages to the relay once its transaction has committed
(`OutboxRelay.committed`), and the relay publishes them from memory, together with
whatever else was handed over meanwhile, then marks their rows sent in one
statement. What that misses (NATS down, a process that died after its commit) the
relay's sweep finds in the table a moment later. A NATS outage therefore delays
notifications but never loses one and never fails the write that caused it. Every
message carries `Nats-Msg-Id`, so a row published twice (a crash between publishing
and marking it sent, or the sweep meeting a row whose publish was still under way)
is dropped by JetStream.

Operators see the backlog in `eventhub_outbox_pending_messages` and
`eventhub_outbox_oldest_pending_age_seconds` (each replica measures the whole table
every few seconds, so they agree: take the max), and the relay's work in
`eventhub_outbox_published_total` and `eventhub_outbox_publish_failures_total`.

A message also carries the W3C trace context of the request that queued it, when that
request is traced (`common.tracing.trace_headers`): stored in its row, sent as message
headers, so that its consumer's work is part of the request's trace.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import nats.errors
import orjson
import psycopg
from nats.aio.client import Client
from prometheus_client import Counter, Gauge
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from common.db import pipelined_transaction, pooled_connection
from common.metrics import refresh_every
from common.nats_client import connect, ensure_stream
from common.tracing import TraceHeaders

log = logging.getLogger(__name__)

PURGE_INTERVAL = 300.0
# Messages handed over and not yet published; past this, rows wait for the sweep.
MAX_HANDED_OVER = 10_000
# Seconds between measurements of the backlog (unsent rows) for the gauges below.
BACKLOG_MEASURE_INTERVAL = 5.0

PENDING = Gauge("eventhub_outbox_pending_messages", "Outbox rows not published yet")
OLDEST_PENDING_AGE = Gauge(
    "eventhub_outbox_oldest_pending_age_seconds",
    "Seconds since the oldest unpublished outbox row was written (0: none)",
)
PUBLISHED = Counter(
    "eventhub_outbox_published_total", "Outbox messages published (JetStream acknowledged them)"
)
PUBLISH_FAILURES = Counter(
    "eventhub_outbox_publish_failures_total",
    "Outbox messages whose publishing failed (left for the sweep to retry)",
)

# (subject, Nats-Msg-Id, payload, trace context: `common.tracing.trace_headers()` of the
# request that queued it, None if it is not traced)
Message = tuple[str, str, bytes, TraceHeaders | None]


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("subject", Text, nullable=False),
        Column("msg_id", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("sent_at", DateTime(timezone=True)),
        Column("trace_context", JSON),
        Index("ix_outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),
        Index("ix_outbox_unsent_msg_id", "msg_id", postgresql_where=text("sent_at IS NULL")),
    )


def insert_sql(table: Table) -> str:
    """SQL adding the messages of `message_params` (psycopg placeholders); a statement
    of its own, or a part of a larger one (it ends with a FROM clause)."""
    return (
        f"INSERT INTO {table.schema}.{table.name} (subject, msg_id, payload, trace_context) "
        "SELECT subject, msg_id, convert_to(payload::text, 'UTF8'), trace_context "
        "FROM json_to_recordset(%(messages)s::json) "
        "AS m(subject text, msg_id text, payload json, trace_context json)"
    )


def message_params(messages: Sequence[Message]) -> dict[str, str]:
    """The messages as one JSON parameter: cheaper to send than a parameter per column.
    Payloads are JSON documents (notifications are), embedded as they are."""
    rows = [
        {
            "subject": subject,
            "msg_id": msg_id,
            "payload": orjson.Fragment(payload),
            "trace_context": trace,
        }
        for subject, msg_id, payload, trace in messages
    ]
    return {"messages": orjson.dumps(rows).decode()}


def trace_param(trace: TraceHeaders | None) -> str | None:
    """A trace context as a statement parameter for the `trace_context` column."""
    return None if trace is None else orjson.dumps(trace).decode()


async def enqueue_many(
    conn: AsyncConnection | psycopg.AsyncConnection,
    table: Table,
    messages: Sequence[Message],
) -> None:
    """Add (subject, msg_id, payload) notifications in the caller's transaction, in one go."""
    if not messages:
        return
    if isinstance(conn, psycopg.AsyncConnection):
        await conn.execute(insert_sql(table), message_params(messages))
    else:
        await conn.exec_driver_sql(insert_sql(table), message_params(messages))


class OutboxRelay:
    def __init__(
        self,
        table: Table,
        writes: AsyncConnectionPool,
        nats_url: str,
        stream: str,
        subjects: list[str],
        *,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        sweep_after: float = 2.0,
        keep_sent_for: float = 86_400,
    ) -> None:
        name = f"{table.schema}.{table.name}"
        # Rows left unsent `sweep_after` seconds after their transaction began: the
        # writer's own publish failed, or has not happened yet (it then is a repeat).
        self._select_unsent = (
            f"SELECT id, subject, msg_id, payload, trace_context FROM {name}"
            " WHERE sent_at IS NULL"
            " AND created_at < statement_timestamp() - make_interval(secs => %s)"
            " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
        )
        self._mark_sent = f"UPDATE {name} SET sent_at = statement_timestamp() WHERE id = ANY(%s)"
        self._mark_published = (
            f"UPDATE {name} SET sent_at = statement_timestamp()"
            " WHERE sent_at IS NULL AND msg_id = ANY(%s)"
        )
        self._purge = (
            f"DELETE FROM {name} WHERE sent_at < statement_timestamp() - make_interval(secs => %s)"
        )
        # Both walk the partial index of unsent rows, which holds next to nothing when
        # all is well.
        self._count_unsent = (
            f"SELECT count(*), extract(epoch FROM statement_timestamp() - ("
            f"SELECT created_at FROM {name} WHERE sent_at IS NULL ORDER BY id LIMIT 1))"
            f" FROM {name} WHERE sent_at IS NULL"
        )
        self._writes = writes
        self._nats_url = nats_url
        self._stream = stream
        self._subjects = subjects
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._sweep_after = sweep_after
        self._keep_sent_for = keep_sent_for
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._handed_over: list[Message] = []
        self._handed_over_wake = asyncio.Event()
        self._published: list[str] = []  # msg ids of rows to mark sent
        self._published_wake = asyncio.Event()
        self._last_sweep = float("-inf")
        self._last_purge = float("-inf")

    def committed(self, messages: Sequence[Message]) -> None:
        """Publish `messages` soon: called once the transaction that enqueued them has
        committed. Never fails the caller; whatever is not published from here, the
        sweep publishes later."""
        client = self._client
        if not messages or client is None or not client.is_connected:
            return
        if len(self._handed_over) + len(messages) > MAX_HANDED_OVER:
            return
        self._handed_over.extend(messages)
        self._handed_over_wake.set()

    async def run(self) -> None:
        """Two loops: one publishes what writers hand over, the other does the table's
        work (marking sent, the sweep, the purge), so that publishing never waits for
        PostgreSQL; and the backlog's measurement."""
        await asyncio.gather(
            _keep_running("publishing", self._publish_handed_over),
            _keep_running("marking sent", self._table_work),
            refresh_every(BACKLOG_MEASURE_INTERVAL, self.measure_backlog, "the outbox backlog"),
        )

    async def _publish_handed_over(self) -> None:
        if self._client is None or self._client.is_closed:
            self._client = await connect(self._nats_url, "outbox-relay")
            await ensure_stream(self._client, self._stream, self._subjects)
        await self._handed_over_wake.wait()
        self._handed_over_wake.clear()
        messages, self._handed_over = self._handed_over, []
        # If publishing fails, the sweep publishes these (JetStream drops repeats).
        await _publish(self._client, messages)
        self._published.extend(message[1] for message in messages)
        self._published_wake.set()

    async def _table_work(self) -> None:
        await self._mark_published_sent()
        client = self._client
        swept_long_ago = time.monotonic() - self._last_sweep >= self._poll_interval
        if swept_long_ago and client is not None and client.is_connected:
            while await self._sweep() == self._batch_size:
                pass
            self._last_sweep = time.monotonic()
        if time.monotonic() - self._last_purge > PURGE_INTERVAL:
            await self._purge_sent()
            self._last_purge = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._published_wake.wait(), self._poll_interval)
        self._published_wake.clear()

    async def _mark_published_sent(self) -> None:
        """Mark the rows published from memory sent, in one statement. If that fails,
        the sweep publishes them again (JetStream drops the repeats)."""
        if not self._published:
            return
        published, self._published = self._published, []
        async with pooled_connection(self._writes) as conn:
            await conn.execute(self._mark_published, (published,))

    async def _sweep(self) -> int:
        """Publish one batch of rows left unsent (see `_select_unsent`);
        returns how many were sent. The rows stay locked (other relays skip them) until
        they are marked sent, and that commits together with the mark: two round trips
        to PostgreSQL in all."""
        assert self._client is not None
        async with pipelined_transaction(self._writes) as conn:
            cursor = await conn.execute(self._select_unsent, (self._sweep_after, self._batch_size))
            rows = await cursor.fetchall()
            if rows:
                await _publish(self._client, [row[1:] for row in rows])
                await conn.execute(self._mark_sent, ([row[0] for row in rows],))
        return len(rows)

    async def measure_backlog(self) -> None:
        """Set the backlog gauges from the table: rows unsent, and the oldest one's age."""
        async with pooled_connection(self._writes) as conn:
            cursor = await conn.execute(self._count_unsent)
            pending, oldest_age = await cursor.fetchone() or (0, None)
        PENDING.set(pending)
        OLDEST_PENDING_AGE.set(max(float(oldest_age or 0), 0.0))

    async def _purge_sent(self) -> None:
        async with pipelined_transaction(self._writes) as conn:
            await conn.execute(self._purge, (self._keep_sent_for,))

    def start(self) -> None:
        """Run the relay in the background until `close`."""
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def close(self) -> None:
        """Stop relaying (unsent rows stay for the next start) and drain NATS."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._mark_published_sent()
        if self._client is not None and not self._client.is_closed:
            try:
                await self._client.drain()
            except nats.errors.Error:
                pass


async def _keep_running(doing: str, step: Callable[[], Awaitable[None]]) -> None:
    """Repeat `step` until cancelled, pausing with a growing backoff after a failure."""
    backoff = 0.2
    while True:
        try:
            await step()
            backoff = 0.2
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning(
                "outbox relay paused",
                extra={"doing": doing, "error": repr(error), "retry_in": backoff},
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


async def _publish(client: Client, messages: Sequence[Message]) -> None:
    """Publish to JetStream and wait for every ack (the message is stored); raises the
    first failure once every publish has ended."""
    js = client.jetstream()
    outcomes = await asyncio.gather(
        *(
            js.publish(
                subject,
                payload,
                timeout=5,
                headers={"Nats-Msg-Id": msg_id, **trace} if trace else {"Nats-Msg-Id": msg_id},
            )
            for subject, msg_id, payload, trace in messages
        ),
        return_exceptions=True,
    )
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    PUBLISHED.inc(len(outcomes) - len(failures))
    if failures:
        PUBLISH_FAILURES.inc(len(failures))
        raise failures[0]
