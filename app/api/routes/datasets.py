"""Training datasets: upload an archive, list, inspect, delete (admin)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import AdminDep, DatasetsDep, InputsDep, SettingsDep, UploadSlotsDep
from app.api.routes.audit import TrailDep
from app.audit.feedback import feedback_cases
from app.errors import DatasetNotFound, FeatureOff
from app.schemas import Dataset, DatasetList, ErrorResponse, FeedbackDatasetRequest
from app.training.datasets.archive import archive_kind
from app.inference.upload import stream_to_file

router = APIRouter(tags=["datasets"], dependencies=[AdminDep])
_ERRORS = {code: {"model": ErrorResponse} for code in (400, 404, 413, 415, 422)}
_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "application/zip": {"schema": {"type": "string", "format": "binary"}},
    "application/gzip": {"schema": {"type": "string", "format": "binary"}},
}}}


@router.post("/datasets", response_model=Dataset, status_code=201, responses=_ERRORS, openapi_extra=_BODY,
             summary="upload a .zip or .tar.gz laid out as NORMAL/…, PNEUMONIA/… (optionally under train/ and val/)")
async def upload_dataset(request: Request, settings: SettingsDep, datasets: DatasetsDep,
                         slots: UploadSlotsDep) -> Dataset:
    tmp_dir = settings.state_dir / "datasets"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f".upload-{uuid.uuid4().hex}"
    try:
        with slots.hold():
            filename = await stream_to_file(request, tmp, settings.max_dataset_bytes)
        with open(tmp, "rb") as f:
            archive_kind(f.read(4))
        meta = await run_in_threadpool(datasets.ingest, tmp, filename)
    finally:
        tmp.unlink(missing_ok=True)
    return Dataset(**meta)


@router.post("/datasets/from-feedback", response_model=Dataset, status_code=201, responses=_ERRORS | {
    409: {"model": ErrorResponse, "description": "screened images are not kept (CXR_KEEP_INPUTS_DAYS unset)"}}, summary="the kept images readers gave a verdict on (POST /feedback), as a "
    "NORMAL/ + PNEUMONIA/ dataset for POST /models/{name}/calibrate; needs CXR_KEEP_INPUTS_DAYS")
async def dataset_from_feedback(body: FeedbackDatasetRequest, datasets: DatasetsDep, trail: TrailDep,
                                inputs: InputsDep) -> Dataset:
    if inputs is None:
        raise FeatureOff("screened images are not kept on this server (set CXR_KEEP_INPUTS_DAYS): feedback has no "
                       "images to build a dataset from")
    cases, tally = await run_in_threadpool(feedback_cases, trail, inputs, body)
    source = {"kind": "feedback", **body.model_dump(mode="json", exclude_none=True), **tally}
    return Dataset(**await run_in_threadpool(lambda: datasets.create_from(cases, source=source)))


@router.get("/datasets", response_model=DatasetList, summary="uploaded datasets, newest first")
async def list_datasets(datasets: DatasetsDep) -> DatasetList:
    return DatasetList(datasets=[Dataset(**m) for m in datasets.list()])


@router.get("/datasets/{dataset_id}", response_model=Dataset, responses=_ERRORS, summary="one dataset")
async def get_dataset(dataset_id: str, datasets: DatasetsDep) -> Dataset:
    meta = datasets.get(dataset_id)
    if meta is None:
        raise DatasetNotFound(f"no dataset {dataset_id!r}")
    return Dataset(**meta)


@router.delete("/datasets/{dataset_id}", status_code=204, responses=_ERRORS, summary="delete a dataset")
async def delete_dataset(dataset_id: str, datasets: DatasetsDep) -> Response:
    if not datasets.delete(dataset_id):
        raise DatasetNotFound(f"no dataset {dataset_id!r}")
    return Response(status_code=204)
