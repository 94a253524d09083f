"""The API router: every route module, included once."""

from fastapi import APIRouter

from app.api.routes import (audit, datasets, dicomweb, feedback, health, metrics, models, monitoring, predict,
                            train, whoami)

api_router = APIRouter()
for module in (predict, dicomweb, train, datasets, health, whoami, models, metrics, audit, feedback, monitoring):
    api_router.include_router(module.router)
