"""Request dependencies: the gateway's connections, the authenticated user, rate limits.

All are `async def`: FastAPI runs a plain `def` dependency in a thread pool, which
costs more than anything these do.
"""

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from redis.exceptions import RedisError

from common.errors import Unauthenticated
from common.grpc_server import caller_var
from common.tokens import Caller
from gateway.clients import Gateway
from gateway.errors import HTTPProblem
from gateway.middleware import add_response_headers
from gateway.ratelimit import Decision, HashRead, Limit, client_ip, client_network


async def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


Services = Annotated[Gateway, Depends(get_gateway)]


def apply_decision(request: Request, decision: Decision) -> None:
    """Rate-limit headers on whatever the request answers; 429 when refused."""
    headers = decision.headers()
    add_response_headers(request.scope, headers)
    if not decision.allowed:
        raise HTTPProblem(429, "rate limit exceeded, retry later", headers=headers)


async def _limit_per_address(request: Request, gateway: Gateway, limit: Limit, budget: str) -> None:
    address = client_network(client_ip(request.scope, gateway.trusted_proxies))
    apply_decision(request, await gateway.limiter.hit(limit, budget, address))


async def login_rate_limit(request: Request, gateway: Services) -> None:
    """One budget per client IP shared by login and register."""
    await _limit_per_address(request, gateway, gateway.login_limit, "login")


async def limit_login_per_username(request: Request, gateway: Services, login: str) -> None:
    """Beside the per-address budget: attempts on one account from many addresses.
    Its headers are sent only when it refuses (the per-address budget's otherwise)."""
    decision = await gateway.limiter.hit(gateway.login_user_limit, "login-user", login.casefold())
    if not decision.allowed:
        apply_decision(request, decision)


async def refresh_rate_limit(request: Request, gateway: Services) -> None:
    await _limit_per_address(request, gateway, gateway.refresh_limit, "refresh")


class CallerScheme(OAuth2PasswordBearer):
    """The verified, unrevoked caller; their requests count against their rate budget.

    An OAuth2 bearer scheme, so that OpenAPI declares it (Swagger's "Authorize" logs
    in), that is itself the dependency: one dependency to solve per request, not three.
    The deny-list and the budget are one Redis round trip. The deny-list fails
    closed: if Redis cannot say whether a token was revoked, the request gets 503
    rather than risk accepting a logged-out token.
    """

    def __init__(self) -> None:
        super().__init__(
            tokenUrl="/api/auth/login", scheme_name="OAuth2PasswordBearer", auto_error=False
        )

    async def __call__(self, request: Request) -> Caller:  # type: ignore[override]
        gateway, caller = await self._verify(request)
        await self._admit(request, gateway, caller)
        return caller

    async def _verify(self, request: Request) -> tuple[Gateway, Caller]:
        token = await super().__call__(request)
        if token is None:
            raise Unauthenticated("missing or malformed Authorization: Bearer header")
        gateway: Gateway = request.app.state.gateway
        return gateway, await gateway.verifier.verify(token)

    async def _admit(
        self, request: Request, gateway: Gateway, caller: Caller, read: HashRead | None = None
    ) -> list[bytes | None] | None:
        """Deny-list and rate budget, plus `read` in the same round trip (its values)."""
        try:
            admission = await gateway.limiter.hit_unless_revoked_reading(
                gateway.settings.redis_key("denylist", caller.jti),
                gateway.user_limit,
                "user",
                caller.user_id,
                read=read,
            )
        except RedisError:
            gateway.cached_events.redis_failed()
            raise HTTPProblem(
                503, "token revocation list unavailable", headers={"Retry-After": "1"}
            ) from None
        if admission.decision is None:
            raise Unauthenticated("access token revoked")
        caller_var.set(caller)
        apply_decision(request, admission.decision)
        return admission.values


class CallerReadingEvent(CallerScheme):
    """`CallerScheme` for reads of the path's `event_id` that answers the event as
    response fields with the caller's role if it is cached (else None): they come back
    in the admission's round trip, so that a cached read by id costs one Redis call.

    The read by id calls it itself (`cached_event_for_caller`) instead of declaring it
    as a dependency: solving the route's dependencies cost a third of the gateway's
    CPU on that read, the most frequent request (bench/RESULTS.md)."""

    async def __call__(self, request: Request) -> dict[str, Any] | None:  # type: ignore[override]
        gateway, caller = await self._verify(request)
        read = gateway.cached_events.entry_read(request.path_params["event_id"], caller)
        values = await self._admit(request, gateway, caller, read)
        return gateway.cached_events.event(values)


CurrentUser = Annotated[Caller, Depends(CallerScheme())]
cached_event_for_caller = CallerReadingEvent()
