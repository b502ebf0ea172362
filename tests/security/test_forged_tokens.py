"""Every forged, stale or revoked access token is refused (401) on every event, sharing and
history route, and changes nothing. (The auth routes and the verifier itself have their
own tests in tests/e2e/test_auth.py and tests/unit/test_tokens.py.)"""

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from auth_service.keys import SigningKey
from tests.conftest import User
from tests.e2e.helpers import assert_problem
from tests.security.conftest import END, START, create_event, event_routes, snapshot

ISSUER, AUDIENCE = "eventhub-auth", "eventhub"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def claims_of(user: User, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user.id,
        "username": user.username,
        "typ": "access",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    return {**claims, **overrides}


def sign(claims: dict[str, Any], key: SigningKey) -> str:
    return jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


def alg_none(user: User, key: SigningKey, **_: Any) -> str:
    return unsigned({"alg": "none", "kid": key.kid, "typ": "JWT"}, claims_of(user)) + "."


def hs256_with_public_key(user: User, key: SigningKey, **_: Any) -> str:
    """The classic confusion: HMAC keyed with the (public) verification key."""
    signing_input = unsigned({"alg": "HS256", "kid": key.kid, "typ": "JWT"}, claims_of(user))
    mac = hmac.new(key.public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def other_key(user: User, key: SigningKey, **_: Any) -> str:
    """Signed by an attacker's Ed25519 key that claims the real key id."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    forged = SigningKey.from_pem(pem)
    return jwt.encode(
        claims_of(user), forged.private_key, algorithm="EdDSA", headers={"kid": key.kid}
    )


def tampered(user: User, key: SigningKey, *, attacker: User, **_: Any) -> str:
    """The attacker's genuine token with the payload swapped for the victim's."""
    header, _, signature = attacker.access_token.split(".")
    payload = jwt.decode(attacker.access_token, options={"verify_signature": False})
    payload.update(sub=user.id, username=user.username)
    return f"{header}.{b64(json.dumps(payload).encode())}.{signature}"


def revoked(user: User, key: SigningKey, *, api: httpx.Client, **_: Any) -> str:
    """A token of the victim's that was logged out (its jti is deny-listed)."""
    login = api.post("/api/auth/login", json={"username": user.username, "password": user.password})
    token = login.json()["access_token"]
    logout = api.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert logout.status_code == 204
    return token


def with_claims(**overrides: Any) -> Callable[..., str]:
    def forge(user: User, key: SigningKey, **_: Any) -> str:
        return sign(claims_of(user, **overrides), key)

    return forge


FORGERIES: dict[str, Callable[..., str]] = {
    "alg-none": alg_none,
    "hs256-signed-with-public-key": hs256_with_public_key,
    "signed-by-another-key": other_key,
    "tampered-payload": tampered,
    "expired": with_claims(exp=int(time.time()) - 120),
    "not-yet-valid": with_claims(nbf=int(time.time()) + 3600),
    "wrong-issuer": with_claims(iss="evil-auth"),
    "wrong-audience": with_claims(aud="another-api"),
    "refresh-type": with_claims(typ="refresh"),
    "deny-listed-jti": revoked,
}


@pytest.fixture
def victim(api: httpx.Client, make_user) -> tuple[User, dict[str, Any]]:
    owner: User = make_user("victim")
    return owner, create_event(api, owner)


def test_a_token_signed_like_the_auth_service_is_accepted(
    api: httpx.Client, victim, signing_key: SigningKey
) -> None:
    """The forgeries below differ from this control in one respect each."""
    owner, event = victim
    token = sign(claims_of(owner), signing_key)
    response = api.get(f"/api/events/{event['id']}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
def test_forged_token_is_401_on_every_route_and_changes_nothing(
    api: httpx.Client, make_user, victim, signing_key: SigningKey, forgery: Callable[..., str]
) -> None:
    owner, event = victim
    before = snapshot(api, owner, event["id"])
    token = forgery(owner, signing_key, attacker=make_user("attacker"), api=api)
    headers = {"Authorization": f"Bearer {token}"}
    new_event = {"title": "x", "start_time": START, "end_time": END}
    routes = [
        ("GET", "/api/events", None),
        ("POST", "/api/events", new_event),
        ("POST", "/api/events/batch", {"events": [new_event]}),
        *event_routes(event["id"], owner.id),
    ]
    for method, path, body in routes:
        response = api.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer", (method, path)
    assert snapshot(api, owner, event["id"]) == before
    listed = api.get("/api/events", headers=owner.headers).json()["items"]
    assert [item["id"] for item in listed] == [event["id"]]
