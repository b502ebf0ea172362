"""Request dependencies: the gateway's connections, the authenticated user, rate limits."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from limits import RateLimitItem
from redis.exceptions import RedisError

from common.errors import Unauthenticated
from common.grpc_server import caller_var
from common.tokens import Caller
from gateway.clients import Gateway
from gateway.errors import HTTPProblem
from gateway.middleware import add_response_headers
from gateway.ratelimit import client_ip

# Declares the OAuth2 password flow in OpenAPI, so Swagger's "Authorize" logs in.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/login", auto_error=False)


def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


Services = Annotated[Gateway, Depends(get_gateway)]


async def enforce_limit(
    request: Request, gateway: Gateway, limit: RateLimitItem, *key: str
) -> None:
    decision = await gateway.limiter.hit(limit, *key)
    add_response_headers(request.scope, decision.headers())
    if not decision.allowed:
        raise HTTPProblem(429, "rate limit exceeded, retry later", headers=decision.headers())


async def login_rate_limit(request: Request, gateway: Services) -> None:
    """One budget per client IP shared by login and register."""
    await enforce_limit(
        request,
        gateway,
        gateway.login_limit,
        "login",
        client_ip(request.scope, gateway.trusted_proxies),
    )


async def refresh_rate_limit(request: Request, gateway: Services) -> None:
    await enforce_limit(
        request,
        gateway,
        gateway.refresh_limit,
        "refresh",
        client_ip(request.scope, gateway.trusted_proxies),
    )


async def current_user(
    request: Request, gateway: Services, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Caller:
    """The verified, unrevoked caller; their requests count against their rate budget.

    The deny-list fails closed: if Redis cannot say whether a token was revoked,
    the request gets 503 rather than risk accepting a logged-out token.
    """
    if token is None:
        raise Unauthenticated("missing or malformed Authorization: Bearer header")
    caller = await gateway.verifier.verify(token)
    try:
        revoked = await gateway.redis.exists(gateway.settings.redis_key("denylist", caller.jti))
    except RedisError:
        raise HTTPProblem(
            503, "token revocation list unavailable", headers={"Retry-After": "1"}
        ) from None
    if revoked:
        raise Unauthenticated("access token revoked")
    caller_var.set(caller)
    await enforce_limit(request, gateway, gateway.user_limit, "user", caller.user_id)
    return caller


CurrentUser = Annotated[Caller, Depends(current_user)]
