"""Verifying access tokens, in the gateway and in every service.

The auth service signs access tokens with an Ed25519 key (JWS `EdDSA`) named by
`kid`. Verifiers hold the public keys and fetch them again (at most once per
`refetch_interval`) when a token names a key they do not know, e.g. after rotation.
"""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from common.errors import Unauthenticated, Unavailable

ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified user behind an access token."""

    user_id: str
    username: str
    jti: str
    expires_at: int
    token: str


KeyFetcher = Callable[[], Awaitable[dict[str, str]]]
# How long after its expiry a token is still accepted (clock skew between services);
# a logged-out token stays deny-listed that much longer.
EXPIRY_LEEWAY = 5


class TokenVerifier:
    def __init__(
        self,
        issuer: str,
        audience: str,
        fetch_keys: KeyFetcher,
        refetch_interval: float = 10.0,
        leeway: float = EXPIRY_LEEWAY,
        verified_capacity: int = 10_000,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._fetch_keys = fetch_keys
        self._refetch_interval = refetch_interval
        self._leeway = leeway
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._last_fetch = float("-inf")
        self._lock = asyncio.Lock()
        # Signature checks cost more than the rest of a cached read: remember
        # recent verified tokens until they expire.
        self._verified: OrderedDict[str, Caller] = OrderedDict()
        self._verified_capacity = verified_capacity

    async def refresh_keys(self) -> None:
        async with self._lock:
            pems = await self._fetch_keys()
            self._last_fetch = time.monotonic()
            keys = {}
            for kid, pem in pems.items():
                key = load_pem_public_key(pem.encode())
                if isinstance(key, Ed25519PublicKey):
                    keys[kid] = key
            self._keys = keys

    async def _key_for(self, kid: str) -> Ed25519PublicKey | None:
        if kid not in self._keys and time.monotonic() - self._last_fetch > self._refetch_interval:
            try:
                await self.refresh_keys()
            except Exception:  # the auth service may be down; known keys still work
                if not self._keys:
                    # Without any key no token can be checked: not the client's fault.
                    raise Unavailable("cannot fetch the token signing keys; retry later") from None
        return self._keys.get(kid)

    async def verify(self, token: str) -> Caller:
        """The caller a token proves, or Unauthenticated. Does not consult the deny-list."""
        cached = self._verified.get(token)
        if cached is not None and cached.expires_at > time.time():
            self._verified.move_to_end(token)
            return cached
        caller = await self._verify_signed(token)
        self._verified[token] = caller
        if len(self._verified) > self._verified_capacity:
            self._verified.popitem(last=False)
        return caller

    async def _verify_signed(self, token: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed access token") from None
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise Unauthenticated("unsupported token algorithm or key")
        key = await self._key_for(kid)
        if key is None:
            raise Unauthenticated("unknown signing key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("access token expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("invalid access token") from None
        if claims.get("typ") != "access":
            raise Unauthenticated("not an access token")
        return Caller(
            user_id=str(claims["sub"]),
            username=str(claims.get("username", "")),
            jti=str(claims["jti"]),
            expires_at=int(claims["exp"]),
            token=token,
        )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
