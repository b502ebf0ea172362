"""The sharing rules, independent of gRPC: who may share, the last-owner rule,
all-or-nothing shares and usernames.

The access lists live with the events: each change reads the list from the event
service, decides, and applies the whole decision there in one call, valid only if
the list is still at the version read. A lost race is decided again from the new
list (a few times), never applied blind; the audit trail is written from the
event service's access-change notifications (`sharing_service.audit`).
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from common.errors import EVENT_NOT_FOUND, Conflict, InvalidArgument, NotFound, PermissionDenied
from common.roles import Role
from common.tokens import Caller
from sharing_service.events import (
    EventAccess,
    EventAccessClient,
    Permission,
    RoleChange,
    StaleAccess,
)
from sharing_service.users import KnownUser

NO_PERMISSION = "that user has no permission on this event"
LAST_OWNER = "the last owner of an event cannot be demoted or removed"
ROLE_MESSAGE = "must be one of owner, editor, viewer"
# The gateway caps share requests at the same size.
MAX_SHARE_TARGETS = 100
# Attempts at a change that keeps losing races with other changes of the same event.
MAX_ATTEMPTS = 5

UserLookup = Callable[[list[str], list[str]], Awaitable[list[KnownUser]]]
Decision = Callable[[EventAccess], list[RoleChange]]


@dataclass(frozen=True)
class ShareTarget:
    """One user to grant a role to: by id or by username (the other one empty)."""

    user_id: str
    username: str
    role: Role | None


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class SharingService:
    def __init__(self, events: EventAccessClient, lookup_users: UserLookup) -> None:
        self._events = events
        self._lookup_users = lookup_users

    async def list_permissions(self, caller: Caller, event_id: str) -> list[Permission]:
        """Everyone with a role on the event, owners first; for any role holder."""
        access = await self._events.get(_event_uuid(event_id))
        return sorted(
            access.permissions,
            key=lambda p: (-p.role.rank, p.granted_at, p.username.lower()),
        )

    async def share(
        self, caller: Caller, event_id: str, targets: Sequence[ShareTarget]
    ) -> list[Permission]:
        """Grant each target its role, all or none (owners only)."""
        _validate_targets(targets)
        event = _event_uuid(event_id)
        _require_owner(await self._events.get(event), caller)
        users = await self._resolve(targets)

        def grant_all(access: EventAccess) -> list[RoleChange]:
            return [
                RoleChange(user.id, user.username, target.role)
                for target, user in zip(targets, users, strict=True)
            ]

        access = await self._change(caller, event, grant_all)
        return [_held(access, user.id) for user in users]

    async def update_permission(
        self, caller: Caller, event_id: str, user_id: str, role: Role | None
    ) -> Permission:
        """Change a user's existing role (owners only)."""
        if role is None:
            raise InvalidArgument.field("role", ROLE_MESSAGE)
        event, user = _event_uuid(event_id), parse_uuid(user_id)

        def change_role(access: EventAccess) -> list[RoleChange]:
            held = access.permission_of(user) if user else None
            if held is None:
                raise NotFound(NO_PERMISSION)
            return [RoleChange(held.user_id, held.username, role)]

        access = await self._change(caller, event, change_role)
        assert user is not None
        return _held(access, user)

    async def revoke(self, caller: Caller, event_id: str, user_id: str) -> None:
        """Remove a user's role (owners only; an owner may remove itself if not the last)."""
        event, user = _event_uuid(event_id), parse_uuid(user_id)

        def remove(access: EventAccess) -> list[RoleChange]:
            held = access.permission_of(user) if user else None
            if held is None:
                raise NotFound(NO_PERMISSION)
            return [RoleChange(held.user_id, held.username, None)]

        await self._change(caller, event, remove)

    async def _change(self, caller: Caller, event: uuid.UUID, decide: Decision) -> EventAccess:
        """Read the access list, decide the changes, apply them if the list did not
        change meanwhile; otherwise decide again from the newer list."""
        for _ in range(MAX_ATTEMPTS):
            access = await self._events.get(event)
            _require_owner(access, caller)
            changes = [c for c in decide(access) if _alters(access, c)]
            if not changes:
                return access
            _keep_an_owner(access, changes)
            try:
                return await self._events.change(event, access.version, changes)
            except StaleAccess:
                continue
        raise Conflict("the event's permissions kept changing meanwhile; retry")

    async def _resolve(self, targets: Sequence[ShareTarget]) -> list[KnownUser]:
        """The user each target names, in order; NotFound naming every unknown one."""
        ids = [t.user_id for t in targets if t.user_id and parse_uuid(t.user_id)]
        names = [t.username for t in targets if t.username]
        found = await self._lookup_users(ids, names)
        by_id = {user.id: user for user in found}
        by_name = {user.username.lower(): user for user in found}
        users: list[KnownUser] = []
        unknown: list[str] = []
        for index, target in enumerate(targets):
            if target.user_id:
                parsed = parse_uuid(target.user_id)
                user = by_id.get(parsed) if parsed else None
            else:
                user = by_name.get(target.username.lower())
            if user is None:
                unknown.append(f"users.{index}")
            else:
                users.append(user)
        if unknown:
            raise NotFound(
                f"unknown user: {', '.join(unknown)}; nothing was shared", unknown=unknown
            )
        seen: dict[uuid.UUID, int] = {}
        duplicates = []
        for index, user in enumerate(users):
            if user.id in seen:
                duplicates.append(
                    {"field": f"users.{index}", "message": f"same user as users.{seen[user.id]}"}
                )
            seen.setdefault(user.id, index)
        if duplicates:
            raise InvalidArgument(duplicates)
        return users


def _validate_targets(targets: Sequence[ShareTarget]) -> None:
    errors = []
    limit = MAX_SHARE_TARGETS
    if not targets:
        errors.append({"field": "users", "message": "name at least one user"})
    elif len(targets) > limit:
        errors.append({"field": "users", "message": f"at most {limit} users per request"})
    for index, target in enumerate(targets):
        if bool(target.user_id) == bool(target.username):
            errors.append(
                {"field": f"users.{index}", "message": "give exactly one of user_id, username"}
            )
        if target.role is None:
            errors.append({"field": f"users.{index}.role", "message": ROLE_MESSAGE})
    if errors:
        raise InvalidArgument(errors)


def _event_uuid(event_id: str) -> uuid.UUID:
    parsed = parse_uuid(event_id)
    if parsed is None:
        raise NotFound(EVENT_NOT_FOUND)
    return parsed


def _require_owner(access: EventAccess, caller: Caller) -> None:
    """NotFound without a role (no existence leak), PermissionDenied below owner."""
    caller_id = parse_uuid(caller.user_id)
    held = access.permission_of(caller_id) if caller_id else None
    if held is None:
        raise NotFound(EVENT_NOT_FOUND)
    if not held.role.may_share:
        raise PermissionDenied("only owners may share or change permissions")


def _alters(access: EventAccess, change: RoleChange) -> bool:
    held = access.permission_of(change.user_id)
    return (held.role if held else None) != change.role


def _keep_an_owner(access: EventAccess, changes: list[RoleChange]) -> None:
    roles = {p.user_id: p.role for p in access.permissions}
    for change in changes:
        roles[change.user_id] = change.role  # type: ignore[assignment]
    if Role.OWNER not in roles.values():
        raise Conflict(LAST_OWNER)


def _held(access: EventAccess, user_id: uuid.UUID) -> Permission:
    permission = access.permission_of(user_id)
    assert permission is not None, "a role just granted is held"
    return permission
