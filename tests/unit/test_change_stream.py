"""A change stream's frames: a client that falls behind gets `reset` and is closed, a
token's end closes it, repeats are dropped; its positions read back (real Redis for
the slots, no NATS needed without `Last-Event-ID`)."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest
from redis.asyncio import Redis

from common.tokens import Caller
from gateway.change_stream import (
    ChangeFeed,
    ChangeStreams,
    StreamClient,
    StreamSlots,
    decode_position,
    encode_position,
)


def notice(version: int) -> bytes:
    return orjson.dumps(
        {
            "event": "changed",
            "event_id": "e1",
            "version": version,
            "change_type": "updated",
            "actor_id": "u1",
            "occurred_at": "2026-01-01T00:00:00Z",
        }
    )


def caller(expires_in: float = 3600) -> Caller:
    return Caller(str(uuid.uuid4()), "alice", uuid.uuid4().hex, int(time.time() + expires_in), "")


@asynccontextmanager
async def streams_for(stack_env: dict[str, str], buffer: int = 3) -> AsyncIterator[ChangeStreams]:
    redis = Redis.from_url(stack_env["EVENTHUB_REDIS_URL"])
    prefix = f"{stack_env['EVENTHUB_NAMESPACE']}:unit-streams"
    try:
        yield ChangeStreams(
            ChangeFeed(stack_env["EVENTHUB_NATS_URL"], stack_env["EVENTHUB_NAMESPACE"]),
            StreamSlots(redis, prefix, per_user=5, lease=15),
            lambda jti: f"{prefix}:denylist:{jti}",
            buffer=buffer,
            ping_interval=10,
            upkeep_interval=2,
        )
        await asyncio.sleep(0.1)  # the slot releases that ended streams started
    finally:
        await redis.aclose()


async def frames_until_end(frames: AsyncIterator[bytes]) -> list[bytes]:
    return [frame async for frame in frames]


def test_a_client_that_falls_behind_gets_reset_and_is_closed(stack_env: dict[str, str]) -> None:
    async def scenario() -> list[bytes]:
        async with streams_for(stack_env, buffer=3) as streams:
            client = streams.new_client(caller())
            frames = streams.frames(client, None)
            for version in range(1, 5):  # one more than the buffer holds, none read
                client.offer(version, notice(version))
            return await asyncio.wait_for(frames_until_end(frames), 5)

    assert asyncio.run(scenario()) == [b"event: reset\ndata: {}\n\n"]


def test_frames_come_in_order_a_repeat_is_dropped_and_a_revocation_closes(
    stack_env: dict[str, str],
) -> None:
    async def scenario() -> list[bytes]:
        async with streams_for(stack_env) as streams:
            client = streams.new_client(caller())
            frames = streams.frames(client, None)
            client.offer(7, notice(1))
            client.offer(7, notice(1))
            client.offer(9, notice(2))
            got = [await anext(frames), await anext(frames)]
            client.close("token_revoked")
            return got + await asyncio.wait_for(frames_until_end(frames), 5)

    got = asyncio.run(scenario())
    assert [frame.split(b"\n")[0] for frame in got] == [
        b"id: " + encode_position(7).encode(),
        b"id: " + encode_position(9).encode(),
        b"event: closed",
    ]
    assert got[0].split(b"\n")[1] == b"event: changed"
    assert orjson.loads(got[1].split(b"\n")[2].removeprefix(b"data: "))["version"] == 2
    assert got[-1] == b'event: closed\ndata: {"reason":"token_revoked"}\n\n'


def test_the_stream_closes_when_the_token_expires(stack_env: dict[str, str]) -> None:
    async def scenario() -> tuple[list[bytes], float]:
        async with streams_for(stack_env) as streams:
            client = streams.new_client(caller(expires_in=1.5))
            started = time.monotonic()
            frames = await asyncio.wait_for(frames_until_end(streams.frames(client, None)), 5)
            return frames, time.monotonic() - started

    frames, took = asyncio.run(scenario())
    assert frames == [b'event: closed\ndata: {"reason":"token_expired"}\n\n']
    assert took < 3


def test_a_slot_frees_when_its_stream_ends(stack_env: dict[str, str]) -> None:
    async def scenario() -> list[float | None]:
        async with streams_for(stack_env) as streams:
            user = caller()
            clients = [StreamClient(user, 3) for _ in range(6)]
            taken = [await streams.slots.take(client) for client in clients]
            frames = streams.frames(clients[0], None)
            clients[0].close("")
            await frames_until_end(frames)
            for _ in range(50):  # the release runs beside the ended stream
                if await streams.slots.take(clients[5]) is None:
                    return [*taken, None]
                await asyncio.sleep(0.05)
            return [*taken, 0.0]

    *first_six, after_close = asyncio.run(scenario())
    assert first_six[:5] == [None] * 5
    assert first_six[5] is not None and first_six[5] >= 1
    assert after_close is None


@pytest.mark.parametrize("seq", [1, 77, 2**40])
def test_a_position_reads_back(seq: int) -> None:
    assert decode_position(encode_position(seq)) == seq


@pytest.mark.parametrize("text", ["", "garbage!", "AAAA", "%%%", "AAAAAAAAAAAAAAAA"])
def test_anything_else_is_no_position(text: str) -> None:
    assert decode_position(text) is None
