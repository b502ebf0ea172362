"""The GCRA rate limiter: the Lua script on the real local Redis and the in-process
fallback give the same answers; the fallback's clock is injected, Redis's is real."""

import asyncio
import os
import secrets
import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.ratelimit import (
    Admission,
    Decision,
    HashRead,
    Limit,
    LocalLimiter,
    RateLimiter,
    parse_limit,
)
from scripts.stack import free_port

REDIS_URL = os.environ.get("EVENTHUB_REDIS_URL", "redis://127.0.0.1:6379/0")
MINUTE = Limit(5, 60)  # emission interval 12 s
INTERVAL = 12.0


class FakeClock:
    """Microseconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1_000_000)


class RedisLimiter:
    """`RateLimiter` on the real Redis under a random key prefix, driven synchronously;
    its keys are deleted afterwards."""

    def __init__(self, url: str = REDIS_URL, **redis_options: object) -> None:
        self.loop = asyncio.new_event_loop()
        self.redis = Redis.from_url(url, **redis_options)
        self.prefix = "test_gcra_" + secrets.token_hex(6)
        self.limiter = RateLimiter(self.redis, key_prefix=self.prefix)

    def run(self, coroutine):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coroutine)

    def hit(self, limit: Limit, key: str = "k") -> Decision:
        return self.run(self.limiter.hit(limit, "budget", key))

    def close(self) -> None:
        async def clean() -> None:
            keys = [key async for key in self.redis.scan_iter(match=f"{self.prefix}:*")]
            if keys:
                await self.redis.delete(*keys)
            await self.redis.aclose()

        try:
            self.run(clean())
        finally:
            self.loop.close()


def fallbacks() -> float:
    return REGISTRY.get_sample_value("eventhub_ratelimit_fallback_total") or 0.0


@pytest.fixture
def on_redis() -> Iterator[RedisLimiter]:
    limiter = RedisLimiter()
    before = fallbacks()
    try:
        yield limiter
    finally:
        limiter.close()
    assert fallbacks() == before, "Redis was not used: the limiter fell back to memory"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["redis", "local"])
def hit(request: pytest.FixtureRequest, clock: FakeClock) -> Callable[..., Decision]:
    """`hit(limit, key="k")` on either implementation; time stands still for the local one
    and passes by microseconds between calls on Redis."""
    if request.param == "redis":
        return request.getfixturevalue("on_redis").hit
    local = LocalLimiter(clock)
    # Keyed like RateLimiter.key: the limit is part of the budget's key.
    return lambda limit, key="k": local.hit(f"budget:{key}:{limit.label}", limit)


def test_a_burst_of_the_limit_is_allowed_counting_down_to_zero(hit) -> None:
    decisions = [hit(MINUTE) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True] * 5
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    assert all(d.limit == 5 for d in decisions)

    refused = hit(MINUTE)
    assert not refused.allowed
    assert refused.remaining == 0
    assert 0 < refused.reset_after <= INTERVAL
    headers = refused.headers()
    assert headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(headers["Retry-After"]) <= INTERVAL
    assert headers["RateLimit-Reset"] == headers["Retry-After"]


def test_reset_after_is_the_time_until_one_request_is_freed(hit) -> None:
    first = hit(MINUTE)
    # A fresh budget gets its first request back one emission interval later.
    assert INTERVAL - 0.5 < first.reset_after <= INTERVAL
    assert first.headers()["RateLimit-Reset"] == "12"
    assert "Retry-After" not in first.headers()


def test_budgets_are_separate_per_key_and_per_limit(hit) -> None:
    for _ in range(5):
        hit(MINUTE, "alice")
    assert not hit(MINUTE, "alice").allowed
    assert hit(MINUTE, "bob").remaining == 4
    assert hit(Limit(10, 60), "alice").remaining == 9


def test_one_emission_interval_frees_exactly_one_request(clock: FakeClock) -> None:
    limiter = LocalLimiter(clock)
    for _ in range(5):
        limiter.hit("k", MINUTE)
    clock.advance(INTERVAL - 0.000_001)
    almost = limiter.hit("k", MINUTE)
    assert not almost.allowed
    assert almost.reset_after == pytest.approx(0.000_001)

    clock.advance(0.000_001)
    freed = limiter.hit("k", MINUTE)
    assert freed.allowed and freed.remaining == 0
    assert freed.reset_after == pytest.approx(INTERVAL)
    assert not limiter.hit("k", MINUTE).allowed


def test_refused_requests_do_not_use_the_budget(clock: FakeClock) -> None:
    limiter = LocalLimiter(clock)
    for _ in range(5):
        limiter.hit("k", MINUTE)
    for _ in range(100):
        assert not limiter.hit("k", MINUTE).allowed
    clock.advance(INTERVAL)
    assert limiter.hit("k", MINUTE).allowed


def test_the_budget_refills_at_the_limit_rate_up_to_one_burst(clock: FakeClock) -> None:
    limiter = LocalLimiter(clock)
    for _ in range(5):
        limiter.hit("k", MINUTE)
    clock.advance(2.5 * INTERVAL)
    partly = limiter.hit("k", MINUTE)
    # Two requests freed, one of them used now; the third is half an interval away.
    assert partly.allowed and partly.remaining == 1
    assert partly.reset_after == pytest.approx(INTERVAL / 2)

    clock.advance(3600)
    assert limiter.hit("k", MINUTE).remaining == 4  # never more than one burst


def test_forgetting_idle_budgets_keeps_active_ones(clock: FakeClock) -> None:
    limiter = LocalLimiter(clock)
    for _ in range(5):
        limiter.hit("busy", MINUTE)
    for n in range(5000):  # enough new budgets to sweep idle ones several times
        limiter.hit(f"other{n}", Limit(1, 0.001))
        clock.advance(0.001)
    assert not limiter.hit("busy", MINUTE).allowed


def test_redis_frees_one_request_after_an_emission_interval(on_redis: RedisLimiter) -> None:
    fast = Limit(2, 0.2)  # one request per 100 ms
    assert [on_redis.hit(fast).allowed for _ in range(2)] == [True, True]
    refused = on_redis.hit(fast)
    assert not refused.allowed and 0 < refused.reset_after <= 0.1

    # Polling while refused must not push recovery back (refusals use no budget).
    deadline = time.monotonic() + 5
    while not (freed := on_redis.hit(fast)).allowed:
        assert time.monotonic() < deadline, "no request was freed"
        time.sleep(0.005)
    assert freed.remaining == 0
    assert not on_redis.hit(fast).allowed


def test_redis_keys_expire_once_the_budget_is_unused(on_redis: RedisLimiter) -> None:
    on_redis.hit(MINUTE)
    key = on_redis.limiter.key(MINUTE, "budget", "k")
    ttl_ms = on_redis.run(on_redis.redis.pttl(key))
    assert 0 < ttl_ms <= INTERVAL * 1000


def test_a_denied_token_is_refused_without_using_the_budget(on_redis: RedisLimiter) -> None:
    denied = f"{on_redis.prefix}:denylist:jti"
    on_redis.run(on_redis.redis.set(denied, b"1"))
    limiter = on_redis.limiter
    assert on_redis.run(limiter.hit_unless_revoked(denied, MINUTE, "user", "u")) is None
    decision = on_redis.run(limiter.hit_unless_revoked(f"{denied}-other", MINUTE, "user", "u"))
    assert decision is not None and decision.allowed and decision.remaining == 4


def test_an_admission_reads_a_hash_only_when_the_request_is_allowed(
    on_redis: RedisLimiter,
) -> None:
    limiter, denied = on_redis.limiter, f"{on_redis.prefix}:denylist:jti"
    cached = f"{on_redis.prefix}:cached"
    on_redis.run(on_redis.redis.hset(cached, mapping={"a": b"1", "b": b"2"}))
    read = HashRead(cached, ("a", "missing", "b"))

    def admit(denylist_key: str, limit: Limit) -> Admission:
        return on_redis.run(
            limiter.hit_unless_revoked_reading(denylist_key, limit, "user", "r", read=read)
        )

    allowed = admit(f"{denied}-other", Limit(1, 60))
    assert allowed.decision is not None and allowed.decision.allowed
    assert allowed.values == [b"1", None, b"2"]
    refused = admit(f"{denied}-other", Limit(1, 60))
    assert refused.decision is not None and not refused.decision.allowed
    assert refused.values is None
    on_redis.run(on_redis.redis.set(denied, b"1"))
    assert admit(denied, MINUTE) == Admission(None, None)


def test_without_redis_limits_fail_open_onto_memory_and_the_deny_list_fails_closed() -> None:
    dead = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", retry=Retry(NoBackoff(), 0))
    try:
        before = fallbacks()
        decisions = [dead.hit(Limit(2, 60)) for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False]
        assert fallbacks() == before + 3
        with pytest.raises(RedisError):
            dead.run(dead.limiter.hit_unless_revoked("denylist:jti", MINUTE, "user", "u"))
    finally:
        dead.loop.close()


@pytest.mark.parametrize(
    ("text", "amount", "period"),
    [
        ("20/minute", 20, 60),
        ("600 per minute", 600, 60),
        ("100/5 minutes", 100, 300),
        ("3/second", 3, 1),
        ("1000/Hour", 1000, 3600),
        ("7/day", 7, 86_400),
    ],
)
def test_limits_in_limits_notation(text: str, amount: int, period: int) -> None:
    assert parse_limit(text) == Limit(amount, period)


@pytest.mark.parametrize("text", ["", "20", "minute", "20/fortnight", "0/minute", "-1/second"])
def test_malformed_limits_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_limit(text)


def test_the_emission_interval_is_whole_microseconds() -> None:
    assert Limit(600, 60).interval_us == 100_000
    assert Limit(7, 60).interval_us == 8_571_429  # rounded up: never above the limit
    assert Limit(10**9, 60).interval_us == 1
