"""Wiring of the auth service: settings, database, Redis, signing key, gRPC server."""

from redis.asyncio import Redis

from auth_service.config import AuthSettings
from auth_service.keys import SigningKey
from auth_service.service import AuthService
from auth_service.servicer import AuthServicer
from common.db import make_engine, make_sessionmaker
from common.grpc_server import run_service, serve
from common.logging import configure_logging
from common.tokens import TokenVerifier
from eventhub.auth.v1 import auth_pb2, auth_pb2_grpc


async def run(settings: AuthSettings) -> None:
    engine = make_engine(settings.database_url, settings.db_pool_size, settings.grpc_deadline)
    redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    signing_key = SigningKey.from_pem(settings.signing_key_pem())
    service = AuthService(settings, make_sessionmaker(engine), redis, signing_key)

    async def own_keys() -> dict[str, str]:
        return {signing_key.kid: signing_key.public_pem}

    verifier = TokenVerifier(settings.jwt_issuer, settings.jwt_audience, own_keys)
    await verifier.refresh_keys()

    async def close() -> None:
        service.passwords.close()
        await redis.aclose()
        await engine.dispose()

    await serve(
        port=settings.grpc_port,
        service_names=[auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name],
        register=lambda server: auth_pb2_grpc.add_AuthServiceServicer_to_server(
            AuthServicer(service), server
        ),
        verifier=verifier,
        shutdown_grace=settings.shutdown_grace,
        host=settings.grpc_listen_host,
        on_stop=close,
    )


def main() -> None:
    settings = AuthSettings()
    configure_logging("auth_service", settings.log_level)
    run_service(run(settings))
