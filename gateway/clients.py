"""The gateway's connections: gRPC stubs of the four services, Redis, and the token verifier."""

import asyncio
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from common.grpc_client import open_channel, public_key_fetcher
from common.tokens import TokenVerifier
from eventhub.auth.v1.auth_pb2_grpc import AuthServiceStub
from eventhub.events.v1.events_pb2_grpc import EventServiceStub
from eventhub.history.v1.history_pb2_grpc import HistoryServiceStub
from eventhub.sharing.v1.sharing_pb2_grpc import SharingServiceStub
from gateway.cached_reads import CachedEvents
from gateway.change_stream import ChangeFeed, ChangeStreams, StreamSlots
from gateway.config import GatewaySettings
from gateway.ratelimit import IPNetwork, Limit, RateLimiter, parse_limit, parse_networks


@dataclass
class Gateway:
    """Everything a request handler may need, created once in the app's lifespan."""

    settings: GatewaySettings
    channels: dict[str, grpc.aio.Channel]
    auth: AuthServiceStub
    events: EventServiceStub
    sharing: SharingServiceStub
    history: HistoryServiceStub
    redis: Redis
    verifier: TokenVerifier
    limiter: RateLimiter
    login_limit: Limit
    login_user_limit: Limit
    refresh_limit: Limit
    user_limit: Limit
    feed_limit: Limit
    trusted_proxies: list[IPNetwork]
    cached_events: CachedEvents
    streams: ChangeStreams
    background: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def connect(cls, settings: GatewaySettings) -> "Gateway":
        deadline = settings.grpc_deadline
        channels = {
            "auth": open_channel(settings.auth_addr, deadline),
            "events": open_channel(settings.events_addr, deadline),
            "sharing": open_channel(settings.sharing_addr, deadline),
            "history": open_channel(settings.history_addr, deadline),
        }
        # One immediate retry (a pooled connection the server closed), then the error:
        # the default backoff would hold every request for seconds while Redis is down,
        # instead of failing over at once (see README "Rate limits and Redis outages").
        redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=1,
            socket_connect_timeout=1,
            retry=Retry(NoBackoff(), retries=1),
        )
        return cls(
            settings=settings,
            channels=channels,
            auth=AuthServiceStub(channels["auth"]),
            events=EventServiceStub(channels["events"]),
            sharing=SharingServiceStub(channels["sharing"]),
            history=HistoryServiceStub(channels["history"]),
            redis=redis,
            verifier=TokenVerifier(
                settings.jwt_issuer, settings.jwt_audience, public_key_fetcher(channels["auth"])
            ),
            limiter=RateLimiter(redis, key_prefix=settings.redis_key("ratelimit")),
            login_limit=parse_limit(settings.rate_limit_login),
            login_user_limit=parse_limit(settings.rate_limit_login_user),
            refresh_limit=parse_limit(settings.rate_limit_refresh),
            user_limit=parse_limit(settings.rate_limit_user),
            feed_limit=parse_limit(settings.rate_limit_feed),
            trusted_proxies=parse_networks(settings.trusted_proxies),
            cached_events=CachedEvents(redis, settings.namespace, settings.event_cache_ttl),
            streams=ChangeStreams(
                ChangeFeed(settings.nats_url, settings.namespace),
                StreamSlots(
                    redis,
                    settings.redis_key("streams"),
                    settings.streams_per_user,
                    settings.stream_slot_lease,
                ),
                lambda jti: settings.redis_key("denylist", jti),
                buffer=settings.stream_buffer,
                ping_interval=settings.stream_ping_interval,
                upkeep_interval=settings.stream_upkeep_interval,
            ),
        )

    def start(self) -> None:
        """Start following the change feed and the open streams' upkeep."""
        self.background = [
            asyncio.create_task(self.streams.feed.run(), name="change-feed"),
            asyncio.create_task(self.streams.upkeep(), name="change-stream-upkeep"),
        ]

    async def readiness(self) -> dict[str, bool]:
        """Whether each dependency answers right now."""

        async def service_ok(channel: grpc.aio.Channel) -> bool:
            try:
                response = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            except grpc.aio.AioRpcError:
                return False
            return response.status == health_pb2.HealthCheckResponse.SERVING

        async def redis_ok() -> bool:
            try:
                return bool(await self.redis.ping())
            except Exception:
                return False

        names = [*self.channels, "redis"]
        results = await asyncio.gather(
            *(service_ok(channel) for channel in self.channels.values()), redis_ok()
        )
        return dict(zip(names, results, strict=True))

    async def close(self) -> None:
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.streams.feed.close()
        for channel in self.channels.values():
            await channel.close()
        await self.redis.aclose()
