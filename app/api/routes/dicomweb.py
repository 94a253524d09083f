"""DICOMweb: STOW-RS intake (/dicomweb/studies) and the record of results sent back to the PACS."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from app.audit.trail import ScreeningFacts
from app.api.deps import AdminDep, PredictRoleDep, ResultsDep, SettingsDep, StowDep, UploadSlotsDep
from app.dicom.multipart import RelatedParser, check_related, encode_related
from app.dicom.stow_response import status_code, stow_response
from app.errors import BadRequest, ResultNotFound
from app.schemas import DicomResult, DicomResultList, ErrorResponse
from app.pacs.results import DELIVERABLE, ResultStore
from app.core.config import Settings
from app.core.ratelimit import UploadSlots
from app.pacs.service import StowService
from app.inference.upload import stream_limited

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

UID_PATTERN = r"^[0-9]+(\.[0-9]+)*$"
DICOM_JSON = "application/dicom+json"
_STOW_DOC = {
    "requestBody": {
        "required": True,
        "content": {'multipart/related; type="application/dicom"': {"schema": {"type": "string", "format": "binary"}}},
    }
}
_STOW_RESPONSES = {
    202: {"content": {DICOM_JSON: {}}, "description": "instances queued (ReferencedSOPSequence); some may have "
          "failed (FailedSOPSequence with Failure Reason and the reason text in (0009,1001))"},
    409: {"content": {DICOM_JSON: {}}, "description": "no instance was accepted; reasons per instance"},
    400: {"model": ErrorResponse, "description": "malformed multipart/related body"},
    401: {"model": ErrorResponse, "description": "missing or invalid API key"},
    413: {"model": ErrorResponse, "description": "request larger than CXR_MAX_STOW_BYTES"},
    415: {"model": ErrorResponse, "description": "not multipart/related; type=application/dicom"},
    503: {"content": {DICOM_JSON: {}}, "description": "the inference queue is full (Failure Reason A700)"},
}

ResultId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="id from the STOW-RS answer or the listing")]


async def _store(request: Request, stow: StowService, settings: Settings, slots: UploadSlots,
                 study: str | None) -> Response:
    """The body is parsed as it arrives, each instance into its own spool file (never the whole
    request in memory); accepted instances are moved into the store, the rest removed."""
    boundary = check_related(request.headers.get("content-type", ""))
    parser = RelatedParser(boundary, stow.store.spool_file)
    try:
        with slots.hold():
            await stream_limited(request, settings.max_stow_bytes, parser.write)
        parts = parser.finish()
        accepted, failed = await stow.accept(parts, study)
    finally:
        for part in parser.parts:
            part.body.close()
            if part.path is not None:
                part.path.unlink(missing_ok=True)  # accepted ones were moved away already
    request.state.audit = ScreeningFacts(detail=f"{len(parts)} instance(s): {len(accepted)} accepted, "
                                         f"{len(failed)} failed")
    status = status_code(accepted, failed)
    headers = {"Retry-After": str(settings.retry_after_s)} if status == 503 else None
    return JSONResponse(stow_response(accepted, failed), status_code=status, media_type=DICOM_JSON, headers=headers)


@router.post("/studies", responses=_STOW_RESPONSES, openapi_extra=_STOW_DOC, dependencies=[PredictRoleDep],
             status_code=202, summary="STOW-RS: store instances; CR/DX radiographs are screened in the background")
async def store_instances(request: Request, stow: StowDep, settings: SettingsDep, slots: UploadSlotsDep) -> Response:
    return await _store(request, stow, settings, slots, None)


@router.post("/studies/{study}", responses=_STOW_RESPONSES, openapi_extra=_STOW_DOC, dependencies=[PredictRoleDep],
             status_code=202, summary="STOW-RS into one study (instances of other studies fail with A900)")
async def store_study_instances(
    request: Request, stow: StowDep, settings: SettingsDep, slots: UploadSlotsDep,
    study: Annotated[str, Path(pattern=UID_PATTERN, max_length=64)],
) -> Response:
    return await _store(request, stow, settings, slots, study)


def _ts(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.timezone.utc)


def to_schema(row: dict) -> DicomResult:
    return DicomResult(
        id=row["id"], study_instance_uid=row["study_uid"], source_sop_class_uid=row["source_sop_class_uid"],
        source_sop_instance_uid=row["source_sop_instance_uid"], state=row["state"], error=row["error"],
        prediction=row["prediction"], probability_pneumonia=row["probability"], threshold=row["threshold"],
        model=row["model"], priority=row["priority"], secondary_capture_sop_instance_uid=row["sc_sop_instance_uid"],
        structured_report_sop_instance_uid=row["sr_sop_instance_uid"],
        parametric_map_sop_instance_uid=row["pm_sop_instance_uid"], delivery=row["delivery"],
        delivery_attempts=row["attempts"], delivery_error=row["delivery_error"],
        next_attempt_at=_ts(row["next_attempt_at"]), created_at=_ts(row["created_at"]),  # type: ignore[arg-type]
        delivered_at=_ts(row["delivered_at"]), fhir_delivery=row["fhir_delivery"],
        fhir_delivery_attempts=row["fhir_attempts"], fhir_delivery_error=row["fhir_error"],
        fhir_delivered_at=_ts(row["fhir_delivered_at"]),
    )


@router.get("/results", response_model=DicomResultList, dependencies=[PredictRoleDep],
            responses={401: {"model": ErrorResponse}},
            summary="What was produced for a study (or the latest results) and whether the PACS has it")
def list_results(
    results: ResultsDep,
    study_instance_uid: Annotated[str | None, Query(alias="StudyInstanceUID", pattern=UID_PATTERN, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> DicomResultList:
    rows = (results.by_study(study_instance_uid, limit=limit, offset=offset) if study_instance_uid
            else results.recent(limit=limit, offset=offset))
    return DicomResultList(study_instance_uid=study_instance_uid, results=[to_schema(r) for r in rows])


def _get(results: ResultStore, result_id: str) -> dict:
    row = results.get(result_id)
    if row is None:
        raise ResultNotFound(f"no DICOM result {result_id!r}")
    return row


@router.get("/results/{result_id}", response_model=DicomResult, dependencies=[PredictRoleDep],
            responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}})
def get_result(results: ResultsDep, result_id: ResultId) -> DicomResult:
    return to_schema(_get(results, result_id))


@router.get("/results/{result_id}/instances", dependencies=[PredictRoleDep],
            responses={200: {"content": {'multipart/related; type="application/dicom"': {}}},
                       401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
            summary="The objects produced for one radiograph (SR, PM, SC as configured; multipart/related; the SR "
                    "alone when not evaluated)")
async def get_result_instances(results: ResultsDep, result_id: ResultId) -> Response:
    row = await run_in_threadpool(_get, results, result_id)
    if row["state"] not in DELIVERABLE:
        raise ResultNotFound(f"result {result_id} is {row['state']}; instances exist once it is done")
    try:
        payloads = await run_in_threadpool(results.load_outputs, result_id)
    except OSError:
        raise ResultNotFound(f"the instances of result {result_id} are no longer on disk") from None
    body, content_type = encode_related(payloads)
    return Response(body, media_type=content_type)


@router.post("/results/{result_id}/deliver", response_model=DicomResult, dependencies=[AdminDep],
             responses={400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}, 403: {"model": ErrorResponse},
                        404: {"model": ErrorResponse}},
             summary="Send a result to the PACS and the FHIR server again (after a failed delivery)")
async def redeliver(results: ResultsDep, stow: StowDep, result_id: ResultId) -> DicomResult:
    row = _get(results, result_id)
    if not any(d.configured for d in stow.deliveries):
        raise BadRequest("no PACS (CXR_PACS_STOW_URL) or FHIR server (CXR_FHIR_URL) is configured")
    if row["state"] not in DELIVERABLE:
        raise BadRequest(f"result {result_id} is {row['state']}; only done or not_evaluated results can be delivered")
    stow.retry_delivery(result_id)
    return to_schema(_get(results, result_id))
