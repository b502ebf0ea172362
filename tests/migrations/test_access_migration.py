"""Access lists move from the sharing service's schema to the event service's: grants
made before the move keep working, numbered on from where they were."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

import event_service
import sharing_service
from common.db import migrate, migrations_dir_of
from scripts.stack import isolated_deployment

EVENTS = migrations_dir_of(event_service.__file__)
SHARING = migrations_dir_of(sharing_service.__file__)
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


@pytest.fixture
def database_url(tmp_path) -> Iterator[str]:
    """A database of its own, at the schema of the release before the move."""
    with isolated_deployment(tmp_path) as env:
        url = env["EVENTHUB_DATABASE_URL"]
        migrate(EVENTS, url, "0001")
        migrate(SHARING, url, "0001")
        yield url


def old_event(conn: psycopg.Connection, owner: uuid.UUID, created_at: datetime) -> uuid.UUID:
    event_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO events.events (id, owner_id, title, description, location, start_time,"
        " end_time, timezone, is_recurring, recurrence_rule, span, footprint, version,"
        " created_at, updated_at) VALUES (%s, %s, 'old', '', '', %s, %s, 'UTC', false, NULL,"
        " tstzrange(%s, %s), '{[0,30)}', 1, %s, %s)",
        (event_id, owner, NOW, NOW, NOW, NOW, created_at, created_at),
    )
    return event_id


def old_grant(conn, event_id, user, role, username, owner, sequence) -> None:  # type: ignore[no-untyped-def]
    conn.execute(
        "INSERT INTO sharing.grants VALUES (%s, %s, %s, %s, %s, %s)",
        (event_id, user, username, role, owner, NOW),
    )
    conn.execute(
        "INSERT INTO sharing.event_acls VALUES (%s, %s, %s)"
        " ON CONFLICT (event_id) DO UPDATE SET last_sequence = excluded.last_sequence",
        (event_id, sequence, NOW),
    )


def test_grants_move_to_the_event_service_with_their_numbering(database_url: str) -> None:
    plain = database_url.replace("+psycopg", "")
    owner, friend = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(plain) as conn:
        first = old_event(conn, owner, NOW)
        second = old_event(conn, owner, datetime(2026, 11, 30, 13, tzinfo=UTC))
        old_grant(conn, first, owner, "owner", "olga", owner, 1)
        old_grant(conn, second, owner, "owner", "olga", owner, 1)
        old_grant(conn, second, friend, "viewer", "fred", owner, 2)
        # A revoke after the viewer grant: the numbering went on to 4.
        conn.execute(
            "UPDATE sharing.event_acls SET last_sequence = 4 WHERE event_id = %s", (second,)
        )

    with pytest.raises(RuntimeError, match="migrate the event service first"):
        migrate(SHARING, database_url)
    migrate(EVENTS, database_url)
    migrate(SHARING, database_url)

    with psycopg.connect(plain) as conn:
        access = conn.execute(
            "SELECT event_id, user_id, role, username, event_created_at FROM events.event_access"
            " ORDER BY event_created_at, role"
        ).fetchall()
        versions = dict(conn.execute("SELECT id, access_version FROM events.events").fetchall())
        leftovers = conn.execute(
            "SELECT to_regclass('sharing.grants'), to_regclass('sharing.event_acls'),"
            " to_regclass('sharing.outbox'), to_regclass('sharing.permission_changes')"
        ).fetchone()
    assert access == [
        (first, owner, "owner", "olga", NOW),
        (second, owner, "owner", "olga", datetime(2026, 11, 30, 13, tzinfo=UTC)),
        (second, friend, "viewer", "fred", datetime(2026, 11, 30, 13, tzinfo=UTC)),
    ]
    assert versions == {first: 1, second: 4}
    assert leftovers[:3] == (None, None, None)
    assert leftovers[3] == "sharing.permission_changes"


def test_a_fresh_database_migrates_without_old_grants(database_url: str) -> None:
    migrate(EVENTS, database_url)
    migrate(SHARING, database_url)
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT count(*) FROM events.event_access").fetchone() == (0,)
