"""All SQL of the auth service."""

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.models import RefreshToken, User
from common.errors import AlreadyExists


async def add_user(session: AsyncSession, username: str, email: str, password_hash: str) -> User:
    user = User(username=username, email=email, password_hash=password_hash)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise AlreadyExists("username or email is already registered") from None
    await session.refresh(user)
    return user


async def username_or_email_taken(session: AsyncSession, username: str, email: str) -> bool:
    found = await session.scalar(
        select(User.id).where(
            or_(
                func.lower(User.username) == username.lower(),
                func.lower(User.email) == email.lower(),
            )
        )
    )
    return found is not None


async def find_user_by_login(session: AsyncSession, login: str) -> User | None:
    column = User.email if "@" in login else User.username
    return await session.scalar(select(User).where(func.lower(column) == login.lower()))


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def find_users(
    session: AsyncSession, user_ids: Sequence[uuid.UUID], usernames: Sequence[str]
) -> Sequence[User]:
    lowered = [name.lower() for name in usernames]
    result = await session.scalars(
        select(User).where(or_(User.id.in_(user_ids), func.lower(User.username).in_(lowered)))
    )
    return result.all()


async def add_refresh_token(
    session: AsyncSession,
    token_hash: bytes,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    expires_at: datetime,
) -> None:
    session.add(
        RefreshToken(
            token_hash=token_hash, user_id=user_id, family_id=family_id, expires_at=expires_at
        )
    )


async def lock_refresh_token(session: AsyncSession, token_hash: bytes) -> RefreshToken | None:
    return await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
    )


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def set_password_hash(session: AsyncSession, user_id: uuid.UUID, password_hash: str) -> None:
    await session.execute(
        update(User).where(User.id == user_id).values(password_hash=password_hash)
    )
