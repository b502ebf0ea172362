"""The notifications a write queues in its outbox: one per (event, version) for the
history, and one per access-list change for the audit trail."""

import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from common import outbox
from common.notifications import (
    EDITABLE_FIELDS,
    AccessChange,
    ChangeType,
    EventChange,
    FeedKind,
    FeedNotice,
    change_msg_id,
    event_subject,
    exception_changes,
    feed_messages,
)
from common.roles import Role
from common.timeutil import rfc3339
from common.tokens import Caller
from common.tracing import trace_headers
from event_service.access import access_notification
from event_service.domain.events import EventDraft, json_value
from event_service.models import StoredEvent

# A new event's access list: its owner's grant, change 1.
FIRST_ACCESS_VERSION = 1

Changes = dict[str, dict[str, Any]]  # {field: {"old", "new"}}


def change_feed_notice(event: StoredEvent, change_type: ChangeType, actor_id: str) -> FeedNotice:
    """A version of an event, as its readers' change streams announce it."""
    kind: FeedKind = "deleted" if change_type == "deleted" else "changed"
    return FeedNotice(
        event=kind,
        event_id=str(event.id),
        version=event.version,
        change_type=change_type,
        actor_id=actor_id,
        occurred_at=rfc3339(event.updated_at),
    )


def change_feed(
    namespace: str,
    changes: list[tuple[StoredEvent, ChangeType, Changes]],
    readers: Iterable[uuid.UUID],
    caller: Caller,
) -> list[outbox.Message]:
    """The change-stream messages of committed changes to the readers of the events."""
    readers = list(readers)
    return [
        message
        for event, change_type, _ in changes
        for message in feed_messages(
            namespace,
            change_feed_notice(event, change_type, caller.user_id),
            readers,
            str(event.version),
        )
    ]


def changes_between(old: EventDraft, new: EventDraft) -> Changes:
    return {
        name: {"old": json_value(getattr(old, name)), "new": json_value(getattr(new, name))}
        for name in EDITABLE_FIELDS
        if getattr(old, name) != getattr(new, name)
    }


def created_changes(event: StoredEvent) -> Changes:
    return {
        name: {"old": None, "new": json_value(getattr(event, name))} for name in EDITABLE_FIELDS
    }


def change_messages(
    namespace: str,
    changes: list[tuple[StoredEvent, ChangeType, Changes]],
    caller: Caller,
) -> list[outbox.Message]:
    """The notifications of committed changes, one per (event, version)."""
    messages = []
    trace = trace_headers()
    for event, change_type, fields in changes:
        change = EventChange(
            event_id=str(event.id),
            version=event.version,
            change_type=change_type,
            actor_id=caller.user_id,
            occurred_at=rfc3339(event.updated_at),
            snapshot=event.snapshot(),
            changes=fields,
        )
        subject = event_subject(namespace, str(event.id))
        payload = orjson.dumps(change.model_dump())
        messages.append((subject, change_msg_id(event.id, event.version), payload, trace))
    return messages


def creation_messages(
    namespace: str, events: list[StoredEvent], caller: Caller
) -> list[outbox.Message]:
    """New events' notifications: each one's version 1 (an imported series' exceptions
    among its changes), then each one's access
    list (its owner's grant, change 1)."""
    created = [
        (event, "created", created_changes(event) | exception_changes({}, event.overrides))
        for event in events
    ]
    grant = AccessChange(user_id=caller.user_id, role=Role.OWNER, sequence=FIRST_ACCESS_VERSION)
    owner = [uuid.UUID(caller.user_id)]
    return (
        change_messages(namespace, created, caller)
        + [
            access_notification(namespace, event.id, caller.user_id, event.created_at, [grant])
            for event in events
        ]
        + change_feed(namespace, created, owner, caller)
    )


def split_messages(
    namespace: str,
    before: StoredEvent,
    updated: StoredEvent,
    created: StoredEvent,
    roles: list[tuple[uuid.UUID, Role]],
    caller: Caller,
) -> list[outbox.Message]:
    """A "this and following" split: the series' new version (its rule and the
    exceptions it handed over), the new series' version 1, and the new series' access
    list, a copy of the series' (changes 1 to n)."""
    changed = changes_between(before.draft(), updated.draft()) | exception_changes(
        before.overrides, updated.overrides
    )
    new = created_changes(created) | exception_changes({}, created.overrides)
    grants = [
        AccessChange(user_id=str(user), role=role, sequence=sequence)
        for sequence, (user, role) in enumerate(roles, start=1)
    ]
    readers = [user for user, _ in roles]
    versions = [(updated, "updated", changed), (created, "created", new)]
    return (
        change_messages(namespace, versions, caller)
        + [access_notification(namespace, created.id, caller.user_id, created.created_at, grants)]
        + change_feed(namespace, versions, readers, caller)
    )
