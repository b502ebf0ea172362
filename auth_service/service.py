"""The rules of users and tokens, independent of gRPC."""

import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service import repo
from auth_service.config import AuthSettings
from auth_service.keys import SigningKey
from auth_service.models import User
from auth_service.passwords import Passwords
from common.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from common.idempotency import IdempotentWrite
from common.timeutil import utcnow
from common.tokens import ALGORITHM, EXPIRY_LEEWAY, Caller

BAD_CREDENTIALS = "wrong username or password"
BAD_REFRESH_TOKEN = "refresh token is invalid, expired or revoked"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class AuthService:
    def __init__(
        self,
        settings: AuthSettings,
        sessions: async_sessionmaker,
        redis: Redis,
        signing_key: SigningKey,
    ) -> None:
        self.settings = settings
        self._sessions = sessions
        self._redis = redis
        self.signing_key = signing_key
        self.passwords = Passwords(settings)

    async def register(
        self,
        username: str,
        email: str,
        password: str,
        once: IdempotentWrite[User] | None = None,
    ) -> User:
        """A new user; with an idempotency key (`once`), a repeat of a registration
        that was applied gets its first answer, not "already registered"."""
        _validate_registration(username, email, password)
        async with self._sessions() as session:
            if once:
                await once.replay_if_applied(await session.connection())
            if await repo.username_or_email_taken(session, username, email):
                raise AlreadyExists("username or email is already registered")
        password_hash = await self.passwords.hash(password)
        async with self._sessions() as session, session.begin():
            user = await repo.add_user(session, username, email, password_hash)
            if once:
                await once.record(await session.connection(), user)
            return user

    async def login(self, login: str, password: str) -> TokenPair:
        async with self._sessions() as session:
            user = await repo.find_user_by_login(session, login)
        stored_hash = user.password_hash if user else self.passwords.unknown_user_hash
        matches = await self.passwords.matches(stored_hash, password)
        if user is None or not matches:
            raise Unauthenticated(BAD_CREDENTIALS)
        new_hash = None
        if self.passwords.needs_rehash(user.password_hash):
            new_hash = await self.passwords.hash(password)
        async with self._sessions() as session, session.begin():
            if new_hash is not None:
                await repo.set_password_hash(session, user.id, new_hash)
            return await self._issue(session, user, family_id=uuid.uuid4())

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token. A rotated token presented again revokes its family."""
        now = utcnow()
        async with self._sessions() as session, session.begin():
            stored = await repo.lock_refresh_token(session, hash_refresh_token(refresh_token))
            if stored is None or stored.revoked_at is not None or stored.expires_at <= now:
                raise Unauthenticated(BAD_REFRESH_TOKEN)
            if stored.rotated_at is not None:
                await repo.revoke_family(session, stored.family_id, now)
                # Commit the revocation even though the call fails.
                await session.commit()
                raise Unauthenticated(BAD_REFRESH_TOKEN)
            stored.rotated_at = now
            user = await repo.get_user(session, stored.user_id)
            if user is None:
                raise Unauthenticated(BAD_REFRESH_TOKEN)
            return await self._issue(session, user, stored.family_id)

    async def logout(self, caller: Caller, refresh_token: str) -> None:
        """Deny-list the access token for as long as it is accepted (until its expiry
        and the leeway after) and revoke the refresh token's family."""
        ttl = caller.expires_at + EXPIRY_LEEWAY - int(time.time())
        if ttl > 0:
            await self._redis.set(self.settings.redis_key("denylist", caller.jti), b"1", ex=ttl)
        if not refresh_token:
            return
        async with self._sessions() as session, session.begin():
            stored = await repo.lock_refresh_token(session, hash_refresh_token(refresh_token))
            if stored is not None and str(stored.user_id) == caller.user_id:
                await repo.revoke_family(session, stored.family_id, utcnow())

    async def get_user(self, user_id: str) -> User:
        parsed = _parse_uuid(user_id)
        async with self._sessions() as session:
            user = await repo.get_user(session, parsed) if parsed else None
        if user is None:
            raise NotFound("user not found")
        return user

    async def lookup_users(self, user_ids: list[str], usernames: list[str]) -> list[User]:
        ids = [parsed for value in user_ids if (parsed := _parse_uuid(value))]
        if not ids and not usernames:
            return []
        async with self._sessions() as session:
            return list(await repo.find_users(session, ids, usernames))

    async def _issue(self, session: AsyncSession, user: User, family_id: uuid.UUID) -> TokenPair:
        """A new access token and a refresh token of `family_id`, stored in `session`."""
        now = int(time.time())
        settings = self.settings
        claims = {
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "sub": str(user.id),
            "username": user.username,
            "typ": "access",
            "iat": now,
            "nbf": now,
            "exp": now + settings.access_token_ttl,
            "jti": uuid.uuid4().hex,
        }
        access_token = jwt.encode(
            claims,
            self.signing_key.private_key,
            algorithm=ALGORITHM,
            headers={"kid": self.signing_key.kid},
        )
        refresh_token = secrets.token_urlsafe(32)
        expires_at = utcnow() + timedelta(seconds=settings.refresh_token_ttl)
        await repo.add_refresh_token(
            session, hash_refresh_token(refresh_token), user.id, family_id, expires_at
        )
        return TokenPair(access_token, refresh_token, settings.access_token_ttl)


def _validate_registration(username: str, email: str, password: str) -> None:
    """The same rules the gateway checks, for callers that reach the service directly."""

    errors = []
    if not re.fullmatch(r"[A-Za-z0-9_.-]{3,32}", username):
        errors.append({"field": "username", "message": "3-32 characters of A-Z a-z 0-9 _ . -"})
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email) or len(email) > 320:
        errors.append({"field": "email", "message": "not a valid email address"})
    if not 8 <= len(password) <= 128:
        errors.append({"field": "password", "message": "must be 8-128 characters"})
    if errors:
        raise InvalidArgument(errors)
