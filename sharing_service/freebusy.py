"""Free/busy, independent of gRPC: who may see whose busy times, and answering them.

Busy times come from the event service (occurrences of the events a user owns);
the grants that decide who may see them live here. A caller sees their own and
those of the users who granted them theirs, read afresh on every request, so a
grant or its removal acts on the next one. The grants are read before the event
service is asked: no remote call is made inside a transaction.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker

from common.errors import InvalidArgument, NotFound
from common.timeutil import MAX_YEAR, MIN_YEAR
from common.tokens import Caller
from sharing_service import repo
from sharing_service.events import EventAccessClient
from sharing_service.models import FreeBusyGrant
from sharing_service.service import UserLookup, parse_uuid

# The gateway caps free/busy requests at the same sizes.
MAX_FREEBUSY_USERS = 50
MAX_FREEBUSY_WINDOW = timedelta(days=366)

FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
FORBIDDEN_MESSAGE = "this user has not shared their free/busy with you"
NOT_FOUND_MESSAGE = "no such user"
SELF_GRANT = "cannot grant your own free/busy to yourself"
NO_SUCH_GRANT = "no such free/busy grant"


@dataclass(frozen=True)
class FreeBusyUser:
    """One user asked for: by id or by username (the other one empty)."""

    user_id: str
    username: str


@dataclass(frozen=True)
class UserFreeBusy:
    """One asked user's answer: busy intervals (the REST API's JSON array, merged,
    sorted, clipped to the window), or the reason none are given."""

    busy_json: bytes = b""
    error_reason: str = ""
    error_message: str = ""


_FORBIDDEN = UserFreeBusy(error_reason=FORBIDDEN, error_message=FORBIDDEN_MESSAGE)
_NOT_FOUND = UserFreeBusy(error_reason=NOT_FOUND, error_message=NOT_FOUND_MESSAGE)


class FreeBusyService:
    def __init__(
        self, sessions: async_sessionmaker, events: EventAccessClient, lookup_users: UserLookup
    ) -> None:
        self._sessions = sessions
        self._events = events
        self._lookup_users = lookup_users

    async def list_grants(self, caller: Caller) -> list[FreeBusyGrant]:
        """The users the caller lets see their free/busy, oldest grant first."""
        async with self._sessions() as session:
            return list(await repo.list_freebusy_grants(session, _caller_id(caller)))

    async def put_grant(self, caller: Caller, user_id: str) -> tuple[FreeBusyGrant, bool]:
        """Let `user_id` see the caller's free/busy: the grant, and whether it is new
        (an existing one is answered as stored, with its first `granted_at`)."""
        owner, grantee = _caller_id(caller), parse_uuid(user_id)
        if grantee is None:
            raise InvalidArgument.field("user_id", "must be a UUID")
        if grantee == owner:
            raise InvalidArgument.field("user_id", SELF_GRANT)
        found = await self._lookup_users([str(grantee)], [])
        user = next((user for user in found if user.id == grantee), None)
        if user is None:
            raise NotFound("user not found")
        async with self._sessions() as session, session.begin():
            return await repo.put_freebusy_grant(session, owner, user.id, user.username)

    async def delete_grant(self, caller: Caller, user_id: str) -> None:
        """Stop letting `user_id` see the caller's free/busy; NotFound if it could not."""
        grantee = parse_uuid(user_id)
        if grantee is not None:
            async with self._sessions() as session, session.begin():
                if await repo.delete_freebusy_grant(session, _caller_id(caller), grantee):
                    return
        raise NotFound(NO_SUCH_GRANT)

    async def free_busy(
        self,
        caller: Caller,
        start: datetime | None,
        end: datetime | None,
        users: Sequence[FreeBusyUser],
        timezone: str = "",
    ) -> list[UserFreeBusy]:
        """One answer per asked user, in order: busy times for the caller and for users
        who granted the caller their free/busy; "forbidden" for other users, "not_found"
        for unknown ones. InvalidArgument naming every bad field."""
        errors = _free_busy_errors(start, end, users)
        if errors:
            raise InvalidArgument(errors)
        assert start is not None and end is not None
        caller_id = _caller_id(caller)
        resolved = await self._resolve(users)
        others = {user for user in resolved if user is not None and user != caller_id}
        granters: set[uuid.UUID] = set()
        if others:
            async with self._sessions() as session:
                granters = await repo.granters_of(session, caller_id, others)
        visible = [
            user
            for user in dict.fromkeys(resolved)
            if user is not None and (user == caller_id or user in granters)
        ]
        busy = await self._events.busy_times(visible, start, end, timezone) if visible else {}
        answers = []
        for user in resolved:
            if user is None:
                answers.append(_NOT_FOUND)
            elif user in busy:
                answers.append(UserFreeBusy(busy_json=busy[user]))
            else:
                answers.append(_FORBIDDEN)
        return answers

    async def _resolve(self, users: Sequence[FreeBusyUser]) -> list[uuid.UUID | None]:
        """The id of each asked user, None for an unknown one: one directory lookup."""
        ids = [user.user_id for user in users if user.user_id]
        names = [user.username for user in users if not user.user_id]
        found = await self._lookup_users(ids, names)
        known_ids = {user.id for user in found}
        by_name = {user.username.lower(): user.id for user in found}

        def resolved(user: FreeBusyUser) -> uuid.UUID | None:
            if user.user_id:
                parsed = parse_uuid(user.user_id)
                return parsed if parsed in known_ids else None
            return by_name.get(user.username.lower())

        return [resolved(user) for user in users]


def _free_busy_errors(
    start: datetime | None, end: datetime | None, users: Sequence[FreeBusyUser]
) -> list[dict[str, str]]:
    errors = []
    for name, value in (("start", start), ("end", end)):
        if value is None:
            errors.append({"field": name, "message": "is required"})
        elif not MIN_YEAR <= value.year <= MAX_YEAR:
            errors.append({"field": name, "message": f"must be in the years {MIN_YEAR}-{MAX_YEAR}"})
    if not errors and start is not None and end is not None:
        if end <= start:
            errors.append({"field": "end", "message": "must be after start"})
        elif end - start > MAX_FREEBUSY_WINDOW:
            errors.append({"field": "end", "message": "the window may be at most 366 days long"})
    if not users:
        errors.append({"field": "users", "message": "name at least one user"})
    elif len(users) > MAX_FREEBUSY_USERS:
        errors.append(
            {"field": "users", "message": f"at most {MAX_FREEBUSY_USERS} users per request"}
        )
    for index, user in enumerate(users):
        if bool(user.user_id) == bool(user.username):
            errors.append(
                {"field": f"users.{index}", "message": "give exactly one of user_id, username"}
            )
        elif user.user_id and parse_uuid(user.user_id) is None:
            errors.append({"field": f"users.{index}.user_id", "message": "must be a UUID"})
    return errors


def _caller_id(caller: Caller) -> uuid.UUID:
    # A verified access token's subject is the user's id.
    return uuid.UUID(caller.user_id)
