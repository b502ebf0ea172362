"""Wiring of the auth service: settings, database, Redis, signing key, gRPC server."""

from redis.asyncio import Redis

from auth_service.config import AuthSettings
from auth_service.keys import SigningKey
from auth_service.models import idempotency_keys
from auth_service.service import AuthService
from auth_service.servicer import AuthServicer
from common.db import make_sessionmaker
from common.idempotency import IdempotencyKeys
from common.wiring import Wiring, run_process
from eventhub.auth.v1 import auth_pb2, auth_pb2_grpc


async def run(wiring: Wiring[AuthSettings]) -> None:
    settings = wiring.settings
    engine = wiring.engine()
    sessions = make_sessionmaker(engine)
    keys = IdempotencyKeys(idempotency_keys, settings.idempotency_ttl)
    wiring.in_background(keys.purge_expired(engine.begin), "idempotency-key-purge")
    redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    wiring.on_stop(redis.aclose)
    signing_key = SigningKey.from_pem(settings.signing_key_pem())
    service = AuthService(settings, sessions, redis, signing_key)
    wiring.on_stop(service.passwords.close)

    async def own_keys() -> dict[str, str]:
        return {signing_key.kid: signing_key.public_pem}

    verifier = wiring.user_verifier(own_keys)
    await verifier.refresh_keys()

    await wiring.serve(
        auth_pb2,
        "AuthService",
        auth_pb2_grpc.add_AuthServiceServicer_to_server,
        AuthServicer(service, keys),
        verifier,
    )


def main() -> None:
    run_process("auth_service", AuthSettings, run)
