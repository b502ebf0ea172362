"""The rules of who may do what to an event, independent of gRPC."""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied
from common.timeutil import utcnow
from common.tokens import Caller
from sharing_service import repo
from sharing_service.config import SharingSettings
from sharing_service.models import EventAcl, Grant, Role
from sharing_service.users import KnownUser

EVENT_NOT_FOUND = "event not found"
LAST_OWNER = "the last owner of an event cannot be demoted or removed"
ROLE_MESSAGE = "must be one of owner, editor, viewer"
# The gateway caps share requests at the same size.
MAX_SHARE_TARGETS = 100
# The event service creates at most this many events at once.
MAX_NEW_EVENTS = 500
ROLE_ORDER = {Role.OWNER: 0, Role.EDITOR: 1, Role.VIEWER: 2}
ROLE_BY_VALUE = {role.value: role for role in Role}

UserLookup = Callable[[list[str], list[str]], Awaitable[list[KnownUser]]]


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
    def __init__(
        self,
        settings: SharingSettings,
        sessions: async_sessionmaker,
        read_sessions: async_sessionmaker,
        lookup_users: UserLookup,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        # Autocommit sessions for the single-query reads every event request makes.
        self._reads = read_sessions
        self._lookup_users = lookup_users
        # Called after a transaction that enqueued notifications commits.
        self._on_change = on_change

    async def initialize_owners(self, caller: Caller, event_ids: Sequence[str]) -> list[Grant]:
        """Make the caller the first owner of new events, all or none; a repeat by
        that owner is a no-op."""
        events = []
        for index, event_id in enumerate(event_ids):
            event = parse_uuid(event_id)
            if event is None:
                raise InvalidArgument.field(f"event_ids.{index}", "must be a UUID")
            events.append(event)
        if not 1 <= len(events) <= MAX_NEW_EVENTS:
            raise InvalidArgument.field("event_ids", f"must hold 1 to {MAX_NEW_EVENTS} ids")
        owner = uuid.UUID(caller.user_id)
        now = utcnow()
        async with self._sessions() as session, session.begin():
            created = await repo.create_acls(session, events, now)
            earlier = await repo.grants_of_user_on(
                session, [e for e in events if e not in created], owner
            )
            if any(grant.role != Role.OWNER for grant in earlier.values()) or len(earlier) + len(
                created
            ) < len(set(events)):
                raise AlreadyExists("an event already has owners")
            new_grants = {
                event: Grant(
                    event_id=event,
                    user_id=owner,
                    username=caller.username,
                    role=Role.OWNER.value,
                    granted_by=owner,
                    granted_at=now,
                )
                for event in events
                if event in created
            }
            await repo.record_first_owners(
                session, self._settings.namespace, list(new_grants.values())
            )
        self._on_change()
        return [new_grants.get(event) or earlier[event] for event in events]

    async def get_role(self, event_id: str, user_id: str) -> Role | None:
        event, user = parse_uuid(event_id), parse_uuid(user_id)
        if event is None or user is None:
            return None
        async with self._reads() as session:
            role = await repo.get_role(session, event, user)
        return Role(role) if role else None

    async def list_grants(self, user_id: str, role: Role | None) -> list[tuple[str, Role]]:
        user = parse_uuid(user_id)
        if user is None:
            return []
        async with self._reads() as session:
            grants = await repo.grants_of_user(session, user, role)
        return [(event_id, ROLE_BY_VALUE[granted]) for event_id, granted in grants]

    async def list_permissions(self, caller: Caller, event_id: str) -> list[Grant]:
        """Everyone with a role on the event, owners first; for any role holder."""
        event = parse_uuid(event_id)
        async with self._sessions() as session:
            if event is None or await _role_of(session, event, caller) is None:
                raise NotFound(EVENT_NOT_FOUND)
            grants = await repo.grants_of_event(session, event)
        return sorted(
            grants, key=lambda g: (ROLE_ORDER[Role(g.role)], g.granted_at, g.username.lower())
        )

    async def share(
        self, caller: Caller, event_id: str, targets: Sequence[ShareTarget]
    ) -> list[Grant]:
        """Grant each target its role, all or none (owners only)."""
        self._validate_targets(targets)
        event = parse_uuid(event_id)
        if event is None:
            raise NotFound(EVENT_NOT_FOUND)
        async with self._sessions() as session:
            await _require_owner(session, event, caller)
        users = await self._resolve(targets)
        actor = uuid.UUID(caller.user_id)
        now = utcnow()
        async with self._sessions() as session, session.begin():
            acl = await _lock_as_owner(session, event, caller)
            grants = []
            for target, user in zip(targets, users, strict=True):
                assert target.role is not None
                grants.append(await self._set_role(session, acl, user, target.role, actor, now))
            await _ensure_an_owner(session, event)
        self._on_change()
        return grants

    async def update_permission(
        self, caller: Caller, event_id: str, user_id: str, role: Role | None
    ) -> Grant:
        """Change a user's existing role (owners only)."""
        if role is None:
            raise InvalidArgument.field("role", ROLE_MESSAGE)
        event = parse_uuid(event_id)
        if event is None:
            raise NotFound(EVENT_NOT_FOUND)
        user = parse_uuid(user_id)
        now = utcnow()
        async with self._sessions() as session, session.begin():
            acl = await _lock_as_owner(session, event, caller)
            grant = await repo.get_grant(session, event, user) if user else None
            if grant is None:
                raise NotFound("that user has no permission on this event")
            await self._set_role(
                session,
                acl,
                KnownUser(grant.user_id, grant.username),
                role,
                uuid.UUID(caller.user_id),
                now,
            )
            await _ensure_an_owner(session, event)
        self._on_change()
        return grant

    async def revoke(self, caller: Caller, event_id: str, user_id: str) -> None:
        """Remove a user's role (owners only; an owner may remove itself if not the last)."""
        event = parse_uuid(event_id)
        if event is None:
            raise NotFound(EVENT_NOT_FOUND)
        user = parse_uuid(user_id)
        now = utcnow()
        async with self._sessions() as session, session.begin():
            acl = await _lock_as_owner(session, event, caller)
            grant = await repo.get_grant(session, event, user) if user else None
            if grant is None:
                raise NotFound("that user has no permission on this event")
            previous = grant.role
            await repo.delete_grant(session, event, grant.user_id)
            await _ensure_an_owner(session, event)
            await repo.record_change(
                session,
                self._settings.namespace,
                acl,
                grant.user_id,
                None,
                previous,
                uuid.UUID(caller.user_id),
                now,
            )
        self._on_change()

    async def _set_role(
        self,
        session: AsyncSession,
        acl: EventAcl,
        user: KnownUser,
        role: Role,
        actor: uuid.UUID,
        now: datetime,
    ) -> Grant:
        """Give `user` `role` on the locked event, auditing it if anything changes."""
        grant = await repo.get_grant(session, acl.event_id, user.id)
        previous = grant.role if grant else None
        if grant is None:
            grant = Grant(event_id=acl.event_id, user_id=user.id, username=user.username)
            repo.add_grant(session, grant)
        elif grant.role == role:
            return grant
        grant.role = role.value
        grant.granted_by = actor
        grant.granted_at = now
        await repo.record_change(
            session, self._settings.namespace, acl, user.id, role.value, previous, actor, now
        )
        return grant

    def _validate_targets(self, targets: Sequence[ShareTarget]) -> None:
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


async def _role_of(session: AsyncSession, event: uuid.UUID, caller: Caller) -> str | None:
    caller_id = parse_uuid(caller.user_id)
    return await repo.get_role(session, event, caller_id) if caller_id else None


async def _require_owner(session: AsyncSession, event: uuid.UUID, caller: Caller) -> None:
    """NotFound without a role (no existence leak), PermissionDenied below owner."""
    role = await _role_of(session, event, caller)
    if role is None:
        raise NotFound(EVENT_NOT_FOUND)
    if role != Role.OWNER:
        raise PermissionDenied("only owners may share or change permissions")


async def _lock_as_owner(session: AsyncSession, event: uuid.UUID, caller: Caller) -> EventAcl:
    acl = await repo.lock_acl(session, event)
    if acl is None:
        raise NotFound(EVENT_NOT_FOUND)
    await _require_owner(session, event, caller)
    return acl


async def _ensure_an_owner(session: AsyncSession, event: uuid.UUID) -> None:
    if await repo.count_owners(session, event) == 0:
        raise Conflict(LAST_OWNER)
