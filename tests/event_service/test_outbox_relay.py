"""The outbox relay on a table and a stream of its own: every queued message reaches
JetStream once and is marked sent, whether the writer handed it over after its commit
or the sweep found it in the table; publishing a row again (a crash between
publishing and marking) is dropped by JetStream by its Nats-Msg-Id. Its metrics
count what it published and measure what waits. A message queued by a traced request
carries its trace context in its headers."""

import asyncio
import time

import nats
import pytest
from nats.js.api import StreamConfig
from prometheus_client import REGISTRY
from sqlalchemy import MetaData, text

from common.db import make_driver_pool, make_engine, pipelined_transaction
from common.outbox import OutboxRelay, enqueue_many, outbox_table

TRACED = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


@pytest.fixture
def relay_env(stack_env: dict[str, str]) -> dict[str, str]:
    namespace = stack_env["EVENTHUB_NAMESPACE"]
    return {
        "database_url": stack_env["EVENTHUB_DATABASE_URL"],
        "nats_url": stack_env["EVENTHUB_NATS_URL"],
        "schema": f"relay_{namespace}",
        "stream": f"{namespace.upper()}_RELAY_TEST",
        "subject": f"{namespace}.relaytest",
    }


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def _relay_round_trip(env: dict[str, str]) -> None:
    engine = make_engine(env["database_url"], 2)
    writes = make_driver_pool(env["database_url"], 2, timeout=5)
    await writes.open()
    table = outbox_table(MetaData(schema=env["schema"]))
    client = await nats.connect(env["nats_url"])
    js = client.jetstream()
    relay = OutboxRelay(
        table,
        writes,
        env["nats_url"],
        env["stream"],
        [f"{env['subject']}.*"],
        batch_size=2,
        poll_interval=0.05,
        sweep_after=30,
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{env["schema"]}"'))
            await conn.run_sync(table.metadata.create_all)
        await js.add_stream(StreamConfig(name=env["stream"], subjects=[f"{env['subject']}.*"]))
        # Odd ones were queued by a traced request: their trace context travels on.
        messages = [
            (f"{env['subject']}.{n}", f"m{n}", b'{"n": %d}' % n, TRACED if n % 2 else None)
            for n in range(5)
        ]
        outbox = f'"{env["schema"]}".outbox'
        left_over = f"UPDATE {outbox} SET created_at = created_at - interval '1 minute'"
        # Rows a process left unsent (it died after its commit): the sweep finds them.
        async with pipelined_transaction(writes) as conn:
            await enqueue_many(conn, table, messages[:3])
            await conn.execute(left_over)
        await relay.measure_backlog()
        assert metric("eventhub_outbox_pending_messages") == 3
        assert 60 <= metric("eventhub_outbox_oldest_pending_age_seconds") < 120
        published_before = metric("eventhub_outbox_published_total")

        async def all_sent() -> None:
            unsent = f"SELECT count(*) FROM {outbox} WHERE sent_at IS NULL"
            deadline = time.monotonic() + 10
            while True:
                async with engine.connect() as conn:
                    if (await conn.execute(text(unsent))).scalar() == 0:
                        return
                assert time.monotonic() < deadline, "the relay did not send every row"
                await asyncio.sleep(0.05)

        relay.start()
        await all_sent()
        # Rows whose writer hands them over once committed: published from memory (the
        # sweep would not take them for another 30 s).
        async with pipelined_transaction(writes) as conn:
            await enqueue_many(conn, table, messages[3:])
        relay.committed(messages[3:])
        await all_sent()
        # Sent again, as after a crash between publishing and marking: dropped by JetStream.
        async with engine.begin() as conn:
            await conn.execute(text(f"UPDATE {outbox} SET sent_at = NULL"))
            await conn.execute(text(left_over))
        await all_sent()
        await relay.measure_backlog()
        assert metric("eventhub_outbox_pending_messages") == 0
        assert metric("eventhub_outbox_oldest_pending_age_seconds") == 0
        # The repeats too: JetStream acknowledges them (and drops them).
        assert metric("eventhub_outbox_published_total") - published_before == 10

        info = await js.stream_info(env["stream"])
        assert info.state.messages == 5
        subscription = await js.subscribe(f"{env['subject']}.*", ordered_consumer=True)
        received = [await subscription.next_msg(timeout=5) for _ in range(5)]
        assert [
            (m.subject, m.headers["Nats-Msg-Id"], m.data, _trace_context(m.headers))
            for m in received
        ] == messages
    finally:
        await relay.close()
        try:
            await js.delete_stream(env["stream"])
        except nats.js.errors.NotFoundError:
            pass
        await client.close()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{env["schema"]}" CASCADE'))
        await writes.close()
        await engine.dispose()


def _trace_context(headers: dict[str, str]) -> dict[str, str] | None:
    return {"traceparent": headers["traceparent"]} if "traceparent" in headers else None


def test_the_relay_publishes_every_row_once_in_batches(relay_env: dict[str, str]) -> None:
    asyncio.run(_relay_round_trip(relay_env))
