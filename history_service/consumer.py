"""Storing the event service's change notifications as versions.

Every history replica pulls from one durable JetStream consumer, so each
message goes to one replica. A message is acked only after its version is
committed; storing is idempotent on (event_id, version), so redeliveries and
duplicates change nothing. Passing failures (database down) `nak` the message
with a delay; a message that can never be stored is recorded as a dead letter
and `term`inated.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import async_sessionmaker

from common.nats_client import connect, ensure_stream
from common.notifications import event_stream, event_subject
from history_service import repo
from history_service.changes import PoisonMessage, parse_change
from history_service.config import HistorySettings
from history_service.notifier import VersionNotifier

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 1.0
MAX_BACKOFF = 5.0


@dataclass
class Parsed:
    """A fetched message and what it becomes: a version row or a dead letter."""

    msg: Msg
    row: dict[str, Any] | None = None
    error: str | None = None


def parse(msg: Msg) -> Parsed:
    try:
        return Parsed(msg, row=parse_change(msg.data))
    except PoisonMessage as error:
        return Parsed(msg, error=str(error))


def dead_letter_row(parsed: Parsed) -> dict[str, Any]:
    msg = parsed.msg
    try:
        sequence: int | None = msg.metadata.sequence.stream
    except (ValueError, IndexError, AttributeError):
        sequence = None
    return {
        "stream_sequence": sequence,
        "subject": msg.subject,
        "msg_id": (msg.headers or {}).get("Nats-Msg-Id"),
        "payload": msg.data,
        "error": parsed.error or "unknown error",
    }


def is_passing(error: Exception) -> bool:
    """Whether a database error may go away by itself (connection lost, pool exhausted)."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeoutError | OSError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


async def store(sessions: async_sessionmaker, batch: list[Parsed]) -> set[tuple[str, int]]:
    """Commit a batch's versions and dead letters in one transaction; returns the new versions.

    A row the database refuses for good (e.g. text it cannot hold) turns into a
    dead letter, found by storing the batch's messages one by one.
    """
    try:
        return await _store_together(sessions, batch)
    except DBAPIError as error:
        if is_passing(error):
            raise
    new: set[tuple[str, int]] = set()
    for parsed in batch:
        try:
            new |= await _store_together(sessions, [parsed])
        except DBAPIError as error:
            if is_passing(error) or parsed.row is None:
                raise
            parsed.row, parsed.error = None, f"refused by the database: {error.orig}"[:2000]
            await _store_together(sessions, [parsed])
    return new


async def _store_together(
    sessions: async_sessionmaker, batch: list[Parsed]
) -> set[tuple[str, int]]:
    async with sessions() as session, session.begin():
        new = await repo.add_versions(session, [p.row for p in batch if p.row is not None])
        await repo.add_dead_letters(session, [dead_letter_row(p) for p in batch if p.row is None])
    return new


class ChangeConsumer:
    def __init__(
        self,
        settings: HistorySettings,
        sessions: async_sessionmaker,
        notifier: VersionNotifier,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._notifier = notifier
        self._client: Client | None = None
        self._subscription: Any = None
        self._stopping = asyncio.Event()

    def consumer_config(self) -> ConsumerConfig:
        settings = self._settings
        return ConsumerConfig(
            durable_name=settings.durable_name,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=settings.history_consumer_ack_wait,
            max_ack_pending=10 * settings.history_consumer_batch_size,
            filter_subject=event_subject(settings.namespace, "*"),
        )

    async def run(self) -> None:
        """Consume until `stop()`, riding out NATS and database outages."""
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                subscription = await self._subscribe()
                try:
                    messages = await subscription.fetch(
                        self._settings.history_consumer_batch_size, timeout=FETCH_TIMEOUT
                    )
                except TimeoutError:
                    continue
                await self.handle(messages)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("consumer paused", extra={"error": repr(error), "retry_in": backoff})
                await self._drop_subscription()
                try:
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def handle(self, messages: list[Msg]) -> None:
        batch = [parse(msg) for msg in messages]
        try:
            new = await store(self._sessions, batch)
        except Exception as error:
            if not is_passing(error):
                log.exception("storing versions failed")
            else:
                log.warning("storing versions failed", extra={"error": repr(error)})
            for parsed in batch:
                await parsed.msg.nak(delay=self._settings.history_consumer_retry_delay)
            return
        log.debug("stored", extra={"messages": len(batch), "new_versions": len(new)})
        self._notifier.stored({event_id for event_id, _ in new})
        for parsed in batch:
            if parsed.row is not None:
                await parsed.msg.ack()
            else:
                log.error(
                    "dead letter",
                    extra={"subject": parsed.msg.subject, "reason": parsed.error},
                )
                await parsed.msg.term()

    async def _subscribe(self) -> Any:
        if self._client is None or self._client.is_closed:
            self._client = await connect(self._settings.nats_url, "history-consumer")
            self._subscription = None
        if self._subscription is None:
            namespace = self._settings.namespace
            stream = event_stream(namespace)
            await ensure_stream(self._client, stream, [event_subject(namespace, "*")])
            self._subscription = await self._client.jetstream().pull_subscribe(
                event_subject(namespace, "*"),
                durable=self._settings.durable_name,
                stream=stream,
                config=self.consumer_config(),
            )
            log.info("consuming", extra={"stream": stream, "durable": self._settings.durable_name})
        return self._subscription

    async def _drop_subscription(self) -> None:
        """Forget the subscription so the next round binds anew (the consumer may be gone)."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                await subscription.unsubscribe()
            except Exception:  # the connection may be down; the server drops it then
                pass

    async def stop(self, running: asyncio.Task[None], grace: float) -> None:
        """Let `running` (the task of `run()`) finish its batch, then cancel whatever it awaits
        (e.g. connecting to a NATS that is down). Unacked messages are redelivered."""
        self._stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(running), grace)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running

    async def close(self) -> None:
        """Send the last acks and disconnect. (Draining would wait out the pull request.)"""
        await self._drop_subscription()
        if self._client is not None and not self._client.is_closed:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await self._client.flush(timeout=1)
            await self._client.close()
