"""Change notifications that services publish on NATS JetStream.

A notification is JSON; its JetStream message id (`Nats-Msg-Id`) is
`<entity id>:<version>` so that relays and retries deduplicate.
"""

from typing import Any, Literal

from pydantic import BaseModel

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


class PermissionChange(BaseModel):
    """A grant, role change or revoke on an event."""

    event_id: str
    user_id: str
    role: str | None
    previous_role: str | None
    actor_id: str
    occurred_at: str
    sequence: int


def event_stream(namespace: str) -> str:
    return f"{namespace.upper()}_EVENT_CHANGES"


def event_subject(namespace: str, event_id: str = "*") -> str:
    return f"{namespace}.events.changes.{event_id}"


def sharing_stream(namespace: str) -> str:
    return f"{namespace.upper()}_PERMISSION_CHANGES"


def sharing_subject(namespace: str, event_id: str = "*") -> str:
    return f"{namespace}.sharing.changes.{event_id}"
