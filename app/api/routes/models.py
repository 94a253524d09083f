"""GET /models: shipped and trained models with their cards, and which one is active."""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.deps import AdminDep, PredictRoleDep, RegistryDep
from app.schemas import ErrorResponse, ModelEntry, ModelList, Ready

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelList, dependencies=[PredictRoleDep],
            summary="available models and the active one")
async def list_models(registry: RegistryDep) -> ModelList:
    active = registry.active
    entries = [
        ModelEntry(name=e.name, version=e.card.version, source=e.source,
                   active=active is not None and e.folder.resolve() == active.folder.resolve(),
                   card=e.card.model_dump(mode="json"))
        for e in registry.entries()
    ]
    return ModelList(active=active.ref if active else None, models=entries)


@router.post("/models/{name}/activate", response_model=Ready, dependencies=[AdminDep],
             responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
             summary="load, verify and warm up a model, then swap it in atomically (rollback: activate the previous one)")
async def activate_model(name: str, registry: RegistryDep) -> Ready:
    t0 = time.perf_counter()
    active = await run_in_threadpool(registry.activate, name)
    return Ready(status=f"active (swap took {time.perf_counter() - t0:.2f} s)", device=str(active.device),
                 model=active.ref, backend=active.backend)
