"""Access rows that exist before the sync's change positions get one when the schema
moves (a sync from any token issued afterwards starts after them)."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

import event_service
from common.db import migrate, migrations_dir_of
from scripts.stack import isolated_deployment

EVENTS = migrations_dir_of(event_service.__file__)
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture
def database_url(tmp_path) -> Iterator[str]:
    with isolated_deployment(tmp_path) as env:
        url = env["EVENTHUB_DATABASE_URL"]
        migrate(EVENTS, url, "0005")
        yield url


def test_existing_access_rows_get_a_change_position(database_url: str) -> None:
    event_id, owner = uuid.uuid4(), uuid.uuid4()
    plain = database_url.replace("+psycopg", "")
    with psycopg.connect(plain) as conn:
        conn.execute(
            "INSERT INTO events.events (id, owner_id, title, description, location,"
            " start_time, end_time, timezone, is_recurring, recurrence_rule, span, footprint,"
            " version, created_at, updated_at, access_version) VALUES (%s, %s, 'old', '', '',"
            " %s, %s, 'UTC', false, NULL, tstzrange(%s, %s), '{[0,30)}', 1, %s, %s, 1)",
            (event_id, owner, NOW, NOW, NOW, NOW, NOW, NOW),
        )
        conn.execute(
            "INSERT INTO events.event_access VALUES (%s, %s, 'owner', 'olduser', %s, %s, %s)",
            (event_id, owner, owner, NOW, NOW),
        )
    migrate(EVENTS, database_url, "head")
    with psycopg.connect(plain) as conn:
        moved_in, now = conn.execute(
            "SELECT changed_in::text::bigint, pg_current_xact_id()::text::bigint"
            " FROM events.event_access WHERE event_id = %s",
            (event_id,),
        ).fetchone()
        assert 0 < moved_in < now
        assert conn.execute("SELECT count(*) FROM events.access_lost").fetchone() == (0,)
