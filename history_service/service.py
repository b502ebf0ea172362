"""The rules of history reads and rollback, independent of gRPC."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from common.db import pooled_connection
from common.errors import EVENT_NOT_FOUND, InvalidArgument, NotFound, PermissionDenied, Unavailable
from common.notifications import EDITABLE_FIELDS, exception_changes
from common.paging import items_within
from common.roles import Role
from common.timeutil import to_timestamp
from common.tokens import Caller
from eventhub.events.v1 import events_pb2
from history_service import repo
from history_service.changes import Snapshot
from history_service.config import HistorySettings
from history_service.events import EventClient
from history_service.notifier import VersionNotifier
from history_service.repo import StoredVersion

MAX_PAGE = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    items: Sequence[StoredVersion]
    # The version to pass as `after` for the next page; 0 on the last page.
    next_after: int


@dataclass(frozen=True)
class VersionDiff:
    event_id: str
    from_version: int
    to_version: int
    changes: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class _Access:
    event_id: uuid.UUID
    role: Role
    current_version: int
    deleted: bool


class HistoryService:
    def __init__(
        self,
        settings: HistorySettings,
        reads: AsyncConnectionPool,
        events: EventClient,
        notifier: VersionNotifier,
    ) -> None:
        self._settings = settings
        self._reads = reads
        self._events = events
        self._notifier = notifier

    async def list_versions(
        self, caller: Caller, event_id: str, after: int = 0, limit: int = 0
    ) -> Page:
        return await self._page(caller, event_id, after, limit, with_changes=False)

    async def changelog(
        self, caller: Caller, event_id: str, after: int = 0, limit: int = 0
    ) -> Page:
        return await self._page(caller, event_id, after, limit, with_changes=True)

    async def get_version(self, caller: Caller, event_id: str, version: int) -> StoredVersion:
        _check_version("version_id", version)
        access = await self._access(caller, event_id)
        return (await self._load(access, [version]))[version]

    async def diff(
        self, caller: Caller, event_id: str, from_version: int, to_version: int
    ) -> VersionDiff:
        """The editable fields, and the exceptions (`overrides.<recurrence id>`), whose
        values differ between two versions (either order)."""
        _check_version("version_id1", from_version)
        _check_version("version_id2", to_version)
        access = await self._access(caller, event_id)
        rows = await self._load(access, [from_version, to_version])
        old, new = rows[from_version].snapshot, rows[to_version].snapshot
        old_fields = Snapshot.model_validate(old)
        new_fields = Snapshot.model_validate(new)
        changes = {
            field: {"old": old.get(field), "new": new.get(field)}
            for field in EDITABLE_FIELDS
            if getattr(old_fields, field) != getattr(new_fields, field)
        }
        changes |= exception_changes(old_fields.overrides, new_fields.overrides)
        return VersionDiff(str(access.event_id), from_version, to_version, changes)

    async def rollback(
        self,
        caller: Caller,
        event_id: str,
        version: int,
        allow_conflicts: bool = False,
        expected_version: int | None = None,
    ) -> events_pb2.Event:
        """Ask the event service for a new version whose content equals `version`'s.

        The event service validates the content, checks conflicts and
        `expected_version`, and records the change as a rollback.
        """
        _check_version("version_id", version)
        access = await self._access(caller, event_id)
        if not access.role.may_edit:
            raise PermissionDenied("only editors and owners may roll an event back")
        if access.deleted:
            raise NotFound(EVENT_NOT_FOUND)
        snapshot = Snapshot.model_validate((await self._load(access, [version]))[version].snapshot)
        request = events_pb2.RollbackEventRequest(
            id=str(access.event_id),
            event=event_input(snapshot),
            overrides_json=orjson.dumps(snapshot.overrides).decode(),
            rolled_back_to=version,
            allow_conflicts=allow_conflicts,
            expected_version=expected_version,
        )
        return await self._events.rollback(request)

    async def _page(
        self, caller: Caller, event_id: str, after: int, limit: int, *, with_changes: bool
    ) -> Page:
        if after < 0:
            raise InvalidArgument.field("after", "must be 0 or a version number")
        if not 0 <= limit <= MAX_PAGE:
            raise InvalidArgument.field("limit", f"must be between 1 and {MAX_PAGE}")
        limit = limit or MAX_PAGE
        access = await self._access(caller, event_id)
        rows = await self._when_settled(
            access,
            lambda conn: repo.page_if_settled(
                conn,
                access.event_id,
                access.current_version,
                after,
                limit + 1,
                with_changes=with_changes,
            ),
        )
        page = rows[:limit]
        if with_changes:
            page = page[: items_within(len(orjson.dumps(row.changes)) for row in page)]
        if len(rows) > len(page):
            return Page(page, page[-1].version)
        return Page(rows, 0)

    async def _access(self, caller: Caller, event_id: str) -> _Access:
        """The caller's role and the event's current version; NotFound without a role
        (from the event service, which keeps both, or its read cache)."""
        try:
            parsed = uuid.UUID(event_id)
        except ValueError:
            raise NotFound(EVENT_NOT_FOUND) from None
        current = await self._events.current_version(parsed, caller.user_id)
        return _Access(parsed, current.role, current.version, current.deleted)

    async def _when_settled(
        self, access: _Access, read: Callable[[AsyncConnection], Awaitable[T | None]]
    ) -> T:
        """What `read` gives once versions 1..current of the event are settled (reads
        answer read-your-writes); `read` gives None while they are not.

        The consumer of this process wakes the wait as soon as it stores a version of
        the event; another replica's consumer is noticed by polling.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.history_read_your_writes_timeout
        with self._notifier.watch(str(access.event_id)) as woken:
            while True:
                woken.clear()
                async with pooled_connection(self._reads) as conn:
                    result = await read(conn)
                if result is not None:
                    return result
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise Unavailable("the event's history is catching up; retry shortly")
                try:
                    await asyncio.wait_for(
                        woken.wait(), min(self._settings.history_read_your_writes_poll, remaining)
                    )
                except TimeoutError:
                    pass

    async def _load(self, access: _Access, versions: Sequence[int]) -> dict[int, StoredVersion]:
        rows = await self._when_settled(
            access,
            lambda conn: repo.versions_if_settled(
                conn, access.event_id, access.current_version, versions
            ),
        )
        for version in versions:
            if version not in rows:
                raise NotFound(f"event has no version {version}")
        return rows


def event_input(snapshot: Snapshot) -> events_pb2.EventInput:
    return events_pb2.EventInput(
        title=snapshot.title,
        description=snapshot.description or "",
        location=snapshot.location or "",
        start_time=to_timestamp(snapshot.start_time),
        end_time=to_timestamp(snapshot.end_time),
        timezone=snapshot.timezone,
        is_recurring=snapshot.is_recurring,
        recurrence_rule=snapshot.recurrence_rule or "",
    )


def _check_version(field: str, version: int) -> None:
    if version < 1:
        raise InvalidArgument.field(field, "must be a positive integer")
