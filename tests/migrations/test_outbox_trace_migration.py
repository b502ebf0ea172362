"""Outbox rows queued before trace contexts were stored stay publishable (with none);
rows queued afterwards keep theirs; going back drops the column and keeps the rows."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from alembic.config import Config

import event_service
from common.db import migrate, migrations_dir_of
from common.outbox import insert_sql, message_params
from event_service.models import outbox
from scripts.stack import isolated_deployment

EVENTS = migrations_dir_of(event_service.__file__)
TRACED = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


@pytest.fixture
def database_url(tmp_path) -> Iterator[str]:
    with isolated_deployment(tmp_path) as env:
        url = env["EVENTHUB_DATABASE_URL"]
        migrate(EVENTS, url, "0008")
        yield url


def test_outbox_rows_keep_their_trace_context(database_url: str) -> None:
    plain = database_url.replace("+psycopg", "")
    with psycopg.connect(plain) as conn:
        conn.execute(
            "INSERT INTO events.outbox (subject, msg_id, payload) VALUES ('s.old', 'old', '{}')"
        )

    migrate(EVENTS, database_url, "head")

    with psycopg.connect(plain) as conn:
        messages = [("s.new", "traced", b"{}", TRACED), ("s.new", "untraced", b"{}", None)]
        conn.execute(insert_sql(outbox), message_params(messages))
        rows = conn.execute(
            "SELECT msg_id, trace_context FROM events.outbox WHERE sent_at IS NULL ORDER BY id"
        ).fetchall()
    assert rows == [("old", None), ("traced", TRACED), ("untraced", None)]

    migrate_down(database_url, "0008")
    with psycopg.connect(plain) as conn:
        kept = conn.execute("SELECT msg_id FROM events.outbox ORDER BY id").fetchall()
    assert kept == [("old",), ("traced",), ("untraced",)]


def migrate_down(database_url: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(EVENTS))
    config.attributes["database_url"] = database_url
    command.downgrade(config, revision)
