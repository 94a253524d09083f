"""Domain errors of the service and their one mapping to HTTP statuses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from models.errors import (
    CXRError,
    DatasetError,
    ImageTooLarge,
    InvalidImage,
    ModelNotFound,
    UnsupportedImageType,
    WeightsError,
)

from app.core.errors import (  # the core layer's own errors, mapped here with the rest
    BadRequest,
    ConfigurationError,
    Forbidden,
    QueueFull,
    ServiceError,
    TooManyRequests,
    Unauthorized,
    UploadTooLarge,
)

log = logging.getLogger(__name__)


class TrainQueueFull(QueueFull):
    """Too many training jobs are queued or running (429, as MONAI Label answers)."""


class NotReady(CXRError):
    """No model is loaded yet."""


class NotEvaluated(CXRError):
    """The integrity check refused the image: it is not read (422, with the integrity result in the body)."""

    def __init__(self, integrity: object, warnings: list[str], *, dataset: object = None,
                 model: tuple[str, str] = ("unknown", "unknown")) -> None:
        """``dataset``: the parsed DICOM header (None for PNG/JPEG) and ``model`` (name, version) that
        would have read it, for the report that says it was not read (never sent to a client)."""
        reason = getattr(integrity, "reason", None) or "refused by the integrity check"
        super().__init__(f"not evaluated: {reason}")
        self.integrity = integrity
        self.warnings = warnings
        self.dataset = dataset
        self.model = model


class JobNotFound(CXRError):
    """No training job has this id."""


class ResultNotFound(CXRError):
    """No DICOM result has this id (or it has no instances yet)."""


class DatasetNotFound(CXRError):
    """No dataset at this path under the data root."""


class AuditRecordNotFound(CXRError):
    """No audit record has this sequence number or input hash."""


class NotScreened(CXRError):
    """Feedback names an audit record that is not a screened image (a refusal, an error, a delivery)."""


class AssetNotFound(CXRError):
    """A console file that this server does not have (a page cached from an older version)."""


class FeatureOff(CXRError):
    """The request needs a feature this server was configured without (CXR_AUDIT=off, no CXR_KEEP_INPUTS_DAYS)."""


class PathNotAllowed(CXRError):
    """A dataset path is absolute, climbs out of the data root, or the data root is not configured."""



STATUS: dict[type[CXRError] | type[ServiceError], int] = {
    ConfigurationError: 500,
    Unauthorized: 401,
    Forbidden: 403,
    UnsupportedImageType: 415,
    InvalidImage: 422,
    ImageTooLarge: 413,
    UploadTooLarge: 413,
    BadRequest: 400,
    DatasetError: 422,
    ModelNotFound: 404,
    WeightsError: 422,
    QueueFull: 503,
    TrainQueueFull: 429,
    TooManyRequests: 429,
    JobNotFound: 404,
    DatasetNotFound: 404,
    ResultNotFound: 404,
    AuditRecordNotFound: 404,
    AssetNotFound: 404,
    NotScreened: 422,
    FeatureOff: 409,
    PathNotAllowed: 400,
    NotReady: 503,
    NotEvaluated: 422,
}


def status_for(exc: CXRError | ServiceError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 400


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    @app.exception_handler(CXRError)
    async def _domain_error(request: Request, exc: CXRError | ServiceError) -> JSONResponse:
        retry_after = request.app.state.services.settings.retry_after_s
        headers = None
        if isinstance(exc, QueueFull):
            headers = {"Retry-After": str(max(exc.retry_after_s or 0, retry_after))}
        if isinstance(exc, NotReady):
            headers = {"Retry-After": str(retry_after)}
        if isinstance(exc, Unauthorized):
            headers = {"WWW-Authenticate": 'Bearer realm="cxr", charset="UTF-8"'}
        body: dict[str, object] = {"detail": exc.detail}
        if isinstance(exc, NotEvaluated):
            from app.schemas import IntegrityReport

            body["priority"] = "not_evaluated"
            body["integrity"] = IntegrityReport.of(exc.integrity).model_dump()
            body["warnings"] = exc.warnings
        return JSONResponse(body, status_code=status_for(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return JSONResponse({"detail": f"invalid request: {where}: {first['msg']}", "errors": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)
