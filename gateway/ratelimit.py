"""Rate limits shared by every gateway replica through Redis, with the GCRA.

The generic cell rate algorithm keeps one number per budget: its theoretical
arrival time (TAT), the instant the budget would be fully used if requests kept
arriving at the limit's rate. A request is allowed while it arrives no earlier
than `TAT + emission interval - period`, i.e. while it fits in a burst of
`amount` requests; each allowed request moves the TAT on by one emission
interval (`period / amount`). That is O(1) in time and memory per budget, and a
single Lua script both reads and moves the TAT, so each check is one round trip.

The script also runs the token deny-list check for authenticated requests (one
round trip for both; a cached read by id adds its cache read to the same trip), and
reads the clock with Redis `TIME`, so gateway replicas with skewed clocks still agree.
(Its keys need one Redis, not a Redis Cluster, where they could live in different
slots.)

If Redis cannot be reached, limits fail open onto the same algorithm in process
memory (per replica), so an outage of the store neither stops traffic nor removes
limits altogether; `eventhub_ratelimit_fallback_total` counts it. The deny-list
instead fails closed: `hit_unless_revoked` lets the Redis error through.
"""

import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import Scope

log = logging.getLogger(__name__)

FALLBACKS = Counter(
    "eventhub_ratelimit_fallback_total",
    "Rate-limit checks answered in-process because Redis was unreachable",
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MICROS = 1_000_000
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400, "month": 30 * 86_400}
_UNITS["year"] = 12 * _UNITS["month"]
_LIMIT = re.compile(r"\s*(\d+)\s*(?:/|per)\s*(\d*)\s*([a-z]+?)s?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Limit:
    """`amount` requests per `period` seconds, with bursts of up to `amount`."""

    amount: int
    period: float

    def __post_init__(self) -> None:
        if self.amount < 1 or self.period <= 0:
            raise ValueError(f"a rate limit needs amount >= 1 and period > 0, not {self}")

    @cached_property
    def interval_us(self) -> int:
        """The emission interval in whole microseconds (rounded up, never below 1), so
        the Lua and the Python maths stay exact integers."""
        return max(1, math.ceil(self.period * MICROS / self.amount))

    @cached_property
    def label(self) -> str:
        """`600/60s`: the limit as part of a budget's key."""
        return f"{self.amount}/{self.period:g}s"


def parse_limit(text: str) -> Limit:
    """`20/minute`, `20 per minute` or `100/5 minutes`; units from second to year
    (a month is 30 days)."""
    match = _LIMIT.fullmatch(text)
    unit = match and _UNITS.get(match.group(3).lower())
    if not match or not unit:
        raise ValueError(f"not a rate limit: {text!r} (e.g. 20/minute)")
    return Limit(int(match.group(1)), int(match.group(2) or 1) * unit)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until the budget frees one more request.
    reset_after: float

    def headers(self) -> dict[str, str]:
        reset = math.ceil(self.reset_after)
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(reset, 1))
        return headers


@dataclass(frozen=True, slots=True)
class HashRead:
    key: str
    fields: Sequence[str]


@dataclass(frozen=True, slots=True)
class Admission:
    # None: the token is revoked.
    decision: Decision | None
    # The values of `HashRead.fields` if one was asked for and the request allowed.
    values: list[bytes | None] | None


def gcra(tat: int | None, now: int, limit: Limit) -> tuple[Decision, int | None]:
    """One request at `now` against a budget whose TAT is `tat` (µs; None if unused).

    Returns the decision and the new TAT (None when refused: a refused request
    does not use the budget). `_SCRIPT` below is the same maths in Lua.
    """
    interval = limit.interval_us
    new_tat = (now if tat is None else max(tat, now)) + interval
    # Budget left after this request, in µs: negative means it does not fit.
    free = now + interval * limit.amount - new_tat
    if free < 0:
        return Decision(False, limit.amount, 0, -free / MICROS), None
    reset_after = (interval - free % interval) / MICROS
    return Decision(True, limit.amount, free // interval, reset_after), new_tat


# KEYS[1]: the budget's TAT; KEYS[2] (optional): a deny-list key that, if present,
# refuses the request without using the budget; KEYS[3] (optional): a hash to read
# fields ARGV[3..] of when the request is allowed. ARGV: emission interval µs, amount.
# Returns {status, remaining, µs until a request is freed[, the fields' values]};
# status 1 allowed, 0 refused, -1 revoked.
_SCRIPT = """
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  return {-1, 0, 0}
end
local interval = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local free = now + interval * amount - new_tat
if free < 0 then
  return {0, 0, -free}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat),
           'PX', math.ceil((new_tat - now) / 1000))
local allowed = {1, math.floor(free / interval), interval - free % interval}
if KEYS[3] then
  allowed[4] = redis.call('HMGET', KEYS[3], unpack(ARGV, 3))
end
return allowed
"""
_REVOKED = -1


class LocalLimiter:
    """The GCRA in this process's memory: the fallback when Redis is unreachable."""

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        # Microseconds on any steady clock; injectable so tests need not sleep.
        self._clock = clock or (lambda: time.monotonic_ns() // 1000)
        self._tats: dict[str, int] = {}
        self._sweep_at = 1024

    def hit(self, key: str, limit: Limit) -> Decision:
        now = self._clock()
        decision, new_tat = gcra(self._tats.get(key), now, limit)
        if new_tat is not None:
            self._tats[key] = new_tat
            self._forget_idle(now)
        return decision

    def _forget_idle(self, now: int) -> None:
        """Drop budgets whose TAT has passed (they are as good as unused), amortised
        so that memory stays bounded by the budgets active in the last period."""
        if len(self._tats) < self._sweep_at:
            return
        self._tats = {key: tat for key, tat in self._tats.items() if tat > now}
        self._sweep_at = max(1024, 2 * len(self._tats))


class RateLimiter:
    def __init__(self, redis: Redis, key_prefix: str, local: LocalLimiter | None = None) -> None:
        self._script = redis.register_script(_SCRIPT)
        self._prefix = key_prefix
        self._local = local or LocalLimiter()

    def key(self, limit: Limit, *parts: str) -> str:
        # The limit is part of the key: replicas configured with different limits
        # keep separate budgets rather than reading each other's TATs.
        return ":".join((self._prefix, *parts, limit.label))

    async def hit(self, limit: Limit, *key: str) -> Decision:
        """Count one request against the budget `key`; fails open onto process memory."""
        budget = self.key(limit, *key)
        try:
            status, remaining, reset_us = await self._script(
                keys=(budget,), args=(limit.interval_us, limit.amount)
            )
        except RedisError as error:
            FALLBACKS.inc()
            log.warning("rate limiter fell back to local memory", extra={"error": repr(error)})
            return self._local.hit(budget, limit)
        return Decision(status == 1, limit.amount, remaining, reset_us / MICROS)

    async def hit_unless_revoked(
        self, denylist_key: str, limit: Limit, *key: str
    ) -> Decision | None:
        """`hit`, or None without counting if `denylist_key` exists, in one round trip.

        A RedisError propagates: the deny-list fails closed, so there is no fallback.
        """
        return (await self.hit_unless_revoked_reading(denylist_key, limit, *key)).decision

    async def hit_unless_revoked_reading(
        self, denylist_key: str, limit: Limit, *key: str, read: HashRead | None = None
    ) -> Admission:
        """`hit_unless_revoked` that also reads `read`'s hash fields if the request is
        allowed, in the same round trip (a cached read needs no second one)."""
        keys, args = [self.key(limit, *key), denylist_key], [limit.interval_us, limit.amount]
        if read is not None:
            keys.append(read.key)
            args.extend(read.fields)
        status, remaining, reset_us, *values = await self._script(keys=keys, args=args)
        if status == _REVOKED:
            return Admission(None, None)
        decision = Decision(status == 1, limit.amount, remaining, reset_us / MICROS)
        return Admission(decision, values[0] if values else None)


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


def client_network(address: str) -> str:
    """What a per-address budget is kept for: the address itself for IPv4, its /64 for
    IPv6 (one subscriber usually holds a whole /64, so single addresses cost nothing
    to rotate through)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _is_trusted(address: str, trusted_proxies: list[IPNetwork]) -> bool:
    if not trusted_proxies:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted_proxies)
