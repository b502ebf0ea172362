"""`Idempotency-Key` on POST routes: a repeat with the same key, user and body
within the TTL gets the first response and applies nothing again.

Only final answers are replayed (2xx, 409, 412, 422); after a 429, a 5xx or an answer
that may change (401, 403, 404) a repeat runs again, and the service that writes
replays the write if it was applied after all (its key commits with the write:
`common.idempotency`), so a repeat after a 5xx is not applied twice either. Answers
that carry tokens (login, refresh) are never stored; the others are stored sealed
(AES-GCM) with a key derived from the Idempotency-Key itself, which Redis never
holds: what Redis keeps (a feed URL's secret, an event) is unreadable without it. In
every case the body's fingerprint is kept, so the key is refused with another body
(422). While the first request is still running, a repeat gets 409. If Redis cannot be
reached, a request carrying a key gets 503: applying a write twice would be worse.
"""

import base64
import hashlib
import hmac
import logging
import os

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import DomainError
from common.idempotency import IN_PROGRESS, RequestKey, request_key_var
from common.tokens import bearer_token
from gateway.clients import Gateway
from gateway.errors import problem_response

log = logging.getLogger(__name__)

HEADER = b"idempotency-key"
# How long a request may hold its key before a repeat may take over.
IN_PROGRESS_TTL = 60
_REPLAYED_HEADERS = {"content-type", "location", "etag"}
_FINAL = {409, 412, 422}
_TOKEN_ANSWERS = {"/api/auth/login", "/api/auth/refresh"}


# POST routes that only read (a query too large for a URL): nothing to apply twice.
READS_BY_POST = frozenset({"/api/freebusy"})


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = (
            _header(scope, HEADER)
            if scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] not in READS_BY_POST
            else None
        )
        if key is None:
            await self.app(scope, receive, send)
            return
        if not 1 <= len(key) <= 255:
            response = problem_response(
                422,
                detail="Idempotency-Key must be 1-255 characters",
                title="Validation failed",
                errors=[{"field": "Idempotency-Key", "message": "must be 1-255 characters"}],
            )
            await response(scope, receive, send)
            return

        gateway = scope["app"].state.gateway
        body, receive = await _buffer_body(receive)
        user = await _user_scope(gateway, scope)
        scoped_key = hashlib.sha256(f"{user}\0{scope['path']}\0{key}".encode()).hexdigest()
        record_key = gateway.settings.redis_key("idempotency", scoped_key)
        seal = _Seal(key, scoped_key)
        fingerprint = hashlib.sha256(body).hexdigest()
        try:
            claimed = await gateway.redis.set(
                record_key, orjson.dumps({"fingerprint": fingerprint}), nx=True, ex=IN_PROGRESS_TTL
            )
            stored = None if claimed else await gateway.redis.get(record_key)
        except RedisError:
            await problem_response(
                503,
                detail="idempotency store unavailable; retry later",
                headers={"Retry-After": "1"},
            )(scope, receive, send)
            return
        if not claimed:
            record = orjson.loads(stored) if stored else None
            if not _runs_again(record, fingerprint):
                await _answer_repeat(record, fingerprint, seal, scope, receive, send)
                return

        # The services that write record the key with the write (`common.idempotency`).
        request_key_var.set(RequestKey(scoped_key, fingerprint))
        captured = _CapturedResponse(send)
        try:
            await self.app(scope, receive, captured.send)
        finally:
            keep_answer = scope["path"] not in _TOKEN_ANSWERS
            await _finish(gateway, record_key, fingerprint, captured, keep_answer, seal)


def _runs_again(record: dict | None, fingerprint: str) -> bool:
    """A repeat of a request whose answer was not kept (not final, or it carried tokens)."""
    return bool(record) and record.get("kept") is False and record["fingerprint"] == fingerprint


class _Seal:
    """Seals a stored answer's body with a key only the client's Idempotency-Key gives
    (Redis holds a hash of it, `scoped_key`, not the key)."""

    def __init__(self, idempotency_key: str, scoped_key: str) -> None:
        key = hmac.digest(idempotency_key.encode(), b"answer\0" + scoped_key.encode(), "sha256")
        self._aead = AESGCM(key)
        self._context = scoped_key.encode()

    def seal(self, body: bytes) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, body, self._context)).decode()

    def open(self, sealed: str) -> bytes | None:
        data = base64.b64decode(sealed)
        try:
            return self._aead.decrypt(data[:12], data[12:], self._context)
        except InvalidTag:
            return None


def _stored_body(record: dict, seal: _Seal) -> bytes | None:
    if "sealed" in record:
        return seal.open(record["sealed"])
    body = record.get("body")  # stored before answers were sealed
    return body.encode("latin-1") if body is not None else None


async def _answer_repeat(
    record: dict | None,
    fingerprint: str,
    seal: _Seal,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    body = _stored_body(record, seal) if record else None
    if record is None or ("status" not in record and record.get("kept") is not False):
        response = problem_response(409, detail=IN_PROGRESS)
    elif record["fingerprint"] != fingerprint:
        response = problem_response(
            422,
            detail="Idempotency-Key was already used with a different request body",
            title="Validation failed",
            errors=[{"field": "Idempotency-Key", "message": "reused with a different body"}],
        )
    elif body is None:
        response = problem_response(409, detail="the stored answer cannot be read; retry later")
    else:
        await send(
            {
                "type": "http.response.start",
                "status": record["status"],
                "headers": [(k.encode(), v.encode()) for k, v in record["headers"]]
                + [(b"idempotent-replayed", b"true")],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    await response(scope, receive, send)


async def _finish(
    gateway,  # type: ignore[no-untyped-def]
    record_key: str,
    fingerprint: str,
    captured: "_CapturedResponse",
    keep_answer: bool,
    seal: _Seal,
) -> None:
    status = captured.status
    final = status is not None and (200 <= status < 300 or status in _FINAL)
    try:
        record: dict = {"fingerprint": fingerprint, "kept": final and keep_answer}
        if record["kept"]:
            record |= {
                "status": status,
                "headers": captured.headers,
                "sealed": seal.seal(bytes(captured.body)),
            }
        await gateway.redis.set(
            record_key, orjson.dumps(record), ex=gateway.settings.idempotency_ttl
        )
    except RedisError:
        log.warning("could not store an idempotent response", exc_info=True)


class _CapturedResponse:
    def __init__(self, send: Send) -> None:
        self._send = send
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in message.get("headers", [])
                if k.decode("latin-1").lower() in _REPLAYED_HEADERS
            ]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")
        await self._send(message)


async def _user_scope(gateway: Gateway, scope: Scope) -> str:
    """Whose key this is: the verified token's user, or anonymous for login routes."""
    token = bearer_token(_header(scope, b"authorization"))
    if token is None:
        return "anonymous"
    try:
        return (await gateway.verifier.verify(token)).user_id
    except DomainError:
        return "invalid-token"


async def _buffer_body(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body, and a receive that hands it on to the app."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
