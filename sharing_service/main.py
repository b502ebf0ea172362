"""Wiring of the sharing service: settings, database, auth client, outbox relay, gRPC server."""

import asyncio

from common.db import autocommit, make_engine, make_sessionmaker
from common.grpc_client import open_channel, public_key_fetcher
from common.grpc_server import serve
from common.logging import configure_logging
from common.notifications import sharing_stream, sharing_subject
from common.outbox import OutboxRelay
from common.tokens import TokenVerifier
from eventhub.sharing.v1 import sharing_pb2, sharing_pb2_grpc
from sharing_service.config import SharingSettings
from sharing_service.models import outbox
from sharing_service.service import SharingService
from sharing_service.servicer import SharingServicer
from sharing_service.users import UserDirectory


async def run(settings: SharingSettings) -> None:
    engine = make_engine(settings.database_url, settings.db_pool_size)
    sessions = make_sessionmaker(engine)
    auth_channel = open_channel(settings.auth_addr, settings.grpc_deadline)
    verifier = TokenVerifier(
        settings.jwt_issuer, settings.jwt_audience, public_key_fetcher(auth_channel)
    )
    relay = OutboxRelay(
        outbox,
        sessions,
        settings.nats_url,
        sharing_stream(settings.namespace),
        [sharing_subject(settings.namespace)],
    )
    relay.start()
    service = SharingService(
        settings,
        sessions,
        make_sessionmaker(autocommit(engine)),
        UserDirectory(auth_channel).lookup,
        on_change=relay.wake,
    )

    async def close() -> None:
        await relay.close()
        await auth_channel.close()
        await engine.dispose()

    await serve(
        port=settings.grpc_port,
        service_names=[sharing_pb2.DESCRIPTOR.services_by_name["SharingService"].full_name],
        register=lambda server: sharing_pb2_grpc.add_SharingServiceServicer_to_server(
            SharingServicer(service), server
        ),
        verifier=verifier,
        shutdown_grace=settings.shutdown_grace,
        on_stop=close,
    )


def main() -> None:
    settings = SharingSettings()
    configure_logging("sharing_service", settings.log_level)
    asyncio.run(run(settings))
