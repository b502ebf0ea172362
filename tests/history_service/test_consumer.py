"""The history consumer, fed by hand-made notifications on the deployment's event stream:
every version stored once, whatever is duplicated, redelivered or malformed."""

import asyncio
import subprocess
import sys
import uuid

import orjson
import psycopg
from sqlalchemy import make_url

from history_service import repo
from scripts.stack import REPO, Stack, wait_until
from tests.history_service.helpers import (
    change,
    consumer_idle,
    database_url,
    history_of,
    publish,
    publish_changes,
    stored_versions,
    wait_for_versions,
)


def test_each_change_is_stored_as_a_version_with_every_field(stack: Stack) -> None:
    event_id = str(uuid.uuid4())
    payloads = history_of(event_id, 2)
    publish_changes(stack, payloads)

    rows = wait_for_versions(stack, event_id, 2)

    for (version, change_type, changed_by, snapshot, changes), sent in zip(
        rows, payloads, strict=True
    ):
        assert version == sent["version"]
        assert change_type == sent["change_type"]
        assert changed_by == sent["actor_id"]
        assert snapshot == sent["snapshot"]
        assert changes == sent["changes"]
    assert [row[1] for row in rows] == ["created", "updated"]
    with psycopg.connect(database_url(stack)) as conn:
        changed_at = conn.execute(
            "SELECT to_char(changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            " FROM history.event_versions WHERE event_id = %s AND version = 2",
            (event_id,),
        ).fetchone()[0]
    assert changed_at == payloads[1]["occurred_at"]


def test_duplicates_and_out_of_order_messages_are_stored_once(stack: Stack) -> None:
    event_id = str(uuid.uuid4())
    first, second, third = history_of(event_id, 3)
    impostor = {**second, "snapshot": {**second["snapshot"], "title": "a second copy"}}
    publish(
        stack,
        [
            (event_id, orjson.dumps(third), f"{event_id}:3"),
            (event_id, orjson.dumps(first), f"{event_id}:1"),
            (event_id, orjson.dumps(first), f"{event_id}:1"),  # same Nats-Msg-Id
            (event_id, orjson.dumps(second), f"{event_id}:2"),
        ],
    )
    wait_for_versions(stack, event_id, 3)
    # The same (event_id, version) under another message id reaches the consumer.
    publish(stack, [(event_id, orjson.dumps(impostor), f"{event_id}:2:again")])
    wait_until(lambda: consumer_idle(stack), 15, "the consumer to process every message")

    rows = stored_versions(stack, event_id)
    assert [row[0] for row in rows] == [1, 2, 3]
    assert rows[1][3] == second["snapshot"]


def test_a_message_that_can_never_be_stored_is_dead_lettered_and_terminated(
    stack: Stack,
) -> None:
    event_id = str(uuid.uuid4())
    valid = change(event_id, 1)
    no_snapshot = {k: v for k, v in change(event_id, 2).items() if k != "snapshot"}
    nul_in_text = change(event_id, 3, title="nul \u0000 byte")  # PostgreSQL JSONB refuses it
    publish(
        stack,
        [
            (event_id, b"{not json", f"{event_id}:bad-json"),
            (event_id, orjson.dumps(no_snapshot), f"{event_id}:2"),
            (event_id, orjson.dumps(nul_in_text), f"{event_id}:3"),
            (event_id, orjson.dumps(valid), f"{event_id}:1"),
        ],
    )

    wait_for_versions(stack, event_id, 1)
    wait_until(lambda: consumer_idle(stack), 15, "the consumer to settle every message")
    with psycopg.connect(database_url(stack)) as conn:
        letters = conn.execute(
            "SELECT msg_id, error, payload FROM history.dead_letters"
            " WHERE msg_id LIKE %s ORDER BY stream_sequence",
            (f"{event_id}:%",),
        ).fetchall()
    assert [letter[0] for letter in letters] == [
        f"{event_id}:bad-json",
        f"{event_id}:2",
        f"{event_id}:3",
    ]
    assert "JSON" in letters[0][1]
    assert "snapshot" in letters[1][1]
    assert "refused by the database" in letters[2][1]
    assert bytes(letters[0][2]) == b"{not json"
    assert [row[0] for row in stored_versions(stack, event_id)] == [1]
    # Versions 2 and 3 are gaps, not versions to wait for: history reads of the event
    # answer with what is stored instead of 503 "catching up" for good.
    url = stack.env["EVENTHUB_DATABASE_URL"]
    assert asyncio.run(reads_find_settled(url, event_id, 3))
    assert not asyncio.run(reads_find_settled(url, event_id, 4))


async def reads_find_settled(url: str, event_id: str, through: int) -> bool:
    """Whether the history's reads find versions 1..`through` of the event settled."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        return await repo.page_if_settled(conn, uuid.UUID(event_id), through, 0, 1) is not None


def test_rebuild_restores_lost_versions_from_the_stream(stack: Stack) -> None:
    event_id = str(uuid.uuid4())
    payloads = history_of(event_id, 3)
    publish_changes(stack, payloads)
    expected = wait_for_versions(stack, event_id, 3)
    with psycopg.connect(database_url(stack)) as conn:
        conn.execute(
            "DELETE FROM history.event_versions WHERE event_id = %s AND version >= 2", (event_id,)
        )

    for _ in range(2):  # a second run finds nothing to add
        rebuilt = subprocess.run(
            [sys.executable, "-m", "history_service", "rebuild"],
            env=stack.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert stored_versions(stack, event_id) == expected
    assert " 0 new versions" in rebuilt.stdout
