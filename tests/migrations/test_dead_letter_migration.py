"""Dead letters recorded before they named their version get it from their message id."""

import uuid
from collections.abc import Iterator

import psycopg
import pytest

import history_service
from common.db import migrate, migrations_dir_of
from scripts.stack import isolated_deployment

HISTORY = migrations_dir_of(history_service.__file__)


@pytest.fixture
def database_url(tmp_path) -> Iterator[str]:
    """A database of its own, at the history schema before dead letters named versions."""
    with isolated_deployment(tmp_path) as env:
        url = env["EVENTHUB_DATABASE_URL"]
        migrate(HISTORY, url, "0001")
        yield url


def test_old_dead_letters_name_their_version(database_url: str) -> None:
    plain = database_url.replace("+psycopg", "")
    event_id = uuid.uuid4()
    ids = [f"{event_id}:7", f"{event_id}:bad-json", "no id at all", None]
    with psycopg.connect(plain) as conn:
        for sequence, msg_id in enumerate(ids, start=1):
            conn.execute(
                "INSERT INTO history.dead_letters (stream_sequence, subject, msg_id, payload,"
                " error) VALUES (%s, 'events.updated', %s, '\\x00', 'broken')",
                (sequence, msg_id),
            )

    migrate(HISTORY, database_url, "head")

    with psycopg.connect(plain) as conn:
        rows = conn.execute(
            "SELECT event_id, version FROM history.dead_letters ORDER BY stream_sequence"
        ).fetchall()
    assert rows == [(event_id, 7), (None, None), (None, None), (None, None)]
