"""`python -m history_service rebuild`: store every version the stream still holds.

Reads the whole stream with an ephemeral ordered consumer and stores it with the
same idempotent inserts as the live consumer, so it only fills in what is
missing and can run beside running replicas, any number of times.
"""

import asyncio
import logging
from dataclasses import dataclass

from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy.ext.asyncio import async_sessionmaker

from common.db import make_engine, make_sessionmaker
from common.nats_client import connect, ensure_stream
from common.notifications import event_stream, event_stream_subjects, event_subject
from history_service.config import HistorySettings
from history_service.consumer import Parsed, parse, store

log = logging.getLogger(__name__)

BATCH_SIZE = 500
IDLE_TIMEOUT = 10.0


@dataclass
class RebuildReport:
    messages: int = 0
    new_versions: int = 0
    dead_letters: int = 0


async def rebuild(settings: HistorySettings) -> RebuildReport:
    """Store the stream's messages up to its last one at the start of the rebuild."""
    namespace = settings.namespace
    stream, subject = event_stream(namespace), event_subject(namespace, "*")
    engine = make_engine(settings.database_url, 2)
    sessions = make_sessionmaker(engine)
    client = await connect(settings.nats_url, "history-rebuild")
    report = RebuildReport()
    try:
        await ensure_stream(client, stream, event_stream_subjects(namespace))
        js = client.jetstream()
        try:
            # The stream carries access changes too: stop at the last version message.
            last = (await js.get_last_msg(stream, subject)).seq
        except NotFoundError:
            return report
        subscription = await js.subscribe(
            subject, stream=stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        batch: list[Parsed] = []
        sequence = 0
        while sequence < last:
            try:
                msg = await subscription.next_msg(timeout=IDLE_TIMEOUT)
            except TimeoutError:
                # The rest of the stream was deleted meanwhile (e.g. by a retention limit).
                log.warning("stream ended early", extra={"sequence": sequence, "last": last})
                break
            sequence = msg.metadata.sequence.stream
            batch.append(parse(msg))
            if len(batch) >= BATCH_SIZE or sequence >= last:
                await _store_batch(sessions, batch, report)
                batch = []
        await _store_batch(sessions, batch, report)
        await subscription.unsubscribe()
    finally:
        await client.close()
        await engine.dispose()
    log.info("rebuild finished", extra=vars(report))
    return report


async def _store_batch(
    sessions: async_sessionmaker, batch: list[Parsed], report: RebuildReport
) -> None:
    if batch:
        report.new_versions += len(await store(sessions, batch))
        report.messages += len(batch)
        report.dead_letters += sum(1 for parsed in batch if parsed.row is None)


def main() -> None:
    from common.logging import configure_logging

    settings = HistorySettings()
    configure_logging("history_service", settings.log_level)
    report = asyncio.run(rebuild(settings))
    print(
        f"read {report.messages} messages: {report.new_versions} new versions, "
        f"{report.dead_letters} dead letters"
    )
