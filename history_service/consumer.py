"""Storing the event service's change notifications as versions.

History replicas share one durable JetStream consumer (`common.consumer`). A
message is acked only after its version is committed; storing is idempotent on
(event_id, version), so redeliveries and duplicates change nothing. Passing
failures (database down) `nak` the message with a delay; a message that can never
be stored is recorded as a dead letter and `term`inated.
"""

import logging
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker

from common.consumer import DurableConsumer, Subscription, is_passing
from common.notifications import event_subject, version_of_msg_id
from history_service import repo
from history_service.changes import PoisonMessage, parse_change
from history_service.config import HistorySettings
from history_service.notifier import VersionNotifier

log = logging.getLogger(__name__)


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
    msg_id = (msg.headers or {}).get("Nats-Msg-Id")
    event_id, version = version_of_msg_id(msg_id) or (None, None)
    return {
        "stream_sequence": sequence,
        "subject": msg.subject,
        "msg_id": msg_id,
        "event_id": event_id,
        "version": version,
        "payload": msg.data,
        "error": parsed.error or "unknown error",
    }


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


class ChangeConsumer(DurableConsumer):
    trace_name = "history.store_versions"

    def __init__(
        self,
        settings: HistorySettings,
        sessions: async_sessionmaker,
        notifier: VersionNotifier,
    ) -> None:
        namespace = settings.namespace
        super().__init__(
            Subscription.to_event_stream(
                settings.nats_url,
                namespace,
                filter_subject=event_subject(namespace, "*"),
                durable=settings.durable_name,
                batch_size=settings.history_consumer_batch_size,
                ack_wait=settings.history_consumer_ack_wait,
            ),
            name="history",
        )
        self._settings = settings
        self._sessions = sessions
        self._notifier = notifier

    async def handle(self, messages: list[Msg]) -> None:
        batch = [parse(msg) for msg in messages]
        try:
            new = await store(self._sessions, batch)
        except Exception as error:
            if not is_passing(error):
                log.exception("storing versions failed")
            else:
                log.warning("storing versions failed", extra={"error": repr(error)})
            retry_delay = self._settings.history_consumer_retry_delay
            await self.retry((parsed.msg for parsed in batch), retry_delay)
            return
        log.debug("stored", extra={"messages": len(batch), "new_versions": len(new)})
        self._notifier.stored({event_id for event_id, _ in new})
        for parsed in batch:
            if parsed.row is not None:
                await self.ack(parsed.msg)
            else:
                log.error(
                    "dead letter",
                    extra={"subject": parsed.msg.subject, "reason": parsed.error},
                )
                await self.dead_letter(parsed.msg)
