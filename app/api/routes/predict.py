"""POST /predict: one radiograph in, calibrated probabilities and a Grad-CAM heatmap out."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.api.body import prediction_json
from app.api.deps import InputsDep, PredictorDep, PredictRoleDep, SettingsDep, UploadSlotsDep
from app.schemas import ErrorResponse, Label, NotEvaluatedResponse, Prediction
from app.dicom.multipart import encode_related
from app.dicom.codes import Finding
from app.fhir.bundle import ImagingRef, bundle_json, result_bundle
from app.fhir.client import FHIR_JSON
from app.pacs.outputs import build_results, finding_of
from app.inference.pipeline import Predictor
from app.inference.upload import read_image_upload
from app.core.config import Settings
from app.audit.trail import ScreeningFacts, record_inference, record_refusal, screening_facts
from app.errors import NotEvaluated
from models.errors import CXRError, UnsupportedImageType
from models.imaging import ImageFormat, sniff_format

router = APIRouter(tags=["predict"], dependencies=[PredictRoleDep])

_ERRORS = {
    401: {"model": ErrorResponse, "description": "missing or invalid API key"},
    400: {"model": ErrorResponse, "description": "no file, empty body or malformed multipart"},
    413: {"model": ErrorResponse, "description": "upload or image larger than the configured limits"},
    415: {"model": ErrorResponse, "description": "not PNG, JPEG or DICOM"},
    422: {"model": NotEvaluatedResponse | ErrorResponse,
          "description": "not evaluated: the integrity check refused the image (not a frontal chest radiograph, "
                         "lateral view, not CR/DX, body part not the chest; body has `integrity`), or a corrupt, "
                         "truncated, too small or non-image file"},
    503: {"model": ErrorResponse, "description": "model not ready or inference queue full (see Retry-After)"},
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"],
                           "properties": {"file": {"type": "string", "format": "binary"}}}
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "application/dicom": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/predict",
    response_model=Prediction,
    responses={**_ERRORS, 200: {"content": {"image/png": {}, 'multipart/related; type="application/dicom"': {},
                                            FHIR_JSON: {}},
                                "description": "JSON; the overlay PNG with Accept: image/png; the DICOM objects of "
                                               "CXR_DICOM_OUTPUTS with output=dicom; a FHIR R4 Bundle with output=fhir"}},
    openapi_extra=_BODY,
    summary="Screen one chest X-ray (PNG, JPEG or DICOM) for pneumonia",
)
async def predict_image(
    request: Request,
    predictor: PredictorDep,
    settings: SettingsDep,
    slots: UploadSlotsDep,
    inputs: InputsDep,
    target: Literal["PNEUMONIA", "NORMAL", "predicted"] = Query("PNEUMONIA", description="class the heatmap explains"),
    heatmap: Literal["overlay", "mask", "layer", "none"] = Query(
        "overlay", description="overlay, grayscale mask, layer (the overlay's colours alone, RGBA; png or webp), or "
        "none (faster)"),
    heatmap_format: Literal["png", "jpeg", "webp"] = Query("png", description="encoding of the heatmap image"),
    output: Literal["json", "dicom", "fhir"] = Query(
        "json", description="dicom (DICOM input only): multipart/related with the objects CXR_DICOM_OUTPUTS names "
        "(TID 1500 SR, Parametric Map, Secondary Capture), in the input's study; fhir (any input): a FHIR R4 "
        "transaction Bundle (DiagnosticReport, Observations, Device; ImagingStudy for DICOM input)"),
    integrity: Literal["enforce", "report"] = Query(
        "enforce", description="enforce: an image the integrity check refuses gets 422 and no probabilities; "
        "report (research use, logged): scored anyway, with integrity.accepted false and a warning"),
    preview: bool = Query(False, description="also return the X-ray as read (8-bit grey PNG at the heatmap's "
                          "size) in `preview`: what a viewer draws `heatmap=layer` over"),
) -> Prediction | Response:
    if heatmap == "layer" and heatmap_format == "jpeg":
        raise RequestValidationError([{"loc": ("query", "heatmap_format"), "type": "value_error",
                                       "msg": "heatmap=layer has an alpha channel: use png or webp, not jpeg"}])
    with slots.hold():
        data = await read_image_upload(request, settings.max_upload_bytes)
    facts = request.state.audit = screening_facts(data)
    try:
        answer = await _answer(request, predictor, settings, data, facts, target=target, heatmap=heatmap,
                               heatmap_format=heatmap_format, output=output, integrity=integrity,
                               preview=preview)
        if inputs is not None and facts.input_sha256 and facts.label is not None:  # screened: kept for feedback
            await run_in_threadpool(inputs.keep, facts.input_sha256, data, facts.input_format)
        return answer
    except NotEvaluated as refused:
        record_refusal(facts, refused)
        raise
    except CXRError as exc:
        facts.detail = exc.detail
        raise


async def _answer(request: Request, predictor: Predictor, settings: Settings, data: bytes, facts: ScreeningFacts, *,
                  target: Literal["PNEUMONIA", "NORMAL", "predicted"],
                  heatmap: Literal["overlay", "mask", "layer", "none"], heatmap_format: Literal["png", "jpeg", "webp"],
                  output: Literal["json", "dicom", "fhir"], integrity: Literal["enforce", "report"],
                  preview: bool = False) -> Prediction | Response:
    if output == "dicom":
        return await _dicom_output(predictor, settings, data, integrity, facts)
    if output == "fhir":
        return await _fhir_output(predictor, data, integrity, facts)
    wants_image = "image/png" in request.headers.get("accept", "") and "application/json" not in request.headers.get("accept", "")
    kind = "overlay" if wants_image and heatmap == "none" else heatmap
    outcome = await predictor.predict(data, target=target, heatmap=None if kind == "none" else kind,
                                      fmt="png" if wants_image else heatmap_format, integrity=integrity,
                                      preview=preview and not wants_image)
    record_inference(facts, outcome.inference)
    p = outcome.prediction
    if wants_image and outcome.heatmap is not None:
        return Response(outcome.heatmap.data, media_type=outcome.heatmap.media_type, headers=result_headers(
            p.prediction.value, p.probabilities[Label.PNEUMONIA], p.threshold, f"{p.model.name}@{p.model.version}",
            p.priority.value))
    # serialized once (Prediction is the declared response_model, so the schema is the same); FastAPI's
    # own path dumps, re-validates and json.dumps the ~1 MB heatmap: 3 ms, not 0.05 (app/api/body.py)
    return Response(prediction_json(p), media_type="application/json")


def result_headers(label: str, p_pneumonia: float, threshold: float, model: str, priority: str) -> dict[str, str]:
    """The prediction in headers, for answers whose body is an image, DICOM or FHIR."""
    return {"X-CXR-Prediction": label, "X-CXR-Probability-Pneumonia": f"{p_pneumonia:.6f}",
            "X-CXR-Threshold": f"{threshold:.6f}", "X-CXR-Model": model, "X-CXR-Priority": priority}


async def _dicom_output(predictor: Predictor, settings: Settings, data: bytes,
                        integrity: Literal["enforce", "report"], facts: ScreeningFacts) -> Response:
    if sniff_format(data) is not ImageFormat.dicom:
        raise UnsupportedImageType("output=dicom needs a DICOM input: the results join the input's study")
    inf = await predictor.infer(data, integrity=integrity)
    record_inference(facts, inf)
    results = await run_in_threadpool(build_results, inf, settings.dicom_output_kinds, alpha=settings.heatmap_alpha,
                                      compression=settings.dicom_sc_compression)
    body, content_type = await run_in_threadpool(lambda: encode_related(list(results.encoded().values())))
    return Response(body, media_type=content_type, headers=_finding_headers(finding_of(inf)))


async def _fhir_output(predictor: Predictor, data: bytes, integrity: Literal["enforce", "report"],
                       facts: ScreeningFacts) -> Response:
    inf = await predictor.infer(data, integrity=integrity)
    record_inference(facts, inf)
    finding = finding_of(inf)
    body = await run_in_threadpool(lambda: bundle_json(result_bundle(finding, ImagingRef.of(inf.decoded.dataset))))
    return Response(body, media_type=FHIR_JSON, headers=_finding_headers(finding))


def _finding_headers(f: Finding) -> dict[str, str]:
    return result_headers(f.label, f.probability, f.threshold, f"{f.model_name}@{f.model_version}", f.priority.value)
