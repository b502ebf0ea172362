from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from gateway.deps import Services
from gateway.errors import problem_response
from gateway.metrics import exposition
from gateway.openapi import PROBLEM_SCHEMA
from gateway.responses import JSONResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The gateway process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Every dependency is reachable",
    responses={
        503: {
            "description": "A dependency is down (`checks` names which)",
            "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
        }
    },
)
async def readyz(gateway: Services) -> Response:
    checks = await gateway.readiness()
    if all(checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    down = ", ".join(name for name, ok in checks.items() if not ok)
    return problem_response(503, detail=f"unreachable: {down}", checks=checks)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
