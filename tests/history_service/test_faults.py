"""The history consumer under faults: a replica killed mid-stream, NATS going away."""

import asyncio
import signal
import uuid
from collections.abc import Callable, Iterator

import grpc
import httpx
import nats
import nats.js.errors
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.notifications import event_stream
from eventhub.history.v1 import history_pb2
from eventhub.history.v1.history_pb2_grpc import HistoryServiceStub
from scripts.stack import Stack, free_port, wait_until
from tests.conftest import User
from tests.history_service.helpers import (
    consumer_idle,
    database_url,
    history_of,
    nats_url,
    publish_changes,
)
from tests.proxy import FlakyProxy, via


def serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return response.status == health_pb2.HealthCheckResponse.SERVING


def stored_count(stack: Stack, event_ids: list[str]) -> int:
    with psycopg.connect(database_url(stack)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM history.event_versions WHERE event_id = ANY(%s::uuid[])",
            (event_ids,),
        ).fetchone()
    return row[0] if row else 0


def stored_snapshots(stack: Stack, event_ids: list[str]) -> dict[tuple[str, int], dict]:
    with psycopg.connect(database_url(stack)) as conn:
        rows = conn.execute(
            "SELECT event_id::text, version, snapshot FROM history.event_versions"
            " WHERE event_id = ANY(%s::uuid[])",
            (event_ids,),
        ).fetchall()
    return {(event_id, version): snapshot for event_id, version, snapshot in rows}


def test_sigkill_mid_stream_loses_nothing_and_doubles_nothing(stack: Stack) -> None:
    event_ids = [str(uuid.uuid4()) for _ in range(20)]
    payloads = [p for event_id in event_ids for p in history_of(event_id, 60)]
    first_half, second_half = payloads[::2], payloads[1::2]

    publish_changes(stack, first_half)
    try:
        wait_until(lambda: stored_count(stack, event_ids) > 0, 15, "the first stored versions")
        stack.stop("history_service", signal.SIGKILL)
        publish_changes(stack, second_half)
        publish_changes(stack, first_half[:50])  # redelivered duplicates, by another msg id
    finally:
        if "history_service" not in stack.procs:
            stack.start("history_service")
    wait_until(lambda: serving(stack.env["EVENTHUB_HISTORY_ADDR"]), 30, "history to serve")

    wait_until(lambda: stored_count(stack, event_ids) >= len(payloads), 30, "every version")
    wait_until(lambda: consumer_idle(stack), 15, "the consumer to ack every message")
    stored = stored_snapshots(stack, event_ids)
    assert stored == {(p["event_id"], p["version"]): p["snapshot"] for p in payloads}


@pytest.fixture
def proxy_to() -> Iterator[Callable[[str], FlakyProxy]]:
    """Starts a FlakyProxy to the host and port of a URL."""
    started: list[FlakyProxy] = []

    def start(url: str) -> FlakyProxy:
        started.append(FlakyProxy.to(url))
        return started[-1]

    yield start
    for proxy in started:
        proxy.close()


def start_isolated_replica(stack: Stack, namespace: str, tag: str, **env: str) -> None:
    """A history replica of its own namespace, so that no other replica consumes its stream."""
    stack.start(
        "history_service",
        {
            "EVENTHUB_NAMESPACE": namespace,
            "EVENTHUB_HISTORY_ADDR": f"127.0.0.1:{free_port()}",
            "EVENTHUB_HISTORY_CONSUMER_RETRY_DELAY": "0.2",
            **env,
        },
        tag=tag,
    )


def redeliveries(stack: Stack, namespace: str) -> int:
    async def info() -> int:
        client = await nats.connect(nats_url(stack))
        try:
            state = await client.jetstream().consumer_info(
                event_stream(namespace), f"{namespace}_history"
            )
            return state.num_redelivered
        except nats.js.errors.NotFoundError:  # the replica has not subscribed yet
            return 0
        finally:
            await client.close()

    return asyncio.run(info())


def test_consumer_rides_out_a_nats_outage(
    stack: Stack, proxy_to: Callable[[str], FlakyProxy]
) -> None:
    """Messages published while the replica cannot reach NATS are stored once it can."""
    proxy = proxy_to(nats_url(stack))
    namespace = stack.env["EVENTHUB_NAMESPACE"] + "_nats_outage"
    start_isolated_replica(
        stack, namespace, "_behind_nats_proxy", EVENTHUB_NATS_URL=via(nats_url(stack), proxy)
    )
    replica = stack.procs["history_service_behind_nats_proxy"]
    try:
        before, during = str(uuid.uuid4()), str(uuid.uuid4())
        publish_changes(stack, history_of(before, 3), namespace=namespace)
        wait_until(lambda: stored_count(stack, [before]) == 3, 20, "versions before the outage")

        proxy.set_down(True)
        publish_changes(stack, history_of(during, 3), namespace=namespace)
        wait_until(lambda: proxy.refused >= 3, 20, "the replica to try to reconnect")
        assert replica.poll() is None
        assert stored_count(stack, [during]) == 0

        proxy.set_down(False)
        wait_until(lambda: stored_count(stack, [during]) == 3, 30, "versions after the outage")
        wait_until(lambda: consumer_idle(stack, namespace), 15, "the replica to ack everything")
        assert replica.poll() is None
    finally:
        stack.stop("history_service_behind_nats_proxy")


def test_messages_are_retried_while_the_database_is_down(
    stack: Stack, proxy_to: Callable[[str], FlakyProxy]
) -> None:
    """A passing database failure naks the message (redelivered later), never drops it."""
    database = stack.env["EVENTHUB_DATABASE_URL"]
    proxy = proxy_to(database)
    namespace = stack.env["EVENTHUB_NAMESPACE"] + "_db_outage"
    start_isolated_replica(
        stack, namespace, "_behind_db_proxy", EVENTHUB_DATABASE_URL=via(database, proxy)
    )
    replica = stack.procs["history_service_behind_db_proxy"]
    try:
        event_id = str(uuid.uuid4())
        proxy.set_down(True)
        publish_changes(stack, history_of(event_id, 2), namespace=namespace)
        wait_until(lambda: redeliveries(stack, namespace) >= 1, 20, "a redelivery after a nak")
        assert stored_count(stack, [event_id]) == 0
        assert replica.poll() is None

        proxy.set_down(False)
        wait_until(lambda: stored_count(stack, [event_id]) == 2, 30, "versions after the outage")
        wait_until(lambda: consumer_idle(stack, namespace), 15, "the replica to ack everything")
    finally:
        stack.stop("history_service_behind_db_proxy")


def test_a_read_history_cannot_catch_up_with_is_unavailable_then_recovers(
    stack: Stack, api: httpx.Client, make_user: Callable[..., User]
) -> None:
    """While no replica consumes (the stack's is paused with SIGSTOP), a read waits its
    bound and answers UNAVAILABLE, which a gateway turns into 503 with Retry-After; once
    the replica consumes again, the same read includes the write."""
    owner = make_user()
    headers = owner.headers
    window = {"start_time": "2032-01-05T09:00:00Z", "end_time": "2032-01-05T10:00:00Z"}
    created = api.post("/api/events", json={"title": "Before", **window}, headers=headers)
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]
    stalled_addr = f"127.0.0.1:{free_port()}"
    stalled_gateway_port = free_port()

    consuming_replica = stack.procs["history_service"]
    consuming_replica.send_signal(signal.SIGSTOP)
    try:
        changed = api.patch(f"/api/events/{event_id}", json={"title": "After"}, headers=headers)
        assert changed.status_code == 200, changed.text
        stack.start(
            "history_service",
            {
                "EVENTHUB_HISTORY_ADDR": stalled_addr,
                "EVENTHUB_NATS_URL": f"nats://127.0.0.1:{free_port()}",
                "EVENTHUB_HISTORY_READ_YOUR_WRITES_TIMEOUT": "0.3",
            },
            tag="_without_nats",
        )
        stack.start(
            "gateway",
            {
                "EVENTHUB_HISTORY_ADDR": stalled_addr,
                "EVENTHUB_GATEWAY_PORT": str(stalled_gateway_port),
            },
            tag="_to_stalled_history",
        )
        wait_until(lambda: serving(stalled_addr), 30, "the replica without NATS to serve")
        with grpc.insecure_channel(stalled_addr) as channel:
            with pytest.raises(grpc.RpcError) as raised:
                HistoryServiceStub(channel).GetChangelog(
                    history_pb2.GetChangelogRequest(event_id=event_id),
                    metadata=[("authorization", f"Bearer {owner.access_token}")],
                    timeout=5,
                )
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "catching up" in (raised.value.details() or "")

        stalled_gateway = f"http://127.0.0.1:{stalled_gateway_port}"
        wait_until(lambda: _answers(stalled_gateway), 30, "the second gateway to listen")
        stalled = httpx.get(f"{stalled_gateway}/api/events/{event_id}/changelog", headers=headers)
        assert stalled.status_code == 503 and int(stalled.headers["retry-after"]) >= 1
    finally:
        consuming_replica.send_signal(signal.SIGCONT)
        for key in ("gateway_to_stalled_history", "history_service_without_nats"):
            if key in stack.procs:
                stack.stop(key)

    recovered = api.get(f"/api/events/{event_id}/changelog", headers=headers)

    assert recovered.status_code == 200, recovered.text
    assert recovered.json()["items"][-1]["changes"] == {"title": {"old": "Before", "new": "After"}}


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
