"""The API router: every route module, included once."""

from fastapi import APIRouter

from app.api.routes import (audit, datasets, dicomweb, feedback, health, metrics, models, monitoring, predict,
                            train)

api_router = APIRouter()
for module in (predict, dicomweb, train, datasets, health, models, metrics, audit, feedback, monitoring):
    api_router.include_router(module.router)
