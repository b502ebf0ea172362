"""Service identity: which internal caller a call comes through.

A user's access token says on whose behalf a call is made; it cannot say that the
call comes from another service. Two RPCs need that: the event service's
`RollbackEvent` takes the content of an earlier version, which only the history
service may supply, and its `ChangeAccess` writes access rows whose usernames and
rules only the sharing service checks. Services therefore add a service token to
every call they make (metadata `x-eventhub-service`): a JWT (HS256) naming the
service, valid for minutes, signed with the deployment's service key, which users
never hold (`EVENTHUB_SERVICE_KEY_FILE`, made by `common.keygen`). It is checked
only where a call is reserved for a service (`ServiceTokens.require`).
"""

import logging
import time
from contextvars import ContextVar

import jwt

from common.errors import PermissionDenied

log = logging.getLogger(__name__)

SERVICE_METADATA = "x-eventhub-service"
ISSUER = "eventhub-services"
TOKEN_TTL = 300
# A token is renewed this long before it expires, so none expires in flight.
RENEW_BEFORE = 60
MIN_KEY_BYTES = 32

service_token_var: ContextVar[str | None] = ContextVar("service_token", default=None)


class ServiceTokens:
    """Tokens of the services sharing one service key: `mint` for the calls this
    service makes, `require` for the calls it serves."""

    def __init__(self, key: bytes, name: str) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the service key must hold at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._name = name
        self._token = ""
        self._renew_at = 0.0

    def mint(self) -> str:
        """This service's current token (made anew only when close to expiring)."""
        now = time.time()
        if now >= self._renew_at:
            claims = {"iss": ISSUER, "aud": ISSUER, "sub": self._name, "iat": int(now)}
            claims["exp"] = int(now) + TOKEN_TTL
            self._token = jwt.encode(claims, self._key, algorithm="HS256")
            self._renew_at = now + TOKEN_TTL - RENEW_BEFORE
        return self._token

    def require(self, service: str, action: str) -> None:
        """PermissionDenied unless the current call carries a valid token of `service`:
        a user calling directly, or anyone with a forged token, may not `action`."""
        token = service_token_var.get()
        if token is not None:
            try:
                claims = jwt.decode(
                    token,
                    self._key,
                    algorithms=["HS256"],
                    audience=ISSUER,
                    issuer=ISSUER,
                    options={"require": ["exp", "iat", "sub"]},
                )
            except jwt.InvalidTokenError as error:
                log.warning("refused a service token", extra={"error": repr(error)})
            else:
                if claims["sub"] == service:
                    return
        raise PermissionDenied(f"only the {service} service may {action}")
