"""The change stream (`GET /api/events/stream`): Server-Sent Events fed from NATS.

The event service queues, in the transaction of every change, one notice per user who
may see it on that user's feed subject (`common.notifications.feed_subject`), and its
relay publishes them to the event stream in JetStream. Each gateway process follows
every feed with one ordered consumer (`ChangeFeed`) and hands each notice to the
streams its user has open here: no polling of PostgreSQL, and a change made through
any replica reaches every replica. An `id` is the notice's position in the JetStream
stream; `Last-Event-ID` replays the user's feed after it, read by subject from the
stream (7 days kept), before going live.

Per client, notices wait in a bounded buffer: one that falls that far behind gets
`event: reset` and is closed, so a slow reader costs neither memory nor other
clients' time. Open streams hold leases in Redis (`StreamSlots`), which caps them
per user across replicas; one upkeep loop per process renews the leases and closes
the streams whose token was revoked.
"""

import asyncio
import base64
import contextlib
import logging
import signal
import struct
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any

import nats.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.nats_client import connect, ensure_stream
from common.notifications import event_stream, event_stream_subjects, feed_subject
from common.tokens import Caller

log = logging.getLogger(__name__)

_RESET = b"event: reset\ndata: {}\n\n"
_PING = b": ping\n\n"
# How long Redis may be unreachable before open streams are ended (their tokens'
# revocation can no longer be checked): the deny-list fails closed.
_UNCHECKED_GRACE = 5.0


def encode_position(seq: int) -> str:
    return base64.urlsafe_b64encode(struct.pack(">Q", seq)).decode().rstrip("=")


def decode_position(text: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return struct.unpack(">Q", raw)[0] if len(raw) == 8 else None
    except ValueError:
        return None


def _frame(seq: int, notice: bytes) -> bytes:
    parsed = orjson.loads(notice)
    kind = parsed.pop("event")
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        encode_position(seq).encode(),
        kind.encode(),
        orjson.dumps(parsed),
    )


def _closed(reason: str) -> bytes:
    return b'event: closed\ndata: {"reason":"%s"}\n\n' % reason.encode()


class StreamClient:
    """One open stream: the notices waiting for it, and why it must end, if it must."""

    def __init__(self, caller: Caller, buffer: int) -> None:
        self.caller = caller
        self.slot = uuid.uuid4().hex
        self._buffer = buffer
        self._waiting: deque[tuple[int, bytes]] = deque()
        self._wake = asyncio.Event()
        self.overflowed = False
        self.closing: str | None = None  # "token_revoked", "token_expired", "" (silently)

    def offer(self, seq: int, notice: bytes) -> None:
        if self.overflowed:
            return
        if len(self._waiting) >= self._buffer:
            self.overflowed = True
            self._waiting.clear()
        else:
            self._waiting.append((seq, notice))
        self._wake.set()

    def close(self, reason: str) -> None:
        if self.closing is None:
            self.closing = reason
        self._wake.set()

    def next_waiting(self) -> tuple[int, bytes] | None:
        return self._waiting.popleft() if self._waiting else None

    async def wait(self, timeout: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)


class ChangeFeed:
    """This process's one subscription to every user's feed, handing notices to the
    streams open here."""

    def __init__(self, nats_url: str, namespace: str) -> None:
        self._nats_url = nats_url
        self._nats: Client | None = None
        self._namespace = namespace
        self._stream = event_stream(namespace)
        self._prefix_length = len(feed_subject(namespace, ""))
        self._clients: dict[str, set[StreamClient]] = {}
        self._last_seq = 0
        self._subscription: object | None = None

    def register(self, client: StreamClient) -> None:
        self._clients.setdefault(client.caller.user_id, set()).add(client)

    def unregister(self, client: StreamClient) -> None:
        held = self._clients.get(client.caller.user_id)
        if held is not None:
            held.discard(client)
            if not held:
                del self._clients[client.caller.user_id]

    def open_streams(self) -> list[StreamClient]:
        return [client for held in self._clients.values() for client in held]

    async def run(self) -> None:
        """Connect and follow, retrying until NATS answers; afterwards the connection
        reconnects by itself and the ordered consumer picks up after the last notice
        it delivered."""
        backoff = 0.2
        while self._subscription is None:
            try:
                if self._nats is None or self._nats.is_closed:
                    self._nats = await connect(self._nats_url, "gateway-change-feed")
                await self._follow(self._nats)
            except (nats.errors.Error, OSError, TimeoutError) as error:
                log.warning("change feed unavailable", extra={"error": repr(error)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def close(self) -> None:
        if self._nats is not None and not self._nats.is_closed:
            await self._nats.close()

    async def _follow(self, client: Client) -> None:
        await ensure_stream(client, self._stream, event_stream_subjects(self._namespace))
        self._subscription = await client.jetstream().subscribe(
            feed_subject(self._namespace, "*"),
            stream=self._stream,
            cb=self._received,
            ordered_consumer=True,
            idle_heartbeat=2.0,
            deliver_policy=DeliverPolicy.NEW,
        )

    async def _received(self, message: Msg) -> None:
        seq = message.metadata.sequence.stream
        if seq <= self._last_seq:  # an ordered consumer that restarted repeats some
            return
        self._last_seq = seq
        for client in self._clients.get(message.subject[self._prefix_length :], ()):
            client.offer(seq, message.data)

    async def replay(self, user_id: str, after: int, most: int) -> list[tuple[int, bytes]] | None:
        """The user's notices after position `after`, or None if `after` is not a
        position of theirs that the stream still holds, or more than `most` follow."""
        subject = feed_subject(self._namespace, user_id)
        if self._nats is None or not self._nats.is_connected:
            return None
        jsm = self._nats.jsm()
        try:
            first = await jsm.get_msg(self._stream, seq=after)
        except NotFoundError:
            return None
        if first.subject != subject:
            return None
        found: list[tuple[int, bytes]] = []
        while len(found) <= most:
            try:
                message = await jsm.get_msg(self._stream, seq=after + 1, subject=subject, next=True)
            except NotFoundError:
                return found
            assert message.seq is not None and message.data is not None
            found.append((message.seq, message.data))
            after = message.seq
        return None


_TAKE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {0, first[2]}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil((ARGV[2] - ARGV[1]) * 1000))
return {1, ARGV[2]}
"""


class StreamSlots:
    """At most `per_user` open streams per user across replicas: a sorted set per user
    of the streams' leases (slot id → expiry), renewed while a stream is open and
    removed when it closes; a replica that dies leaves leases that lapse."""

    def __init__(self, redis: Redis, key_prefix: str, per_user: int, lease: float) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._per_user = per_user
        self.lease = lease
        self._take = redis.register_script(_TAKE_SLOT)

    def _key(self, user_id: str) -> str:
        return f"{self._prefix}:{user_id}"

    async def take(self, client: StreamClient) -> float | None:
        """Take a slot for the client: None if taken, else seconds until one frees."""
        now = time.time()
        taken, first_expiry = await self._take(
            keys=[self._key(client.caller.user_id)],
            args=[now, now + self.lease, self._per_user, client.slot],
        )
        return None if taken == 1 else max(1.0, float(first_expiry) - now)

    async def release(self, client: StreamClient) -> None:
        with contextlib.suppress(RedisError):
            await self._redis.zrem(self._key(client.caller.user_id), client.slot)

    async def renew(self, clients: list[StreamClient], denylist_keys: list[str]) -> list[bool]:
        """Renew the clients' leases and say, for each deny-list key, whether it is set."""
        expiry = time.time() + self.lease
        async with self._redis.pipeline(transaction=False) as pipe:
            for client in clients:
                pipe.zadd(self._key(client.caller.user_id), {client.slot: expiry}, xx=True)
            for key in denylist_keys:
                pipe.exists(key)
            results = await pipe.execute()
        return [bool(found) for found in results[len(clients) :]]


class ChangeStreams:
    """Everything the stream route needs, one per gateway process."""

    def __init__(
        self,
        feed: ChangeFeed,
        slots: StreamSlots,
        denylist_key: Callable[[str], str],
        *,
        buffer: int,
        ping_interval: float,
        upkeep_interval: float,
    ) -> None:
        self.feed = feed
        self.slots = slots
        self._denylist_key = denylist_key
        self._buffer = buffer
        self._ping_interval = ping_interval
        self._upkeep_interval = upkeep_interval
        self._last_checked = time.monotonic()
        self._releases: set[asyncio.Task[None]] = set()

    def new_client(self, caller: Caller) -> StreamClient:
        return StreamClient(caller, self._buffer)

    async def frames(self, client: StreamClient, last_event_id: str | None) -> AsyncIterator[bytes]:
        """The stream's bytes: a replay after `last_event_id` (or `reset`), then
        notices as they come, pings between, and `closed` at the end of the token."""
        self.feed.register(client)
        try:
            sent = 0
            if last_event_id is not None:
                backlog = await self._backlog(client, last_event_id)
                if backlog is None:
                    yield _RESET
                for seq, notice in backlog or ():
                    sent = seq
                    yield _frame(seq, notice)
            last_write = time.monotonic()
            while True:
                if client.overflowed:
                    yield _RESET
                    return
                if client.closing is not None:
                    if client.closing:
                        yield _closed(client.closing)
                    return
                waiting = client.next_waiting()
                if waiting is not None:
                    seq, notice = waiting
                    if seq > sent:
                        sent = seq
                        last_write = time.monotonic()
                        yield _frame(seq, notice)
                    continue
                now = time.monotonic()
                until_expiry = client.caller.expires_at - time.time()
                if until_expiry <= 0:
                    client.close("token_expired")
                    continue
                if now - last_write >= self._ping_interval:
                    last_write = now
                    yield _PING
                    continue
                await client.wait(min(self._ping_interval - (now - last_write), until_expiry))
        finally:
            self.feed.unregister(client)
            release = asyncio.create_task(self.slots.release(client))
            self._releases.add(release)
            release.add_done_callback(self._releases.discard)

    async def _backlog(
        self, client: StreamClient, last_event_id: str
    ) -> list[tuple[int, bytes]] | None:
        after = decode_position(last_event_id.strip())
        if after is None:
            return None
        try:
            return await self.feed.replay(client.caller.user_id, after, self._buffer)
        except (nats.errors.Error, TimeoutError) as error:
            log.warning("change stream replay failed", extra={"error": repr(error)})
            return None

    def end_on_exit_signal(self) -> None:
        """End every open stream when the server is told to stop (SIGTERM, SIGINT), so
        that it stops at once instead of waiting its grace period for streams that
        never finish; clients reconnect to another replica with `Last-Event-ID`.
        Chained before the server's own handlers, which ASGI gives no hook into."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)

            def handler(number: int, frame: FrameType | None, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self._end_all)
                if callable(previous):
                    previous(number, frame)

            signal.signal(signum, handler)

    def _end_all(self) -> None:
        for client in self.feed.open_streams():
            client.close("")

    async def upkeep(self) -> None:
        """Forever: renew the open streams' leases and close those whose token was
        revoked (within `upkeep_interval`); end them all if Redis stays unreachable."""
        while True:
            await asyncio.sleep(self._upkeep_interval)
            clients = self.feed.open_streams()
            if not clients:
                self._last_checked = time.monotonic()
                continue
            keys = [self._denylist_key(client.caller.jti) for client in clients]
            try:
                revoked = await self.slots.renew(clients, keys)
            except RedisError as error:
                log.warning("change stream upkeep failed", extra={"error": repr(error)})
                if time.monotonic() - self._last_checked > _UNCHECKED_GRACE:
                    for client in clients:
                        client.close("")
                continue
            self._last_checked = time.monotonic()
            for client, is_revoked in zip(clients, revoked, strict=True):
                if is_revoked:
                    client.close("token_revoked")
