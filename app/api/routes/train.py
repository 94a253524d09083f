"""POST /train and friends: background jobs (admin). Fine-tunes start here; calibrations start at
POST /models/{name}/calibrate and are followed, cancelled and listed here like fine-tunes."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import AdminDep, DatasetsDep, JobsDep, RegistryDep, SettingsDep
from app.schemas import ErrorResponse, Job, JobList, TrainRequest
from app.training.spec import JobSpec
from app.training.store import JobKind
from app.training.datasets.layout import check_dataset, resolve_dataset

router = APIRouter(tags=["train"], dependencies=[AdminDep])
_ERRORS = {400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}, 422: {"model": ErrorResponse},
           429: {"model": ErrorResponse}}

_PUBLIC_FIELDS = set(Job.model_fields)


def public_job(row: dict[str, Any]) -> Job:
    """A stored job as the API shows it: no server paths; its kind read from the request."""
    public = {k: v for k, v in row.items() if k in _PUBLIC_FIELDS}
    public["request"] = {k: v for k, v in row["request"].items() if not k.endswith("_dir")}  # no server paths
    public["kind"] = row["request"].get("kind", JobKind.train)
    return Job(**public)


@router.post("/train", response_model=Job, status_code=202, responses=_ERRORS,
             summary="start a fine-tuning job in the background; returns at once")
async def create_train_job(body: TrainRequest, response: Response, jobs: JobsDep, registry: RegistryDep,
                           settings: SettingsDep, datasets: DatasetsDep) -> Job:
    uploaded = datasets.folder(body.dataset)
    root = uploaded if uploaded is not None else resolve_dataset(settings.data_root, body.dataset)
    folder, counts = await run_in_threadpool(partial(check_dataset, root, settings.min_images_per_class,
                                                     label=f"dataset {body.dataset!r}"))
    base_name = body.base_model or (registry.active.folder.name if registry.active else registry.catalog.default_name())
    base = registry.find(base_name)
    spec = JobSpec(**(body.model_dump() | {"base_model": base.name}), dataset_counts=counts, dataset_dir=str(folder),
                   base_model_dir=str(base.folder), threads=settings.train_threads, device=settings.train_device,
                   integrity_guard_dir=None if settings.integrity == "off" else str(settings.integrity_guard_dir))
    job = await run_in_threadpool(jobs.submit, spec.model_dump())  # database round trips: off the event loop
    response.headers["Location"] = f"/train/{job['id']}"
    return public_job(job)


@router.get("/train", response_model=JobList, summary="training jobs, newest first")
def list_train_jobs(jobs: JobsDep, limit: int = Query(20, ge=1, le=200),
                          offset: int = Query(0, ge=0, le=10**9)) -> JobList:
    rows, total = jobs.store.list(limit=limit, offset=offset)
    return JobList(jobs=[public_job(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/train/{job_id}", response_model=Job, responses=_ERRORS, summary="one job: state, progress, metrics")
def get_train_job(job_id: str, jobs: JobsDep) -> Job:
    return public_job(jobs.get(job_id))


@router.delete("/train/{job_id}", response_model=Job, responses=_ERRORS, summary="cancel a queued or running job")
def cancel_train_job(job_id: str, jobs: JobsDep) -> Job:
    return public_job(jobs.cancel(job_id))


@router.post("/train/{job_id}/resume", response_model=Job, status_code=202, responses=_ERRORS,
             summary="resume an interrupted job from its last epoch checkpoint")
def resume_train_job(job_id: str, jobs: JobsDep) -> Job:
    return public_job(jobs.resume(job_id))
