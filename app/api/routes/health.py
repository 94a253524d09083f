"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import RegistryDep, SettingsDep
from app.schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="the process is alive")
async def get_health() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready}}, summary="a verified model is loaded and warm")
async def get_ready(registry: RegistryDep, settings: SettingsDep) -> Ready | JSONResponse:
    active = registry.active
    if active is None:
        return JSONResponse(Ready(status="loading").model_dump(), status_code=503,
                            headers={"Retry-After": str(settings.retry_after_s)})
    return Ready(status="ready", device=str(active.device), model=active.ref, backend=active.backend)
