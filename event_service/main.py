"""Wiring of the event service: settings, database, Redis, outbox relay, gRPC server."""

import asyncio
import sys

from redis.asyncio import Redis

from common.db import make_engine, make_write_pool
from common.event_cache import event_cache_prefix, view_prefix
from common.grpc_client import open_channel, public_key_fetcher
from common.grpc_server import run_service, serve
from common.idempotency import IdempotencyKeys
from common.logging import configure_logging
from common.notifications import event_stream, event_stream_subjects
from common.outbox import OutboxRelay
from common.tokens import TokenVerifier
from event_service.access import AccessService
from event_service.cache import EventCache
from event_service.config import EventSettings
from event_service.models import idempotency_keys, outbox
from event_service.reads import EventReader
from event_service.service import EventService
from event_service.servicer import EventServicer
from eventhub.events.v1 import events_pb2, events_pb2_grpc


async def run(settings: EventSettings) -> None:
    engine = make_engine(settings.database_url, settings.db_pool_size, settings.grpc_deadline)
    writes = make_write_pool(
        settings.database_url,
        settings.db_pool_size,
        timeout=settings.grpc_deadline / 2,
        statement_timeout=settings.grpc_deadline,
    )
    await writes.open()
    redis = Redis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    auth_channel = open_channel(settings.auth_addr, settings.grpc_deadline)
    verifier = TokenVerifier(
        settings.jwt_issuer, settings.jwt_audience, public_key_fetcher(auth_channel)
    )
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
    service = EventService(settings, writes, reader, cache, relay.wake)
    access = AccessService(settings.namespace, engine, cache, relay.wake)
    keys = IdempotencyKeys(idempotency_keys, settings.idempotency_ttl)
    relay.start()
    purge = asyncio.create_task(keys.purge_expired(writes), name="idempotency-key-purge")

    async def close() -> None:
        purge.cancel()
        await relay.close()
        await auth_channel.close()
        await redis.aclose()
        await writes.close()
        await engine.dispose()

    await serve(
        port=settings.grpc_port,
        service_names=[events_pb2.DESCRIPTOR.services_by_name["EventService"].full_name],
        register=lambda server: events_pb2_grpc.add_EventServiceServicer_to_server(
            EventServicer(reader, service, access, keys), server
        ),
        verifier=verifier,
        shutdown_grace=settings.shutdown_grace,
        host=settings.grpc_listen_host,
        on_stop=close,
    )


def main() -> None:
    settings = EventSettings()
    configure_logging("event_service", settings.log_level)
    # Series are checked in worker threads (`event_service.checks.beside_the_loop`):
    # the event loop gets the GIL back from them within 0.5 ms instead of 5.
    sys.setswitchinterval(0.0005)
    run_service(run(settings))
