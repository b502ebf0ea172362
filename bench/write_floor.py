"""The floor of a write: the least any write must do in this design, and nothing else.

`/floor-write` of `bench/ceiling_app.py` makes the gateway's one admission call to
Redis and one gRPC call to the bare write service below. The service groups the
writes that arrive while a transaction runs into the next one (as EventHub's creates
are grouped): one statement stores the rows and their outbox rows, one Redis round
trip stores the new versions, and each notification is published to JetStream by the
service itself (no relay transaction). A bare consumer pulls the notifications in
batches and stores each batch in one statement before acking. Processes, hops and
round trips are those of an EventHub write; everything else is left out: no JWT
check, no validation, no conflict check, no access rows, no audit feed, no protobuf.
EventHub's writes cannot be cheaper than this while the design keeps its hops.

`python -m bench.write_floor serve PORT` and `python -m bench.write_floor consume`,
both configured by EVENTHUB_DATABASE_URL, EVENTHUB_REDIS_URL and EVENTHUB_NATS_URL;
`python -m bench.write_floor remove` drops the schema and the stream afterwards.
"""

import asyncio
import contextlib
import os
import sys

import grpc
import nats
import orjson
import psycopg
import uvloop
from nats.js.api import StreamConfig
from redis.asyncio import Redis

from common.db import make_driver_pool, pipelined_transaction

METHOD = "/floor.Write/Write"
SCHEMA = "write_floor"
STREAM = "write-floor"
SUBJECT = "write-floor.changes"
_GROUP = 500  # the most writes in one transaction
_CONSUMER_BATCH = 256

_SETUP = f"""
DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.item (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slot int NOT NULL, version int NOT NULL, body jsonb NOT NULL);
CREATE TABLE {SCHEMA}.outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    msg_id text NOT NULL, payload bytea NOT NULL, sent_at timestamptz);
CREATE TABLE {SCHEMA}.version (item bigint, version int, body jsonb NOT NULL,
    PRIMARY KEY (item, version));
"""

# `slot`: the write's place in its group, to hand each caller its own row back.
_WRITE = f"""
WITH written AS (
    INSERT INTO {SCHEMA}.item (slot, version, body)
    SELECT slot, 1, body FROM json_to_recordset(%s::json) AS w(slot int, body jsonb)
    RETURNING id, slot, version, body
), queued AS (
    INSERT INTO {SCHEMA}.outbox (msg_id, payload)
    SELECT id || ':' || version, convert_to(json_build_object(
        'id', id, 'version', version, 'body', body)::text, 'UTF8') FROM written
)
SELECT slot, id, version, body::text FROM written
"""

_STORE = f"""
INSERT INTO {SCHEMA}.version (item, version, body)
SELECT item, version, body FROM json_to_recordset(%s::json) AS v(item int, version int, body jsonb)
ON CONFLICT DO NOTHING
"""


def _urls() -> tuple[str, str, str]:
    database = os.environ["EVENTHUB_DATABASE_URL"].replace("+psycopg", "")
    return database, os.environ["EVENTHUB_REDIS_URL"], os.environ["EVENTHUB_NATS_URL"]


class _GroupWriter:
    """Writes the requests that arrive while a group is being written in the next
    group: one transaction, one Redis round trip and concurrent publishes per group."""

    def __init__(self, pool, redis: Redis, js) -> None:  # type: ignore[no-untyped-def]
        self._pool = pool
        self._redis = redis
        self._js = js
        self._waiting: list[tuple[bytes, asyncio.Future[bytes]]] = []
        self._writing = False

    async def write(self, body: bytes) -> bytes:
        answer = asyncio.get_running_loop().create_future()
        self._waiting.append((body, answer))
        if not self._writing:
            self._writing = True
            asyncio.create_task(self._write_groups())
        return await answer

    async def _write_groups(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[:_GROUP], self._waiting[_GROUP:]
            try:
                entries = await self._write_group([body for body, _ in group])
            except Exception as error:  # every caller of the group gets the error
                for _, answer in group:
                    answer.set_exception(error)
                continue
            for (_, answer), entry in zip(group, entries, strict=True):
                answer.set_result(entry)
        self._writing = False

    async def _write_group(self, bodies: list[bytes]) -> list[bytes]:
        rows = [{"slot": i, "body": orjson.Fragment(body)} for i, body in enumerate(bodies)]
        async with pipelined_transaction(self._pool) as conn:
            cursor = await conn.execute(_WRITE, (orjson.dumps(rows).decode(),))
            written = sorted(await cursor.fetchall())
        entries = [
            (
                item,
                version,
                orjson.dumps({"id": item, "version": version, "body": orjson.Fragment(body)}),
            )
            for _, item, version, body in written
        ]
        async with self._redis.pipeline(transaction=False) as pipe:
            for item, _, entry in entries:
                pipe.set(f"{SCHEMA}:{item}", entry, ex=300)
            await pipe.execute()
        await asyncio.gather(
            *(
                self._js.publish(SUBJECT, entry, headers={"Nats-Msg-Id": f"{item}:{version}"})
                for item, version, entry in entries
            )
        )
        return [entry for _, _, entry in entries]


async def _serve(port: int) -> None:
    database, redis_url, nats_url = _urls()
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(_SETUP)
    pool = make_driver_pool(database, 10, timeout=5)
    await pool.open()
    client = await nats.connect(nats_url)
    js = client.jetstream()
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(STREAM)
    await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT]))
    writer = _GroupWriter(pool, Redis.from_url(redis_url), js)

    async def write(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await writer.write(request)

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(write)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("floor.Write", {"Write": handler}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def _consume() -> None:
    database, _, nats_url = _urls()
    pool = make_driver_pool(database, 2, timeout=5)
    await pool.open()
    client = await nats.connect(nats_url)
    js = client.jetstream()
    while True:
        try:
            subscription = await js.pull_subscribe(SUBJECT, durable="floor")
            break
        except nats.js.errors.NotFoundError:  # the stream is not there yet
            await asyncio.sleep(0.1)
    while True:
        try:
            messages = await subscription.fetch(_CONSUMER_BATCH, timeout=1)
        except TimeoutError:
            continue
        rows = [orjson.loads(msg.data) for msg in messages]
        versions = [{"item": r["id"], "version": r["version"], "body": r["body"]} for r in rows]
        async with pipelined_transaction(pool) as conn:
            await conn.execute(_STORE, (orjson.dumps(versions).decode(),))
        for msg in messages:
            await msg.ack()


async def _remove() -> None:
    database, _, nats_url = _urls()
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    client = await nats.connect(nats_url)
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await client.jetstream().delete_stream(STREAM)
    await client.close()


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        uvloop.run(_serve(int(sys.argv[2])))
    elif sys.argv[1:2] == ["consume"]:
        uvloop.run(_consume())
    elif sys.argv[1:2] == ["remove"]:
        uvloop.run(_remove())
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
