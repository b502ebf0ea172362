"""Access-token verification rejects every forgery and misuse we know of."""

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from auth_service.keys import SigningKey
from common.errors import Unauthenticated
from common.tokens import TokenVerifier, bearer_token

ISSUER, AUDIENCE = "eventhub-auth", "eventhub"


def new_key() -> SigningKey:
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    return SigningKey.from_pem(pem)


KEY = new_key()


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "username": "alice",
        "typ": "access",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, object], key: SigningKey = KEY) -> str:
    return jwt.encode(payload, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})


def verifier() -> TokenVerifier:
    async def keys() -> dict[str, str]:
        return {KEY.kid: KEY.public_pem}

    return TokenVerifier(ISSUER, AUDIENCE, keys)


def verify(token: str):  # type: ignore[no-untyped-def]
    return asyncio.run(verifier().verify(token))


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_valid_token_gives_the_caller() -> None:
    payload = claims()
    caller = verify(sign(payload))
    assert caller.user_id == payload["sub"]
    assert caller.jti == payload["jti"]
    assert caller.username == "alice"


def test_alg_none_is_refused() -> None:
    token = f"{b64({'alg': 'none', 'kid': KEY.kid, 'typ': 'JWT'})}.{b64(claims())}."
    with pytest.raises(Unauthenticated):
        verify(token)


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    header = {"alg": "HS256", "kid": KEY.kid, "typ": "JWT"}
    signing_input = f"{b64(header)}.{b64(claims())}"
    mac = hmac.new(KEY.public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    with pytest.raises(Unauthenticated):
        verify(token)


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": int(time.time()) - 60},
        {"nbf": int(time.time()) + 3600},
        {"iss": "someone-else"},
        {"aud": "another-api"},
        {"typ": "refresh"},
        {"jti": None},
        {"sub": None},
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "wrong-audience",
        "not-access",
        "no-jti",
        "no-sub",
    ],
)
def test_bad_claims_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(Unauthenticated):
        verify(sign(claims(**overrides)))


def test_tampered_payload_is_refused() -> None:
    header, _, signature = sign(claims()).split(".")
    forged = f"{header}.{b64(claims(sub=str(uuid.uuid4())))}.{signature}"
    with pytest.raises(Unauthenticated):
        verify(forged)


def test_token_of_an_unknown_key_is_refused() -> None:
    with pytest.raises(Unauthenticated):
        verify(sign(claims(), new_key()))


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "...", "eyJ.eyJ.sig"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(Unauthenticated):
        verify(garbage)


def test_unknown_kid_refetches_keys_once() -> None:
    rotated = new_key()
    fetches = 0

    async def keys() -> dict[str, str]:
        nonlocal fetches
        fetches += 1
        return {rotated.kid: rotated.public_pem}

    async def scenario() -> None:
        checker = TokenVerifier(ISSUER, AUDIENCE, keys, refetch_interval=60)
        assert (await checker.verify(sign(claims(), rotated))).username == "alice"
        with pytest.raises(Unauthenticated):
            await checker.verify(sign(claims(), new_key()))

    asyncio.run(scenario())
    assert fetches == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("Basic abc", None),
        ("Bearer ", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected
