"""A durable JetStream pull consumer that rides out NATS and database outages.

Every replica of a service pulls from one durable consumer, so each message goes
to one replica. Subclasses store a fetched batch in `handle` and ack each message
only after their commit; JetStream redelivers whatever is not acked in time, so a
process that dies mid-batch loses nothing. Storing must be idempotent.

Subclasses dispose of each message through `ack`, `retry` and `dead_letter`, which
count them in the metrics below, labelled with the consumer's `name`; the consumer's
backlog is read from JetStream every few seconds (the durable consumer is shared, so
replicas report the same backlog: take the max). With tracing on, a batch is stored in
a span per message that came with a trace context, named `trace_name`, each a child of
the request that queued the message (`common.tracing`).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from common.nats_client import connect, ensure_stream
from common.notifications import event_stream, event_stream_subjects
from common.tracing import consuming

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 1.0
MAX_BACKOFF = 5.0
# Seconds between readings of the consumer's backlog from JetStream.
BACKLOG_MEASURE_INTERVAL = 5.0

PENDING = Gauge(
    "eventhub_consumer_pending_messages",
    "Messages of the stream not yet delivered to the consumer (JetStream num_pending)",
    ["consumer"],
)
ACK_PENDING = Gauge(
    "eventhub_consumer_ack_pending_messages",
    "Messages delivered and not acknowledged yet, redeliveries included (num_ack_pending)",
    ["consumer"],
)
PROCESSED = Counter(
    "eventhub_consumer_processed_total", "Messages stored and acknowledged", ["consumer"]
)
RETRIES = Counter(
    "eventhub_consumer_retries_total",
    "Messages handed back for redelivery after a passing failure (database down)",
    ["consumer"],
)
DEAD_LETTERS = Counter(
    "eventhub_consumer_dead_letters_total",
    "Messages given up on: they can never be stored",
    ["consumer"],
)


@dataclass(frozen=True)
class Subscription:
    """Where a consumer reads: the stream (created with `subjects` if missing), the
    subjects it takes from it, and the durable name its replicas share."""

    nats_url: str
    stream: str
    subjects: list[str]
    filter_subject: str
    durable: str
    batch_size: int
    ack_wait: float

    @classmethod
    def to_event_stream(
        cls,
        nats_url: str,
        namespace: str,
        filter_subject: str,
        durable: str,
        batch_size: int,
        ack_wait: float,
    ) -> "Subscription":
        """A consumer of the event service's stream (versions and access changes)."""
        return cls(
            nats_url=nats_url,
            stream=event_stream(namespace),
            subjects=event_stream_subjects(namespace),
            filter_subject=filter_subject,
            durable=durable,
            batch_size=batch_size,
            ack_wait=ack_wait,
        )


def is_passing(error: Exception) -> bool:
    """Whether a database error may go away by itself (connection lost, pool exhausted)."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeoutError | OSError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


class DurableConsumer:
    trace_name = "store"

    def __init__(self, subscription: Subscription, name: str) -> None:
        """`name` labels the consumer's metrics (`history`, `sharing_audit`)."""
        self._where = subscription
        self._client: Client | None = None
        self._subscription: Any = None
        self._stopping = asyncio.Event()
        self._pending = PENDING.labels(name)
        self._ack_pending = ACK_PENDING.labels(name)
        self._processed = PROCESSED.labels(name)
        self._retries = RETRIES.labels(name)
        self._dead_letters = DEAD_LETTERS.labels(name)
        self._measure_backlog_at = 0.0

    async def handle(self, messages: list[Msg]) -> None:
        """Store a batch, then `ack`, `retry` or `dead_letter` each message."""
        raise NotImplementedError

    async def ack(self, message: Msg) -> None:
        """The message is stored."""
        await message.ack()
        self._processed.inc()

    async def retry(self, messages: Iterable[Msg], delay: float) -> None:
        """Storing failed for a passing reason: redeliver the messages after `delay`."""
        for message in messages:
            await message.nak(delay=delay)
            self._retries.inc()

    async def dead_letter(self, message: Msg) -> None:
        """The message can never be stored: never deliver it again."""
        await message.term()
        self._dead_letters.inc()

    def consumer_config(self) -> ConsumerConfig:
        where = self._where
        return ConsumerConfig(
            durable_name=where.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=where.ack_wait,
            max_ack_pending=10 * where.batch_size,
            filter_subject=where.filter_subject,
        )

    async def run(self) -> None:
        """Consume until `stop()`."""
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                subscription = await self._subscribe()
                await self._measure_backlog()
                try:
                    messages = await subscription.fetch(
                        self._where.batch_size, timeout=FETCH_TIMEOUT
                    )
                except TimeoutError:
                    continue
                with consuming(self.trace_name, messages):
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

    async def _subscribe(self) -> Any:
        where = self._where
        if self._client is None or self._client.is_closed:
            self._client = await connect(where.nats_url, where.durable)
            self._subscription = None
        if self._subscription is None:
            await ensure_stream(self._client, where.stream, where.subjects)
            self._subscription = await self._client.jetstream().pull_subscribe(
                where.filter_subject,
                durable=where.durable,
                stream=where.stream,
                config=self.consumer_config(),
            )
            log.info("consuming", extra={"stream": where.stream, "durable": where.durable})
        return self._subscription

    async def _measure_backlog(self) -> None:
        """Every few seconds, set the backlog gauges from JetStream's consumer info; a
        failure only leaves them as they were."""
        if time.monotonic() < self._measure_backlog_at:
            return
        self._measure_backlog_at = time.monotonic() + BACKLOG_MEASURE_INTERVAL
        assert self._client is not None
        where = self._where
        try:
            info = await self._client.jetstream().consumer_info(
                where.stream, where.durable, timeout=FETCH_TIMEOUT
            )
        except (nats.errors.Error, TimeoutError) as error:
            log.debug("consumer info unavailable", extra={"error": repr(error)})
            return
        self._pending.set(info.num_pending or 0)
        self._ack_pending.set(info.num_ack_pending or 0)

    async def _drop_subscription(self) -> None:
        """Forget the subscription so the next round binds anew (the consumer may be gone)."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                await subscription.unsubscribe()
            except Exception:  # the connection may be down; the server drops it then
                pass

    def start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self.run(), name=self._where.durable)

    async def stop(self, running: asyncio.Task[None], grace: float = FETCH_TIMEOUT + 1) -> None:
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
