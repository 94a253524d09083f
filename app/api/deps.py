"""Annotated dependency aliases: every route reaches app state through these."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.core.config import Settings
from app.services.dataset_store import DatasetStore
from app.services.jobs import JobRunner
from app.services.metrics import Metrics
from app.services.predictor import Predictor
from app.services.registry import ModelRegistry


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def get_predictor(request: Request) -> Predictor:
    return request.app.state.predictor


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_jobs(request: Request) -> JobRunner:
    return request.app.state.jobs


def get_datasets(request: Request) -> DatasetStore:
    return request.app.state.datasets


def require_admin(request: Request) -> None:
    """The one gate of admin endpoints (train, activate). API keys and roles plug in here;
    until they exist, keep the service on a trusted network (it binds 127.0.0.1 by default)."""
    return None


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
JobsDep = Annotated[JobRunner, Depends(get_jobs)]
DatasetsDep = Annotated[DatasetStore, Depends(get_datasets)]
AdminDep = Depends(require_admin)
