"""The ceiling: a bare FastAPI app returning a small JSON body, served like the gateway."""

from fastapi import FastAPI

from gateway.responses import JSONResponse

app = FastAPI(default_response_class=JSONResponse)


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}
