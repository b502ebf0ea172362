"""Reference apps served like the gateway (same workers, uvloop, httptools).

`/ping`, the ceiling: a bare FastAPI app returning a small JSON body.

`/floor`, the least a cached read by id must do in this design, and nothing else:
the gateway's one Lua call, which checks the deny-list, decides the rate limit and
reads the cached event and the caller's role, answering the stored bytes. No JWT
check, no middleware, no JSON handling: a gateway cannot be cheaper than this app
while it keeps its rate limits and cache in Redis.

`/floor-write`, the gateway's part of the floor of a write (`bench/write_floor.py`):
the same admission call, then the request body passed as it is to the bare write
service over gRPC, its answer returned as it is.
"""

import os

import grpc
from fastapi import FastAPI, Header, Request
from redis.asyncio import Redis
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from bench.write_floor import METHOD
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


_WRITE_SERVICE = os.environ.get("EVENTHUB_FLOOR_WRITE_ADDR", "127.0.0.1:0")
_write: grpc.aio.UnaryUnaryMultiCallable | None = None


@app.get("/floor")
async def floor(authorization: str = Header("")) -> Response:
    admission = await _limiter.hit_unless_revoked_reading(
        f"{_PREFIX}:denied:{authorization[-16:]}", _LIMIT, "user", read=_ENTRY
    )
    payload = admission.values[0] if admission.values else None
    return Response(payload or b"{}", media_type="application/json")


@app.post("/floor-write")
async def floor_write(request: Request, authorization: str = Header("")) -> Response:
    global _write
    if _write is None:  # a channel belongs to the event loop it was made in
        _write = grpc.aio.insecure_channel(_WRITE_SERVICE).unary_unary(METHOD)
    await _limiter.hit_unless_revoked(f"{_PREFIX}:denied:{authorization[-16:]}", _LIMIT, "user")
    try:
        body = await request.body()
    except ClientDisconnect:  # wrk stopping mid-request
        return Response(status_code=400)
    return Response(await _write(body, timeout=5), media_type="application/json")
