"""All SQL of the sharing service: the permission audit trail and free/busy grants."""

import uuid
from collections.abc import Collection, Sequence

import orjson
from sqlalchemy import delete, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service.models import FreeBusyGrant, PermissionChange

# Fixed SQL with the rows as one JSON parameter: prepared once, not compiled per batch.
_ADD_PERMISSION_CHANGES = text(f"""
    INSERT INTO {PermissionChange.__table__.fullname}
        (event_id, sequence, user_id, role, previous_role, actor_id, occurred_at)
    SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS given(event_id uuid,
        sequence bigint, user_id uuid, role text, previous_role text, actor_id uuid,
        occurred_at timestamptz)
    ON CONFLICT (event_id, sequence) DO NOTHING
""")


async def add_permission_changes(session: AsyncSession, rows: list[dict]) -> None:
    """Store audit records; one already stored (same event and sequence) is kept as is."""
    if rows:
        await session.execute(_ADD_PERMISSION_CHANGES, {"rows": orjson.dumps(rows).decode()})


async def put_freebusy_grant(
    session: AsyncSession, owner_id: uuid.UUID, grantee_id: uuid.UUID, grantee_username: str
) -> tuple[FreeBusyGrant, bool]:
    """The owner's grant to the user, and whether this made it (else it was there, and
    keeps its first `granted_at`): one statement, so no race between the two."""
    statement = insert(FreeBusyGrant).values(
        owner_id=owner_id, grantee_id=grantee_id, grantee_username=grantee_username
    )
    row = (
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["owner_id", "grantee_id"],
                set_={"grantee_username": statement.excluded.grantee_username},
            ).returning(FreeBusyGrant, literal_column("xmax = 0"))  # 0: inserted, not updated
        )
    ).one()
    return row[0], row[1]


async def list_freebusy_grants(
    session: AsyncSession, owner_id: uuid.UUID
) -> Sequence[FreeBusyGrant]:
    """The owner's grants, oldest first."""
    result = await session.scalars(
        select(FreeBusyGrant)
        .where(FreeBusyGrant.owner_id == owner_id)
        .order_by(FreeBusyGrant.granted_at, FreeBusyGrant.grantee_id)
    )
    return result.all()


async def delete_freebusy_grant(
    session: AsyncSession, owner_id: uuid.UUID, grantee_id: uuid.UUID
) -> bool:
    """Whether there was such a grant."""
    deleted = await session.scalar(
        delete(FreeBusyGrant)
        .where(FreeBusyGrant.owner_id == owner_id, FreeBusyGrant.grantee_id == grantee_id)
        .returning(FreeBusyGrant.owner_id)
    )
    return deleted is not None


async def granters_of(
    session: AsyncSession, grantee_id: uuid.UUID, owner_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Those of `owner_ids` who let `grantee_id` see their free/busy."""
    if not owner_ids:
        return set()
    result = await session.scalars(
        select(FreeBusyGrant.owner_id).where(
            FreeBusyGrant.grantee_id == grantee_id, FreeBusyGrant.owner_id.in_(owner_ids)
        )
    )
    return set(result.all())
