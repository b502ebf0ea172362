"""Wiring of the history service: settings, database, clients, consumer, gRPC server."""

from common.db import make_engine, make_sessionmaker
from common.grpc_client import open_channel, public_key_fetcher
from common.grpc_server import run_service, serve
from common.logging import configure_logging
from common.tokens import TokenVerifier
from eventhub.history.v1 import history_pb2, history_pb2_grpc
from history_service.config import HistorySettings
from history_service.consumer import ChangeConsumer
from history_service.events import EventClient
from history_service.notifier import VersionNotifier
from history_service.service import HistoryService
from history_service.servicer import HistoryServicer


async def run(settings: HistorySettings) -> None:
    engine = make_engine(settings.database_url, settings.db_pool_size, settings.grpc_deadline)
    sessions = make_sessionmaker(engine)
    deadline = settings.grpc_deadline
    channels = [
        open_channel(settings.auth_addr, deadline),
        open_channel(settings.events_addr, deadline),
    ]
    auth_channel, events_channel = channels
    notifier = VersionNotifier()
    service = HistoryService(
        settings,
        sessions,
        EventClient(events_channel),
        notifier,
    )
    consumer = ChangeConsumer(settings, sessions, notifier)
    consuming = consumer.start()
    verifier = TokenVerifier(
        settings.jwt_issuer, settings.jwt_audience, public_key_fetcher(auth_channel)
    )

    async def close() -> None:
        await consumer.stop(consuming)
        await consumer.close()
        for channel in channels:
            await channel.close()
        await engine.dispose()

    await serve(
        port=settings.grpc_port,
        service_names=[history_pb2.DESCRIPTOR.services_by_name["HistoryService"].full_name],
        register=lambda server: history_pb2_grpc.add_HistoryServiceServicer_to_server(
            HistoryServicer(service), server
        ),
        verifier=verifier,
        shutdown_grace=settings.shutdown_grace,
        host=settings.grpc_listen_host,
        on_stop=close,
    )


def main() -> None:
    settings = HistorySettings()
    configure_logging("history_service", settings.log_level)
    run_service(run(settings))
