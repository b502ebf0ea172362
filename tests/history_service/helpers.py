"""Publishing change notifications and reading the history store, for service-level tests."""

import asyncio
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import orjson
import psycopg

from common.nats_client import ensure_stream
from common.notifications import event_stream, event_stream_subjects, event_subject
from common.timeutil import rfc3339
from scripts.stack import Stack, wait_until

EDITABLE = (
    "title",
    "description",
    "location",
    "start_time",
    "end_time",
    "timezone",
    "is_recurring",
    "recurrence_rule",
)


def nats_url(stack: Stack) -> str:
    return stack.env.get("EVENTHUB_NATS_URL", "nats://127.0.0.1:4222")


def database_url(stack: Stack) -> str:
    return stack.env["EVENTHUB_DATABASE_URL"].replace("+psycopg", "")


def snapshot(event_id: str, version: int, owner_id: str, **fields: Any) -> dict[str, Any]:
    start = datetime(2031, 1, 6, 9, tzinfo=UTC)
    return {
        "id": event_id,
        "title": f"title v{version}",
        "description": "",
        "location": "",
        "start_time": rfc3339(start),
        "end_time": rfc3339(start + timedelta(hours=1)),
        "timezone": "UTC",
        "is_recurring": False,
        "recurrence_rule": None,
        "owner_id": owner_id,
        "version": version,
        "created_at": "2030-12-01T10:00:00Z",
        "updated_at": f"2030-12-01T10:00:{version % 60:02d}Z",
        **fields,
    }


def change(
    event_id: str,
    version: int,
    owner_id: str = "",
    change_type: str = "updated",
    previous: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An EventChange payload as the event service publishes it."""
    owner_id = owner_id or str(uuid.uuid4())
    after = snapshot(event_id, version, owner_id, **fields)
    before = previous or {}
    changes = {
        field: {"old": before.get(field), "new": after[field]}
        for field in EDITABLE
        if before.get(field) != after[field]
    }
    return {
        "event_id": event_id,
        "version": version,
        "change_type": change_type if version > 1 else "created",
        "actor_id": owner_id,
        "occurred_at": after["updated_at"],
        "snapshot": after,
        "changes": changes,
    }


def history_of(event_id: str, versions: int, owner_id: str = "") -> list[dict[str, Any]]:
    """Versions 1..`versions` of one event, each changing the title."""
    owner_id = owner_id or str(uuid.uuid4())
    payloads: list[dict[str, Any]] = []
    for version in range(1, versions + 1):
        previous = payloads[-1]["snapshot"] if payloads else None
        payloads.append(change(event_id, version, owner_id, previous=previous))
    return payloads


def publish(
    stack: Stack, messages: Iterable[tuple[str, bytes, str]], *, namespace: str = ""
) -> None:
    """Publish (event_id, payload, Nats-Msg-Id) triples to the deployment's event stream."""
    namespace = namespace or stack.env["EVENTHUB_NAMESPACE"]

    async def send() -> None:
        client = await nats.connect(nats_url(stack))
        try:
            await ensure_stream(client, event_stream(namespace), event_stream_subjects(namespace))
            js = client.jetstream()
            acks = [
                js.publish(
                    event_subject(namespace, event_id), payload, headers={"Nats-Msg-Id": msg_id}
                )
                for event_id, payload, msg_id in messages
            ]
            await asyncio.gather(*acks)
        finally:
            await client.close()

    asyncio.run(send())


def publish_changes(stack: Stack, payloads: Iterable[dict[str, Any]], **kwargs: Any) -> None:
    publish(
        stack,
        [(p["event_id"], orjson.dumps(p), f"{p['event_id']}:{p['version']}") for p in payloads],
        **kwargs,
    )


def stored_versions(stack: Stack, event_id: str) -> list[tuple]:
    """(version, change_type, changed_by, snapshot, changes) of an event, oldest first."""
    with psycopg.connect(database_url(stack)) as conn:
        return conn.execute(
            "SELECT version, change_type, changed_by, snapshot, changes"
            " FROM history.event_versions WHERE event_id = %s ORDER BY version",
            (event_id,),
        ).fetchall()


def wait_for_versions(stack: Stack, event_id: str, count: int, timeout: float = 15) -> list[tuple]:
    wait_until(
        lambda: len(stored_versions(stack, event_id)) >= count,
        timeout,
        f"{count} stored versions of {event_id}",
    )
    return stored_versions(stack, event_id)


def consumer_idle(stack: Stack, namespace: str = "") -> bool:
    """Whether the history consumer has processed (acked or terminated) every message."""
    namespace = namespace or stack.env["EVENTHUB_NAMESPACE"]

    async def info() -> bool:
        client = await nats.connect(nats_url(stack))
        try:
            state = await client.jetstream().consumer_info(
                event_stream(namespace), f"{namespace}_history"
            )
            return state.num_pending == 0 and state.num_ack_pending == 0
        finally:
            await client.close()

    return asyncio.run(info())
