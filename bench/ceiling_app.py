"""Reference apps served like the gateway (same workers, uvloop, httptools).

`/ping`, the ceiling: a bare FastAPI app returning a small JSON body.

`/floor`, the least a cached read by id must do in this design, and nothing else:
the deny-list check and rate-limit decision (the gateway's own one Lua call) and the
one HMGET of the cached event and the caller's role, answering the stored bytes. No
JWT check, no middleware, no JSON handling: a gateway cannot be cheaper than this
app while it keeps its rate limits and cache in Redis.
"""

import os

from fastapi import FastAPI, Header
from redis.asyncio import Redis
from starlette.responses import Response

from gateway.ratelimit import RateLimiter, parse_limit
from gateway.responses import JSONResponse

app = FastAPI(default_response_class=JSONResponse)
_redis = Redis.from_url(os.environ.get("EVENTHUB_REDIS_URL", "redis://127.0.0.1:6379/0"))
_PREFIX = f"eventhub_floor_{os.getpid()}"
_limiter = RateLimiter(_redis, key_prefix=f"{_PREFIX}:ratelimit")
_LIMIT = parse_limit("100000000/minute")
_ENTRY = f"{_PREFIX}:event"


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/floor")
async def floor(authorization: str = Header("")) -> Response:
    await _limiter.hit_unless_revoked(f"{_PREFIX}:denied:{authorization[-16:]}", _LIMIT, "user")
    payload, _, _ = await _redis.hmget(_ENTRY, ("event", "access_version", "u:user"))
    return Response(payload or b"{}", media_type="application/json")
