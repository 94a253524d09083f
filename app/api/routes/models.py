"""GET /models: shipped and trained models with their cards, and which one is active."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import RegistryDep
from app.schemas import ModelEntry, ModelList

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelList, summary="available models and the active one")
async def list_models(registry: RegistryDep) -> ModelList:
    active = registry.active
    entries = [
        ModelEntry(name=e.name, version=e.card.version, source=e.source,
                   active=active is not None and e.folder.resolve() == active.folder.resolve(),
                   card=e.card.model_dump(mode="json"))
        for e in registry.entries()
    ]
    return ModelList(active=active.ref if active else None, models=entries)
