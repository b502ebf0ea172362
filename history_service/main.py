"""Wiring of the history service: settings, database, clients, consumer, gRPC server."""

from redis.asyncio import Redis

from common.db import make_sessionmaker
from common.wiring import Wiring, run_process
from eventhub.history.v1 import history_pb2, history_pb2_grpc
from history_service.config import HistorySettings
from history_service.consumer import ChangeConsumer
from history_service.events import CachedVersions, EventClient
from history_service.notifier import VersionNotifier
from history_service.service import HistoryService
from history_service.servicer import HistoryServicer


async def run(wiring: Wiring[HistorySettings]) -> None:
    settings = wiring.settings
    engine = wiring.engine()
    sessions = make_sessionmaker(engine)
    redis = Redis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    wiring.on_stop(redis.aclose)
    cache = CachedVersions(redis, settings.namespace, settings.event_cache_ttl)
    # Rollbacks go through the event service as the history service (they supply content).
    events_channel = wiring.channel(settings.events_addr, wiring.service_tokens("history"))
    events = EventClient(events_channel, cache)
    verifier = wiring.user_verifier()
    notifier = VersionNotifier()
    reads = await wiring.driver_pool("reads")
    service = HistoryService(settings, reads, events, notifier)
    consumer = ChangeConsumer(settings, sessions, notifier)
    consuming = consumer.start()
    wiring.on_stop(consumer.close)
    wiring.on_stop(lambda: consumer.stop(consuming))

    await wiring.serve(
        history_pb2,
        "HistoryService",
        history_pb2_grpc.add_HistoryServiceServicer_to_server,
        HistoryServicer(service),
        verifier,
    )


def main() -> None:
    run_process("history_service", HistorySettings, run)
