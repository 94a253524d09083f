"""Annotated dependency aliases: every route reaches app state through these.

The dependencies are ``async def``: they only read app state (and check a key against an in-memory
keyring), so they run on the event loop; FastAPI would run a plain ``def`` in the thread pool, one thread
hop each, five or six of them per /predict."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Request

from app.audit.inputs import InputKeeper
from app.container import Services
from app.core.config import Settings
from app.core.ratelimit import UploadSlots
from app.errors import NotReady
from app.core.security import Principal, Role
from app.training.datasets.store import DatasetStore
from app.training.runner import JobRunner
from app.core.metrics import Metrics
from app.inference.pipeline import Predictor
from app.inference.catalog import ModelRegistry
from app.pacs.results import ResultStore
from app.pacs.service import StowService


T = TypeVar("T")


def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_settings(request: Request) -> Settings:
    return get_services(request).settings


async def get_registry(request: Request) -> ModelRegistry:
    return get_services(request).registry


async def get_predictor(request: Request) -> Predictor:
    return get_services(request).predictor


async def get_metrics(request: Request) -> Metrics:
    return get_services(request).metrics


async def get_datasets(request: Request) -> DatasetStore:
    return get_services(request).datasets


def _started(part: T | None, what: str) -> T:
    if part is None:
        raise NotReady(f"{what} is not running yet")
    return part


async def get_jobs(request: Request) -> JobRunner:
    return _started(get_services(request).jobs, "the training runner")


async def get_stow(request: Request) -> StowService:
    return _started(get_services(request).stow, "STOW-RS processing")


async def get_results(request: Request) -> ResultStore:
    return _started(get_services(request).results, "the DICOM result store")


async def get_inputs(request: Request) -> InputKeeper | None:
    return get_services(request).inputs


async def get_upload_slots(request: Request) -> UploadSlots:
    return get_services(request).upload_slots


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _require(request: Request, role: Role) -> Principal | None:
    services = get_services(request)
    keyring = services.keyring
    principal = None if keyring is None else keyring.check(_presented_key(request), role)  # None: CXR_AUTH=off
    client = f"key:{principal.key_id}" if principal else f"ip:{request.client.host if request.client else '-'}"
    services.rate_limiter.check(client)
    request.state.principal = principal
    return principal


async def require_predict(request: Request) -> Principal | None:
    """predict role: /predict and read-only listings (admin keys pass too)."""
    return _require(request, "predict")


async def require_admin(request: Request) -> Principal | None:
    """admin role: train, datasets, activate."""
    return _require(request, "admin")


async def require_metrics(request: Request) -> Principal | None:
    return _require(request, "predict") if get_services(request).settings.metrics_auth else None


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
JobsDep = Annotated[JobRunner, Depends(get_jobs)]
DatasetsDep = Annotated[DatasetStore, Depends(get_datasets)]
StowDep = Annotated[StowService, Depends(get_stow)]
ResultsDep = Annotated[ResultStore, Depends(get_results)]
UploadSlotsDep = Annotated[UploadSlots, Depends(get_upload_slots)]
InputsDep = Annotated[InputKeeper | None, Depends(get_inputs)]
AdminDep = Depends(require_admin)
PredictRoleDep = Depends(require_predict)
MetricsAuthDep = Depends(require_metrics)
