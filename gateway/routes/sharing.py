from fastapi import APIRouter

router = APIRouter(prefix="/api/events", tags=["sharing"])
