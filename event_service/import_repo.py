"""SQL of iCalendar imports: the caller's events that a file's UIDs name, and the
UIDs remembered for the next import of the same file."""

import uuid
from collections.abc import Sequence

import orjson
import psycopg

from event_service.models import SCHEMA, StoredEvent
from event_service.repo import role_or_none
from event_service.write_repo import EVENT_FIELDS, LockedEvent

# Each UID's candidates, locked: the live event of the owner whose id it is, and the
# one an earlier import of it became.
_LOCK_NAMED = f"""
    SELECT given.uid, {EVENT_FIELDS}, false,
           (SELECT role FROM {SCHEMA}.event_access
            WHERE event_id = e.id AND user_id = %(owner)s),
           ARRAY(SELECT user_id FROM {SCHEMA}.event_access WHERE event_id = e.id)
    FROM json_to_recordset(%(uids)s::json) AS given(uid text, as_id uuid)
    LEFT JOIN {SCHEMA}.imported_uids AS imported
      ON imported.user_id = %(owner)s AND imported.uid = given.uid
    JOIN {SCHEMA}.events AS e ON e.id IN (given.as_id, imported.event_id)
    WHERE e.owner_id = %(owner)s AND e.deleted_at IS NULL
    ORDER BY e.id = given.as_id DESC
    FOR UPDATE OF e
"""

_REMEMBER = f"""
    INSERT INTO {SCHEMA}.imported_uids (user_id, uid, event_id)
    SELECT %(owner)s, uid, event_id
    FROM json_to_recordset(%(rows)s::json) AS given(uid text, event_id uuid)
    ON CONFLICT (user_id, uid) DO UPDATE SET event_id = EXCLUDED.event_id
"""


async def lock_named_events(
    conn: psycopg.AsyncConnection, owner: uuid.UUID, uids: Sequence[str]
) -> dict[str, LockedEvent]:
    """For each UID that names one, the owner's live event it names, locked: the event
    whose id it is, else the one it became when imported before."""
    rows = [{"uid": uid, "as_id": _as_id(uid)} for uid in uids]
    cursor = await conn.execute(_LOCK_NAMED, {"owner": owner, "uids": _json(rows)})
    named: dict[str, LockedEvent] = {}
    for uid, *row in await cursor.fetchall():
        if uid not in named:  # the event whose id it is comes first
            named[uid] = LockedEvent(StoredEvent(*row[:-2]), role_or_none(row[-2]), row[-1])
    return named


async def remember_uids(
    conn: psycopg.AsyncConnection, owner: uuid.UUID, events: Sequence[tuple[str, uuid.UUID]]
) -> None:
    """Which event each (UID, event id) of an import became."""
    rows = [{"uid": uid, "event_id": event_id} for uid, event_id in events]
    if rows:
        await conn.execute(_REMEMBER, {"owner": owner, "rows": _json(rows)})


def _as_id(uid: str) -> str | None:
    try:
        return str(uuid.UUID(uid))
    except ValueError:
        return None


def _json(rows: list[dict[str, object]]) -> str:
    return orjson.dumps(rows, default=str).decode()
