"""The API router: every route module, included once."""

from fastapi import APIRouter

from app.api.routes import health, metrics, models, predict, train

api_router = APIRouter()
for module in (predict, train, health, models, metrics):
    api_router.include_router(module.router)
