"""The access list of each event: who holds which role. The event service is its
system of record; the sharing service decides what to change (its rules) and
applies it here, optimistically, with the access version it read.

A change of the list, its new `access_version` and its notification (outbox)
commit together, and the cached copy is replaced right after commit (versioned, so
never by an older one): the next request on any replica sees the change.
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from common import outbox
from common.errors import (
    EVENT_NOT_FOUND,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
)
from common.idempotency import IdempotentWrite
from common.notifications import (
    AccessChange,
    AccessChanged,
    FeedKind,
    FeedNotice,
    access_subject,
    feed_messages,
)
from common.roles import Role
from common.timeutil import rfc3339, utcnow
from common.tokens import Caller
from common.tracing import trace_headers
from event_service import repo
from event_service.cache import EventCache
from event_service.domain.events import event_uuid
from event_service.models import outbox as outbox_table
from event_service.repo import AccessList, EventAccessRows

LAST_OWNER = "the last owner of an event cannot be demoted or removed"
# The sharing service shares with at most 100 users per request.
MAX_CHANGES = 100


@dataclass(frozen=True, slots=True)
class RequestedChange:
    """Give `user_id` `role`, or take its role away (`role` None)."""

    user_id: str
    username: str
    role: Role | None


def access_notification(
    namespace: str,
    event_id: uuid.UUID,
    actor_id: str,
    occurred_at: datetime,
    changes: list[AccessChange],
) -> outbox.Message:
    """The outbox message announcing `changes`, the last of which set the access version."""
    version = changes[-1].sequence
    notice = AccessChanged(
        event_id=str(event_id),
        access_version=version,
        actor_id=actor_id,
        occurred_at=rfc3339(occurred_at),
        changes=changes,
    )
    return (
        access_subject(namespace, str(event_id)),
        f"{event_id}:access:{version}",
        orjson.dumps(notice.model_dump()),
        trace_headers(),
    )


class AccessService:
    def __init__(
        self,
        namespace: str,
        engine: AsyncEngine,
        cache: EventCache,
        publish: Callable[[Sequence[outbox.Message]], None],
    ) -> None:
        self._namespace = namespace
        self._engine = engine
        self._cache = cache
        self._publish = publish

    async def get(self, caller: Caller, event_id: str) -> EventAccessRows:
        """The access list of a live event, for any of its role holders."""
        parsed = event_uuid(event_id)
        async with self._engine.connect() as conn:
            access = await repo.get_access(conn, parsed)
        if access is None or access.role_of(uuid.UUID(caller.user_id)) is None:
            raise NotFound(EVENT_NOT_FOUND)
        return access

    async def change(
        self,
        caller: Caller,
        event_id: str,
        expected_version: int,
        requested: Sequence[RequestedChange],
        once: IdempotentWrite[EventAccessRows] | None = None,
    ) -> EventAccessRows:
        """Apply the changes if the list is still at `expected_version` (owners only),
        at most once with a key (`once`).

        PreconditionFailed when another change came first: the caller reads again and
        decides again. Changes that alter nothing are skipped; the rest are numbered
        one by one from the current access version.
        """
        parsed = event_uuid(event_id)
        targets = _validated(requested)
        actor = uuid.UUID(caller.user_id)
        now = utcnow()
        async with self._engine.begin() as conn:
            current = await repo.get_access(conn, parsed, lock=True)
            caller_role = current.role_of(actor) if current else None
            if current is None or caller_role is None:
                raise NotFound(EVENT_NOT_FOUND)
            if once:
                await once.replay_if_applied(conn)
            if not caller_role.may_share:
                raise PermissionDenied("only owners may share or change permissions")
            if current.version != expected_version:
                raise PreconditionFailed(
                    f"the access list is at version {current.version}, not {expected_version}",
                    current_access_version=current.version,
                )
            notices, granted, revoked = _apply(current, targets, actor, now)
            if not notices:
                return current
            roles = {e.user_id: e.role for e in current.entries}
            roles.update({row["user_id"]: Role(row["role"]) for row in granted})
            for user in revoked:
                roles.pop(user)
            if Role.OWNER not in roles.values():
                raise Conflict(LAST_OWNER)
            version = notices[-1].sequence
            await repo.save_access(
                conn, parsed, version, granted, revoked, current.event_version, now
            )
            messages = [
                access_notification(self._namespace, parsed, caller.user_id, now, notices),
                *self._feed(current, notices, caller.user_id, now),
            ]
            await outbox.enqueue_many(conn, outbox_table, messages)
            changed = await repo.get_access(conn, parsed)
            assert changed is not None
            if once:
                await once.record(conn, changed)
        self._publish(messages)
        cached = AccessList(version, {str(user): role for user, role in roles.items()})
        await self._cache.put(
            parsed, None, cached, retiring={e.user_id for e in current.entries} | roles.keys()
        )
        return changed

    def _feed(
        self, current: EventAccessRows, notices: list[AccessChange], actor: str, now: datetime
    ) -> list[outbox.Message]:
        """The change-stream message of each user whose role changed: `shared` for a
        role given or changed, `access_lost` for one taken away."""
        messages = []
        for change in notices:
            kind: FeedKind = "shared" if change.role is not None else "access_lost"
            notice = FeedNotice(
                event=kind,
                event_id=str(current.event_id),
                version=current.event_version,
                change_type=kind,
                actor_id=actor,
                occurred_at=rfc3339(now),
            )
            user = uuid.UUID(change.user_id)
            messages += feed_messages(self._namespace, notice, [user], f"access:{change.sequence}")
        return messages


def _apply(
    current: EventAccessRows,
    targets: list[tuple[uuid.UUID, RequestedChange]],
    actor: uuid.UUID,
    now: datetime,
) -> tuple[list[AccessChange], list[dict], list[uuid.UUID]]:
    """The notices, rows to write and users to remove for the changes that alter a role."""
    held = {entry.user_id: entry.role for entry in current.entries}
    notices: list[AccessChange] = []
    granted: list[dict] = []
    revoked: list[uuid.UUID] = []
    for user, change in targets:
        previous = held.get(user)
        if previous == change.role:
            continue
        notices.append(
            AccessChange(
                user_id=str(user),
                role=change.role,
                previous_role=previous,
                sequence=current.version + len(notices) + 1,
            )
        )
        if change.role is None:
            revoked.append(user)
        else:
            granted.append(
                {
                    "event_id": current.event_id,
                    "user_id": user,
                    "role": change.role.value,
                    "username": change.username,
                    "granted_by": actor,
                    "granted_at": now,
                    "event_created_at": current.created_at,
                }
            )
    return notices, granted, revoked


def _validated(requested: Sequence[RequestedChange]) -> list[tuple[uuid.UUID, RequestedChange]]:
    errors = []
    if not 1 <= len(requested) <= MAX_CHANGES:
        errors.append({"field": "changes", "message": f"must hold 1 to {MAX_CHANGES} changes"})
    targets: list[tuple[uuid.UUID, RequestedChange]] = []
    seen: set[uuid.UUID] = set()
    for index, change in enumerate(requested):
        try:
            user = uuid.UUID(change.user_id)
        except ValueError:
            errors.append({"field": f"changes.{index}.user_id", "message": "must be a UUID"})
            continue
        if user in seen:
            errors.append({"field": f"changes.{index}.user_id", "message": "named twice"})
        if change.role is not None and not 1 <= len(change.username) <= 32:
            errors.append(
                {"field": f"changes.{index}.username", "message": "is required to grant a role"}
            )
        seen.add(user)
        targets.append((user, change))
    if errors:
        raise InvalidArgument(errors)
    return targets
