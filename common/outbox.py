"""Transactional outbox: a change and its notification commit together; a relay
publishes unsent notifications to JetStream afterwards.

A NATS outage therefore delays notifications but never loses one and never fails
the write that caused it. Every message carries `Nats-Msg-Id`, so a row published
twice (a crash between publish and marking it sent) is dropped by JetStream.
"""

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

import nats.errors
from nats.aio.client import Client
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from common.nats_client import connect, ensure_stream

log = logging.getLogger(__name__)

PURGE_INTERVAL = 300.0

# (subject, Nats-Msg-Id, payload)
Message = tuple[str, str, bytes]


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
        Index("ix_outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),
    )


async def enqueue_many(
    session: AsyncSession | AsyncConnection,
    table: Table,
    messages: list[Message],
) -> None:
    """Add (subject, msg_id, payload) notifications in the caller's transaction, in one go."""
    if messages:
        await session.execute(
            insert(table),
            [{"subject": s, "msg_id": m, "payload": p} for s, m, p in messages],
        )


class OutboxRelay:
    def __init__(
        self,
        table: Table,
        sessions: async_sessionmaker,
        nats_url: str,
        stream: str,
        subjects: list[str],
        *,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        keep_sent_for: float = 86_400,
    ) -> None:
        self._table = table
        self._sessions = sessions
        self._nats_url = nats_url
        self._stream = stream
        self._subjects = subjects
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._keep_sent_for = keep_sent_for
        self._wake = asyncio.Event()
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_purge = float("-inf")

    def wake(self) -> None:
        """Publish soon: called after a transaction that enqueued notifications commits."""
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                if self._client is None or self._client.is_closed:
                    self._client = await connect(self._nats_url, "outbox-relay")
                    await ensure_stream(self._client, self._stream, self._subjects)
                while await self.publish_pending():
                    pass
                if time.monotonic() - self._last_purge > PURGE_INTERVAL:
                    await self._purge_sent()
                    self._last_purge = time.monotonic()
                backoff = 0.2
                try:
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)
                except TimeoutError:
                    pass
                self._wake.clear()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "outbox relay paused", extra={"error": repr(error), "retry_in": backoff}
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows; returns how many were sent."""
        assert self._client is not None
        js = self._client.jetstream()
        table = self._table
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(table.c.id, table.c.subject, table.c.msg_id, table.c.payload)
                    .where(table.c.sent_at.is_(None))
                    .order_by(table.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            acks = [
                js.publish(row.subject, row.payload, timeout=5, headers={"Nats-Msg-Id": row.msg_id})
                for row in rows
            ]
            await asyncio.gather(*acks)
            await session.execute(
                update(table)
                .where(table.c.id.in_([row.id for row in rows]))
                .values(sent_at=datetime.now(UTC))
            )
        return len(rows)

    async def _purge_sent(self) -> None:
        table = self._table
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(table).where(
                    table.c.sent_at < datetime.now(UTC) - timedelta(seconds=self._keep_sent_for)
                )
            )

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
        if self._client is not None and not self._client.is_closed:
            try:
                await self._client.drain()
            except nats.errors.Error:
                pass
