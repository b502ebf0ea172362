"""Wiring of the event service: settings, database, Redis, outbox relay, gRPC server."""

import sys

from redis.asyncio import Redis

from common.db import pipelined_transaction
from common.event_cache import PageCache, event_cache_prefix, view_prefix
from common.idempotency import IdempotencyKeys
from common.notifications import event_stream, event_stream_subjects
from common.outbox import OutboxRelay
from common.wiring import Wiring, run_process
from event_service.access import AccessService
from event_service.busy import BusyTimes
from event_service.cache import EventCache
from event_service.calendar_export import CalendarExport
from event_service.calendar_import import CalendarImport
from event_service.config import EventSettings
from event_service.models import idempotency_keys, outbox
from event_service.reads import EventReader
from event_service.series_edits import SeriesEdits
from event_service.service import EventService
from event_service.servicer import EventServicer
from event_service.sync import SyncReader, SyncTokens, purge_lost_access
from eventhub.events.v1 import events_pb2, events_pb2_grpc


async def run(wiring: Wiring[EventSettings]) -> None:
    settings = wiring.settings
    services = wiring.service_tokens("events")
    engine = wiring.engine()
    writes = await wiring.driver_pool("writes")
    redis = Redis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    wiring.on_stop(redis.aclose)
    verifier = wiring.user_verifier()
    relay = OutboxRelay(
        outbox,
        writes,
        settings.nats_url,
        event_stream(settings.namespace),
        event_stream_subjects(settings.namespace),
    )
    cache = EventCache(
        redis,
        event_cache_prefix(settings.namespace),
        view_prefix(settings.namespace),
        settings.event_cache_ttl,
        settings.event_cache_retry_after,
    )
    reader = EventReader(engine, cache)
    service = EventService(settings, writes, reader, cache, relay.committed)
    series = SeriesEdits(settings.namespace, writes, reader, cache, service)
    access = AccessService(settings.namespace, engine, cache, relay.committed)
    keys = IdempotencyKeys(idempotency_keys, settings.idempotency_ttl)
    sync = SyncReader(engine, SyncTokens(settings.internal_service_key()))
    pages = PageCache(redis, settings.namespace, settings.event_cache_ttl)
    busy = BusyTimes(engine, pages, settings.event_cache_ttl)
    relay.start()
    wiring.on_stop(relay.close)
    wiring.in_background(
        keys.purge_expired(lambda: pipelined_transaction(writes)), "idempotency-key-purge"
    )
    wiring.in_background(purge_lost_access(engine), "lost-access-purge")

    await wiring.serve(
        events_pb2,
        "EventService",
        events_pb2_grpc.add_EventServiceServicer_to_server,
        EventServicer(
            reader,
            service,
            series,
            access,
            keys,
            services,
            sync,
            busy,
            CalendarExport(engine, reader),
            CalendarImport(settings.namespace, writes, service),
        ),
        verifier,
    )


def main() -> None:
    # Series are checked in worker threads (`event_service.checks.beside_the_loop`):
    # the event loop gets the GIL back from them within 0.5 ms instead of 5.
    sys.setswitchinterval(0.0005)
    run_process("event_service", EventSettings, run)
