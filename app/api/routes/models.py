"""GET /models: shipped and trained models with their cards, and which one is active; activation and
site calibration (a job that refits a model's operating point on a site's images)."""

from __future__ import annotations

import time
from functools import partial

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import AdminDep, DatasetsDep, JobsDep, PredictRoleDep, RegistryDep, SettingsDep
from app.api.routes.train import public_job
from app.schemas import CalibrateRequest, ErrorResponse, Job, ModelEntry, ModelList, Ready
from app.training.datasets.layout import check_calibration_set, resolve_dataset
from app.training.spec import CalibrationSpec

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


@router.post("/models/{name}/calibrate", response_model=Job, status_code=202, dependencies=[AdminDep],
             responses={400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}, 422: {"model": ErrorResponse},
                        429: {"model": ErrorResponse}},
             summary="refit the model's temperature, bias and threshold on a site's labelled images, as a background "
             "job (GET /train/{id}); the result is a new version with the same weights")
async def calibrate_model(name: str, body: CalibrateRequest, response: Response, registry: RegistryDep,
                          jobs: JobsDep, settings: SettingsDep, datasets: DatasetsDep) -> Job:
    entry = registry.find(name)
    uploaded = datasets.folder(body.dataset)
    root = uploaded if uploaded is not None else resolve_dataset(settings.data_root, body.dataset)
    folder, counts = await run_in_threadpool(partial(check_calibration_set, root, settings.calibration_min_per_class,
                                                     label=f"dataset {body.dataset!r}"))
    spec = CalibrationSpec(**body.model_dump(), model=entry.name, model_dir=str(entry.folder), dataset_counts=counts,
                           dataset_dir=str(folder), min_per_class=settings.calibration_min_per_class,
                           integrity_guard_dir=None if settings.integrity == "off" else str(settings.integrity_guard_dir))
    job = jobs.submit(spec.model_dump())
    response.headers["Location"] = f"/train/{job['id']}"
    return public_job(job)
