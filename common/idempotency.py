"""Exactly-once writes: a write's `Idempotency-Key` commits with the write itself.

The gateway keeps answers in Redis (`gateway.idempotency`), but it cannot know the
outcome of a write whose answer was lost: a COMMIT sent but not acknowledged, or a
deadline that expired after the service committed. So the key also travels with
the call (gRPC metadata, forwarded from service to service like the caller), and
the service that writes records it, with the answer it gives, in the write's own
transaction under a unique (user, key) index. A repeat looks the key up after
taking the same lock as the write it repeats: if the write committed, the first
answer is replayed (`Replayed`); if it did not, the write runs as if for the first
time. Nothing is applied twice, whatever became of the first answer.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg
from sqlalchemy import Column, DateTime, Index, LargeBinary, MetaData, Table, Text, Uuid, func
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from common.errors import Conflict, InvalidArgument

log = logging.getLogger(__name__)

KEY_METADATA = "idempotency-key"
FINGERPRINT_METADATA = "idempotency-fingerprint"
PURGE_INTERVAL = 300.0
IN_PROGRESS = "a request with this Idempotency-Key is still being processed"
# The user of keys sent without a token (registration); the gateway's scoped key
# already says the request was anonymous and which route it took.
NO_USER = "00000000-0000-0000-0000-000000000000"

Answer = TypeVar("Answer")
AnyConnection = AsyncConnection | psycopg.AsyncConnection


@dataclass(frozen=True, slots=True)
class RequestKey:
    """The request's key (scoped by the gateway to the route) and its body's hash."""

    key: str
    fingerprint: str


request_key_var: ContextVar[RequestKey | None] = ContextVar("request_key", default=None)


def key_metadata() -> list[tuple[str, str]]:
    """The current request's key as call metadata (none without one)."""
    request_key = request_key_var.get()
    if request_key is None:
        return []
    return [(KEY_METADATA, request_key.key), (FINGERPRINT_METADATA, request_key.fingerprint)]


def key_from_metadata(metadata: dict[str, Any]) -> RequestKey | None:
    key, fingerprint = metadata.get(KEY_METADATA), metadata.get(FINGERPRINT_METADATA)
    if not key or not fingerprint or len(key) > 128 or len(fingerprint) > 128:
        return None
    return RequestKey(key, fingerprint)


class Replayed(Exception):  # noqa: N818 (an outcome, not an error)
    """The write was applied before: `answer` is the serialized answer it got then."""

    def __init__(self, answer: bytes) -> None:
        super().__init__("replayed")
        self.answer = answer


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_keys",
        metadata,
        Column("user_id", Uuid, primary_key=True),
        Column("key", Text, primary_key=True),
        Column("fingerprint", Text, nullable=False),
        Column("answer", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )


_ROW_PARAMS = {
    "users": "user_id", "keys": "key", "fingerprints": "fingerprint", "answers": "answer"
}  # fmt: skip


class IdempotencyKeys:
    """A service's recorded keys (`idempotency_table`), each kept for `ttl` seconds."""

    def __init__(self, table: Table, ttl: float) -> None:
        name = f"{table.schema}.{table.name}"
        self._ttl = ttl
        self._select = (
            f"SELECT key, fingerprint, answer FROM {name} WHERE user_id = %(user)s"
            " AND key = ANY(%(keys)s)"
            " AND created_at > statement_timestamp() - make_interval(secs => %(ttl)s)"
        )
        # An expired row of the same key (kept until the next purge) gives way.
        self._insert = (
            f"INSERT INTO {name} (user_id, key, fingerprint, answer)"
            " SELECT * FROM unnest(%(users)s::uuid[], %(keys)s::text[],"
            " %(fingerprints)s::text[], %(answers)s::bytea[])"
            " ON CONFLICT (user_id, key) DO UPDATE SET fingerprint = excluded.fingerprint,"
            " answer = excluded.answer, created_at = statement_timestamp()"
        )
        self._purge = (
            f"DELETE FROM {name}"
            " WHERE created_at < statement_timestamp() - make_interval(secs => %(ttl)s)"
        )

    def of_call(
        self, user_id: str, serialize: Callable[[Answer], bytes]
    ) -> "IdempotentWrite[Answer] | None":
        """The current call's key, if it carries one."""
        request = request_key_var.get()
        if request is None:
            return None
        return IdempotentWrite(self, uuid.UUID(user_id), request, serialize)

    async def recorded(
        self, conn: AnyConnection, user_id: uuid.UUID, keys: list[str]
    ) -> dict[str, tuple[str, bytes]]:
        """key → (fingerprint, answer) of the user's writes with these keys."""
        rows = await _execute(conn, self._select, {"user": user_id, "keys": keys, "ttl": self._ttl})
        return {key: (fingerprint, bytes(answer)) for key, fingerprint, answer in rows}

    async def record(self, conn: AnyConnection, rows: list[dict[str, Any]]) -> None:
        """Record keys and answers (`IdempotentWrite.row`) in the caller's transaction."""
        if rows:
            params = {name: [row[column] for row in rows] for name, column in _ROW_PARAMS.items()}
            await _execute(conn, self._insert, params, fetch=False)

    async def purge_expired(
        self, transaction: Callable[[], AbstractAsyncContextManager[AnyConnection]]
    ) -> None:
        """Delete the expired keys every few minutes, until cancelled; `transaction`
        opens one on the service's database."""
        while True:
            try:
                async with transaction() as conn:
                    await _execute(conn, self._purge, {"ttl": self._ttl}, fetch=False)
            except (psycopg.Error, SQLAlchemyError, OSError) as error:
                log.warning("could not purge idempotency keys", extra={"error": repr(error)})
            await asyncio.sleep(PURGE_INTERVAL)


@dataclass(frozen=True, slots=True)
class IdempotentWrite(Generic[Answer]):
    """The key of one write, and how to serialize its answer (the gRPC response)."""

    keys: IdempotencyKeys
    user_id: uuid.UUID
    request: RequestKey
    serialize: Callable[[Answer], bytes]

    @property
    def key(self) -> str:
        return self.request.key

    async def replay_if_applied(self, conn: AnyConnection) -> None:
        """Raise `Replayed` if this key's write committed. Call it under the lock the
        write takes, so that a concurrent repeat has either committed or not begun."""
        recorded = await self.keys.recorded(conn, self.user_id, [self.key])
        if self.key in recorded:
            raise self.replay(recorded[self.key])

    def replay(self, recorded: tuple[str, bytes]) -> Exception:
        """`Replayed`, or a 422 if the key was first used with another request body."""
        fingerprint, answer = recorded
        if fingerprint != self.request.fingerprint:
            return InvalidArgument.field(
                "Idempotency-Key", "was already used with a different request body"
            )
        return Replayed(answer)

    def row(self, answer: Answer) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "key": self.key,
            "fingerprint": self.request.fingerprint,
            "answer": self.serialize(answer),
        }

    async def record(self, conn: AnyConnection, answer: Answer) -> None:
        await self.keys.record(conn, [self.row(answer)])


def in_progress() -> Conflict:
    """The answer to a repeat that arrives while its first request still runs."""
    return Conflict(IN_PROGRESS)


async def _execute(
    conn: AnyConnection,
    sql: str,
    params: dict[str, Any],
    fetch: bool = True,
) -> list[tuple[Any, ...]]:
    if isinstance(conn, psycopg.AsyncConnection):
        cursor = await conn.execute(sql, params)
        return list(await cursor.fetchall()) if fetch else []
    result = await conn.exec_driver_sql(sql, params)
    return [tuple(row) for row in result.fetchall()] if fetch else []
