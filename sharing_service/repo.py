"""All SQL of the sharing service."""

import uuid
from collections.abc import Sequence
from datetime import datetime

import orjson
from sqlalchemy import Text, cast, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from common import outbox as outbox_queue
from common.notifications import PermissionChange as PermissionChangeNotice
from common.notifications import sharing_subject
from common.timeutil import rfc3339
from sharing_service.models import EventAcl, Grant, PermissionChange, Role, outbox


async def create_acls(
    session: AsyncSession, event_ids: Sequence[uuid.UUID], now: datetime
) -> set[uuid.UUID]:
    """Create ACL rows of new events, their first change numbered 1; returns those
    that did not exist yet."""
    created = await session.scalars(
        insert(EventAcl)
        .values([{"event_id": e, "last_sequence": 1, "created_at": now} for e in event_ids])
        .on_conflict_do_nothing()
        .returning(EventAcl.event_id)
    )
    return set(created.all())


async def lock_acl(session: AsyncSession, event_id: uuid.UUID) -> EventAcl | None:
    """The event's ACL row, locked until the transaction ends (serializes its changes)."""
    return await session.scalar(
        select(EventAcl).where(EventAcl.event_id == event_id).with_for_update()
    )


async def get_grant(session: AsyncSession, event_id: uuid.UUID, user_id: uuid.UUID) -> Grant | None:
    return await session.scalar(
        select(Grant).where(Grant.event_id == event_id, Grant.user_id == user_id)
    )


async def grants_of_user_on(
    session: AsyncSession, event_ids: Sequence[uuid.UUID], user_id: uuid.UUID
) -> dict[uuid.UUID, Grant]:
    if not event_ids:
        return {}
    result = await session.scalars(
        select(Grant).where(Grant.event_id.in_(event_ids), Grant.user_id == user_id)
    )
    return {grant.event_id: grant for grant in result}


async def get_role(session: AsyncSession, event_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    return await session.scalar(
        select(Grant.role).where(Grant.event_id == event_id, Grant.user_id == user_id)
    )


async def grants_of_event(session: AsyncSession, event_id: uuid.UUID) -> Sequence[Grant]:
    result = await session.scalars(select(Grant).where(Grant.event_id == event_id))
    return result.all()


async def grants_of_user(
    session: AsyncSession, user_id: uuid.UUID, role: Role | None
) -> Sequence[tuple[str, str]]:
    """(event id as text, role) of every grant of a user. A user may hold tens of
    thousands: PostgreSQL renders the ids, sparing a UUID object per row."""
    query = select(cast(Grant.event_id, Text), Grant.role).where(Grant.user_id == user_id)
    if role is not None:
        query = query.where(Grant.role == role.value)
    return (await session.execute(query)).tuples().all()


async def count_owners(session: AsyncSession, event_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Grant)
        .where(Grant.event_id == event_id, Grant.role == Role.OWNER.value)
    )
    return int(count or 0)


def add_grant(session: AsyncSession, grant: Grant) -> None:
    session.add(grant)


async def delete_grant(session: AsyncSession, event_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await session.execute(delete(Grant).where(Grant.event_id == event_id, Grant.user_id == user_id))


async def record_change(
    session: AsyncSession,
    namespace: str,
    acl: EventAcl,
    user_id: uuid.UUID,
    role: str | None,
    previous_role: str | None,
    actor_id: uuid.UUID,
    now: datetime,
) -> None:
    """Audit one change and enqueue its notification, both in the caller's transaction."""
    acl.last_sequence += 1
    sequence = acl.last_sequence
    session.add(
        PermissionChange(
            event_id=acl.event_id,
            sequence=sequence,
            user_id=user_id,
            role=role,
            previous_role=previous_role,
            actor_id=actor_id,
            occurred_at=now,
        )
    )
    subject, msg_id, payload = _notification(
        namespace, acl.event_id, sequence, user_id, role, previous_role, actor_id, now
    )
    await outbox_queue.enqueue(session, outbox, subject=subject, msg_id=msg_id, payload=payload)


def _notification(
    namespace: str,
    event_id: uuid.UUID,
    sequence: int,
    user_id: uuid.UUID,
    role: str | None,
    previous_role: str | None,
    actor_id: uuid.UUID,
    now: datetime,
) -> tuple[str, str, bytes]:
    notice = PermissionChangeNotice(
        event_id=str(event_id),
        user_id=str(user_id),
        role=role,
        previous_role=previous_role,
        actor_id=str(actor_id),
        occurred_at=rfc3339(now),
        sequence=sequence,
    )
    return (
        sharing_subject(namespace, str(event_id)),
        f"{event_id}:perm:{sequence}",
        orjson.dumps(notice.model_dump()),
    )


async def record_first_owners(session: AsyncSession, namespace: str, grants: list[Grant]) -> None:
    """Add the first owners of new events with their audit rows (change 1 of each
    event) and notifications, in the caller's transaction."""
    if not grants:
        return
    session.add_all(grants)
    session.add_all(
        PermissionChange(
            event_id=grant.event_id,
            sequence=1,
            user_id=grant.user_id,
            role=grant.role,
            previous_role=None,
            actor_id=grant.user_id,
            occurred_at=grant.granted_at,
        )
        for grant in grants
    )
    await outbox_queue.enqueue_many(
        session,
        outbox,
        [
            _notification(
                namespace,
                grant.event_id,
                1,
                grant.user_id,
                grant.role,
                None,
                grant.user_id,
                grant.granted_at,
            )
            for grant in grants
        ],
    )
