"""Rate limits shared by every gateway replica through Redis (moving window).

If Redis cannot be reached the limiter fails open onto an in-process moving
window per replica, so an outage of the limiter's store neither stops traffic
nor removes limits altogether; `eventhub_ratelimit_fallback_total` counts it.
"""

import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import Counter
from starlette.types import Scope

log = logging.getLogger(__name__)

FALLBACKS = Counter(
    "eventhub_ratelimit_fallback_total",
    "Rate-limit checks answered in-process because Redis was unreachable",
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(self.reset_after, 1))
        return headers


class RateLimiter:
    def __init__(self, redis_url: str, key_prefix: str) -> None:
        self._shared = MovingWindowRateLimiter(
            RedisStorage(redis_url, implementation="redispy", key_prefix=key_prefix)
        )
        self._local = MovingWindowRateLimiter(MemoryStorage())

    async def hit(self, limit: RateLimitItem, *key: str) -> Decision:
        try:
            return await self._hit(self._shared, limit, key)
        except Exception as error:
            FALLBACKS.inc()
            log.warning("rate limiter fell back to local memory", extra={"error": repr(error)})
            return await self._hit(self._local, limit, key)

    @staticmethod
    async def _hit(
        limiter: MovingWindowRateLimiter, limit: RateLimitItem, key: tuple[str, ...]
    ) -> Decision:
        allowed = await limiter.hit(limit, *key)
        stats = await limiter.get_window_stats(limit, *key)
        reset_after = max(0, math.ceil(stats.reset_time - time.time()))
        remaining = stats.remaining if allowed else 0
        return Decision(allowed, limit.amount, remaining, reset_after)


def parse_limit(text: str) -> RateLimitItem:
    return parse(text)


def parse_networks(entries: list[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


def client_ip(scope: Scope, trusted_proxies: list[IPNetwork]) -> str:
    """The client address; X-Forwarded-For is believed only from a trusted proxy."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    if not _is_trusted(peer, trusted_proxies):
        return peer
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            hops = [hop.strip() for hop in value.decode("latin-1").split(",") if hop.strip()]
            # From the nearest hop backwards, the first untrusted address is the client.
            for hop in reversed(hops):
                if not _is_trusted(hop, trusted_proxies):
                    return hop
            return hops[0] if hops else peer
    return peer


def _is_trusted(address: str, trusted_proxies: list[IPNetwork]) -> bool:
    if not trusted_proxies:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted_proxies)
