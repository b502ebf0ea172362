"""Request dependencies: the gateway's connections, the authenticated user, rate limits.

All are `async def`: FastAPI runs a plain `def` dependency in a thread pool, which
costs more than anything these do.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from redis.exceptions import RedisError

from common.errors import Unauthenticated
from common.grpc_server import caller_var
from common.tokens import Caller
from gateway.clients import Gateway
from gateway.errors import HTTPProblem
from gateway.middleware import add_response_headers
from gateway.ratelimit import Decision, Limit, client_ip

# Declares the OAuth2 password flow in OpenAPI, so Swagger's "Authorize" logs in.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/login", auto_error=False)


async def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


Services = Annotated[Gateway, Depends(get_gateway)]


def apply_decision(request: Request, decision: Decision) -> None:
    """Rate-limit headers on whatever the request answers; 429 when refused."""
    headers = decision.headers()
    add_response_headers(request.scope, headers)
    if not decision.allowed:
        raise HTTPProblem(429, "rate limit exceeded, retry later", headers=headers)


async def _limit_per_ip(request: Request, gateway: Gateway, limit: Limit, budget: str) -> None:
    ip = client_ip(request.scope, gateway.trusted_proxies)
    apply_decision(request, await gateway.limiter.hit(limit, budget, ip))


async def login_rate_limit(request: Request, gateway: Services) -> None:
    """One budget per client IP shared by login and register."""
    await _limit_per_ip(request, gateway, gateway.login_limit, "login")


async def refresh_rate_limit(request: Request, gateway: Services) -> None:
    await _limit_per_ip(request, gateway, gateway.refresh_limit, "refresh")


async def current_user(
    request: Request, gateway: Services, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Caller:
    """The verified, unrevoked caller; their requests count against their rate budget.

    The deny-list and the budget are one Redis round trip. The deny-list fails
    closed: if Redis cannot say whether a token was revoked, the request gets 503
    rather than risk accepting a logged-out token.
    """
    if token is None:
        raise Unauthenticated("missing or malformed Authorization: Bearer header")
    caller = await gateway.verifier.verify(token)
    try:
        decision = await gateway.limiter.hit_unless_revoked(
            gateway.settings.redis_key("denylist", caller.jti),
            gateway.user_limit,
            "user",
            caller.user_id,
        )
    except RedisError:
        gateway.cached_events.redis_failed()
        raise HTTPProblem(
            503, "token revocation list unavailable", headers={"Retry-After": "1"}
        ) from None
    if decision is None:
        raise Unauthenticated("access token revoked")
    caller_var.set(caller)
    apply_decision(request, decision)
    return caller


CurrentUser = Annotated[Caller, Depends(current_user)]
