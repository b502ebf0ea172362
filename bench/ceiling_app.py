"""Reference apps served like the gateway (same workers, uvloop, httptools).

`/ping`, the ceiling: a bare FastAPI app returning a small JSON body.

`/floor`, the least a cached read by id must do in this design, and nothing else:
the gateway's one Lua call, which checks the deny-list, decides the rate limit and
reads the cached event and the caller's role, answering the stored bytes. No JWT
check, no middleware, no JSON handling: a gateway cannot be cheaper than this app
while it keeps its rate limits and cache in Redis.
"""

import os

from fastapi import FastAPI, Header
from redis.asyncio import Redis
from starlette.responses import Response

from gateway.ratelimit import HashRead, RateLimiter, parse_limit
from gateway.responses import JSONResponse

app = FastAPI(default_response_class=JSONResponse)
_redis = Redis.from_url(os.environ.get("EVENTHUB_REDIS_URL", "redis://127.0.0.1:6379/0"))
_PREFIX = f"eventhub_floor_{os.getpid()}"
_limiter = RateLimiter(_redis, key_prefix=f"{_PREFIX}:ratelimit")
_LIMIT = parse_limit("100000000/minute")
_ENTRY = HashRead(f"{_PREFIX}:event", ("event", "access_version", "u:user"))


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/floor")
async def floor(authorization: str = Header("")) -> Response:
    admission = await _limiter.hit_unless_revoked_reading(
        f"{_PREFIX}:denied:{authorization[-16:]}", _LIMIT, "user", read=_ENTRY
    )
    payload = admission.values[0] if admission.values else None
    return Response(payload or b"{}", media_type="application/json")
