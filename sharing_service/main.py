"""Wiring of the sharing service: settings, database, auth and event clients, the audit
consumer, gRPC server."""

from common.db import make_engine, make_sessionmaker
from common.grpc_client import open_channel, public_key_fetcher
from common.grpc_server import run_service, serve
from common.logging import configure_logging
from common.tokens import TokenVerifier
from eventhub.sharing.v1 import sharing_pb2, sharing_pb2_grpc
from sharing_service.audit import AuditConsumer
from sharing_service.config import SharingSettings
from sharing_service.events import EventAccessClient
from sharing_service.service import SharingService
from sharing_service.servicer import SharingServicer
from sharing_service.users import UserDirectory


async def run(settings: SharingSettings) -> None:
    engine = make_engine(settings.database_url, settings.db_pool_size, settings.grpc_deadline)
    channels = [
        open_channel(settings.auth_addr, settings.grpc_deadline),
        open_channel(settings.events_addr, settings.grpc_deadline),
    ]
    auth_channel, events_channel = channels
    verifier = TokenVerifier(
        settings.jwt_issuer, settings.jwt_audience, public_key_fetcher(auth_channel)
    )
    service = SharingService(EventAccessClient(events_channel), UserDirectory(auth_channel).lookup)
    audit = AuditConsumer(settings, make_sessionmaker(engine))
    auditing = audit.start()

    async def close() -> None:
        await audit.stop(auditing)
        await audit.close()
        for channel in channels:
            await channel.close()
        await engine.dispose()

    await serve(
        port=settings.grpc_port,
        service_names=[sharing_pb2.DESCRIPTOR.services_by_name["SharingService"].full_name],
        register=lambda server: sharing_pb2_grpc.add_SharingServiceServicer_to_server(
            SharingServicer(service), server
        ),
        verifier=verifier,
        shutdown_grace=settings.shutdown_grace,
        host=settings.grpc_listen_host,
        on_stop=close,
    )


def main() -> None:
    settings = SharingSettings()
    configure_logging("sharing_service", settings.log_level)
    run_service(run(settings))
