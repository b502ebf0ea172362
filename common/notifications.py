"""Change notifications that services publish on NATS JetStream.

A notification is JSON; its JetStream message id (`Nats-Msg-Id`) is
`<event id>:<version>` (`<event id>:access:<access version>` for access changes) so
that relays and retries deduplicate.
"""

import uuid
from collections.abc import Iterable
from typing import Any, Literal

import orjson
from pydantic import BaseModel

from common.tracing import TraceHeaders, trace_headers

ChangeType = Literal["created", "updated", "rolled_back", "deleted"]

# The fields a change can touch; `EventChange.changes` and diffs are over these.
EDITABLE_FIELDS = (
    "title",
    "description",
    "location",
    "start_time",
    "end_time",
    "timezone",
    "is_recurring",
    "recurrence_rule",
)


def exception_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`overrides.<recurrence id>` for each exception of a series that differs
    between two of its `overrides` maps, old and new (`None`: it has none)."""
    return {
        f"overrides.{key}": {"old": old.get(key), "new": new.get(key)}
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    }


class EventChange(BaseModel):
    """One version of an event, as the event service commits it."""

    event_id: str
    version: int
    change_type: ChangeType
    actor_id: str
    occurred_at: str
    # The event's fields after the change (before it, for a delete), JSON-ready.
    snapshot: dict[str, Any]
    # {field: {"old": ..., "new": ...}} for each field that changed.
    changes: dict[str, dict[str, Any]]


class AccessChange(BaseModel):
    """One user's role changing: granted (`previous_role` None), changed, or revoked
    (`role` None). `sequence` is the event's access version after this change."""

    user_id: str
    role: str | None
    previous_role: str | None = None
    sequence: int


class AccessChanged(BaseModel):
    """Changes of an event's access list committed together, as the event service
    commits them (the first owner's grant on create is one too)."""

    event_id: str
    access_version: int
    actor_id: str
    occurred_at: str
    changes: list[AccessChange]


_MAX_VERSION = 2**63 - 1  # versions are int64


def parse_version(text: str) -> int | None:
    """The version a text names (a message id's, an entity tag's): ASCII digits within
    int64 and above 0, nothing else (`str.isdigit` also takes "²" and "１")."""
    if text.isascii() and text.isdigit() and 0 < int(text) <= _MAX_VERSION:
        return int(text)
    return None


def change_msg_id(event_id: uuid.UUID | str, version: int) -> str:
    return f"{event_id}:{version}"


def version_of_msg_id(msg_id: str | None) -> tuple[uuid.UUID, int] | None:
    """The (event id, version) a `change_msg_id` names, or None for any other id."""
    event_id, _, version = (msg_id or "").partition(":")
    parsed = parse_version(version)
    try:
        return (uuid.UUID(event_id), parsed) if parsed is not None else None
    except ValueError:
        return None


def event_stream(namespace: str) -> str:
    return f"{namespace.upper()}_EVENT_CHANGES"


def event_subject(namespace: str, event_id: str = "*") -> str:
    return f"{namespace}.events.changes.{event_id}"


def access_subject(namespace: str, event_id: str = "*") -> str:
    """Access-list changes travel on the event stream too, beside the event's versions."""
    return f"{namespace}.events.access.{event_id}"


def feed_subject(namespace: str, user_id: str = "*") -> str:
    """One user's change feed (`FeedNotice`s), on the event stream too: the change
    stream replays a user's feed from it by subject."""
    return f"{namespace}.events.feed.{user_id}"


def event_stream_subjects(namespace: str) -> list[str]:
    return [
        event_subject(namespace, "*"),
        access_subject(namespace, "*"),
        feed_subject(namespace, "*"),
    ]


FeedKind = Literal["changed", "deleted", "shared", "access_lost"]


class FeedNotice(BaseModel):
    """What one user's change stream says about one change (`event` names the kind;
    the rest is the message's data, as the REST contract's change stream defines it).
    The event service queues one per user who may see the change, in its transaction."""

    event: FeedKind
    event_id: str
    version: int
    change_type: str
    actor_id: str
    occurred_at: str

    def data(self) -> dict[str, Any]:
        return self.model_dump(exclude={"event"})


def feed_messages(
    namespace: str, notice: FeedNotice, readers: Iterable[uuid.UUID], key: str
) -> list[tuple[str, str, bytes, TraceHeaders | None]]:
    """`notice` as outbox messages (`common.outbox.Message`) to the change stream of each
    reader; `key` names the change within the event (its version, or
    `access:<access version>`), so that repeats deduplicate."""
    payload = orjson.dumps(notice.model_dump())
    trace = trace_headers()
    return [
        (feed_subject(namespace, str(user)), f"{user}:{notice.event_id}:{key}", payload, trace)
        for user in readers
    ]
