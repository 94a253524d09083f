"""Request and response models of the HTTP API (they are the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.audit.record import optional_audit_time
from app.pacs.results import DeliveryState, ResultState
from app.training.store import JobKind, JobState
from models.triage import Priority


class Label(str, Enum):
    NORMAL = "NORMAL"
    PNEUMONIA = "PNEUMONIA"


class ModelRef(BaseModel):
    name: str
    version: str
    sha256: str


class Heatmap(BaseModel):
    target: Label = Field(description="class whose evidence the map shows")
    kind: str = Field(description="overlay (colormap over the X-ray), mask (grayscale map) or layer (the overlay's "
                      "colours alone, RGBA: drawn over `preview` it gives the overlay)")
    media_type: str
    width: int
    height: int
    data: str = Field(description="base64-encoded image")


class ImagePreview(BaseModel):
    """The X-ray as the model read it (decoded and windowed, 8-bit grey), at the heatmap's size."""
    media_type: str
    width: int
    height: int
    data: str = Field(description="base64-encoded PNG")


class ImageInfo(BaseModel):
    width: int
    height: int
    format: str


class Timing(BaseModel):
    decode: float
    integrity: float = 0.0
    preprocess: float
    infer: float
    explain: float
    total: float


class IntegrityReport(BaseModel):
    """Is the image a frontal chest radiograph the model may read (DICOM header rules + pixel check)?"""

    accepted: bool
    score: float = Field(description="the pixel check's P(frontal chest radiograph)")
    threshold: float = Field(description="scores below this are refused")
    reason: str | None = Field(None, description="why the image was refused, in words; null when accepted")

    @classmethod
    def of(cls, result: Any) -> IntegrityReport:
        return cls(accepted=result.accepted, score=round(float(result.score), 6),
                   threshold=float(result.threshold), reason=result.reason)


class Prediction(BaseModel):
    prediction: Label = Field(description="PNEUMONIA when P(PNEUMONIA) >= threshold")
    probabilities: dict[Label, float] = Field(description="calibrated class probabilities; they sum to 1")
    threshold: float = Field(description="the model card's operating point on P(PNEUMONIA)")
    priority: Priority = Field(description="worklist priority: urgent when P(PNEUMONIA) >= urgent_threshold (a "
                               "high-specificity point), routine otherwise")
    urgent_threshold: float | None = Field(description="the card's urgent point; null: the threshold is used")
    model: ModelRef
    heatmap: Heatmap | None = None
    image: ImageInfo
    preview: ImagePreview | None = Field(None, description="with preview=true: the X-ray as read, for drawing "
                                         "a layer over (DICOM and 16-bit inputs that a browser cannot show)")
    timing_ms: Timing
    integrity: IntegrityReport | None = Field(
        description="the input-integrity check; null only when the server runs with CXR_INTEGRITY=off")
    warnings: list[str] = Field(default_factory=list, description="things the reader should know about this result")


class ErrorResponse(BaseModel):
    detail: str


class NotEvaluatedResponse(BaseModel):
    """422 for an image the integrity check refused: no probabilities, the reason and the check's result."""

    detail: str
    priority: Priority = Priority.not_evaluated
    integrity: IntegrityReport
    warnings: list[str]


class Health(BaseModel):
    status: str


class Identity(BaseModel):
    auth: bool = Field(description="false when API keys are off (CXR_AUTH=off): every caller may do everything")
    role: Literal["predict", "admin"] = Field(description="what the presented key may do")
    key_id: str | None = Field(description="the first 8 hex digits of the key's SHA-256 (what logs name it by)")


class Ready(BaseModel):
    status: str
    device: str | None = None
    model: ModelRef | None = None
    backend: str | None = None


class ModelEntry(BaseModel):
    name: str
    version: str
    source: str = Field(description="shipped (weights/) or trained (state/)")
    active: bool
    card: dict[str, Any]


class ModelList(BaseModel):
    active: ModelRef | None
    models: list[ModelEntry]


class TrainRequest(BaseModel):
    """POST /train body."""

    model_config = {"extra": "forbid"}

    dataset: str = Field(description="an uploaded dataset id (POST /datasets), or a folder relative to CXR_DATA_ROOT "
                         "with NORMAL/ and PNEUMONIA/ (or train/ and val/ with them)")
    base_model: str | None = Field(None, description="model to fine-tune; default: the active model")
    epochs: int = Field(3, ge=1, le=100)
    learning_rate: float = Field(1e-4, gt=0, le=1)
    batch_size: int = Field(16, ge=1, le=512)
    freeze_backbone: bool = Field(False, description="train only the classifier head")
    val_fraction: float = Field(0.2, gt=0, lt=0.9, description="patient-level validation split carved from the data")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    auto_promote: bool = Field(False, description="activate the new version if it is at least as good on validation")


class CalibrateRequest(BaseModel):
    """POST /models/{name}/calibrate body: refit the model's temperature, bias and threshold on a site's images."""

    model_config = {"extra": "forbid"}

    dataset: str = Field(description="an uploaded dataset id (POST /datasets), or a folder relative to CXR_DATA_ROOT, "
                         "with NORMAL/ and PNEUMONIA/ (a split root: its test/)")
    min_sensitivity: float = Field(0.95, ge=0.5, le=0.999, description="the threshold keeps at least this "
                                   "sensitivity on the calibration images")
    method: Literal["platt", "temperature"] = Field("platt", description="platt: temperature and bias; "
                                                    "temperature: temperature only")
    auto_promote: bool = Field(False, description="activate the new version if its cross-fitted sensitivity and "
                               "calibration are no worse than the current operating point's on the same images")


class JobProgress(BaseModel):
    model_config = {"extra": "allow"}

    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    total_steps: int | None = None
    images_per_s: float | None = None
    eta_s: float | None = None
    loss: float | None = Field(None, description="the epoch's running mean training loss so far")


class Job(BaseModel):
    id: str
    kind: JobKind = Field(JobKind.train, description="train (POST /train) or calibrate (POST /models/{name}/calibrate)")
    state: JobState
    created_at: str
    started_at: str | None
    finished_at: str | None
    request: dict[str, Any]
    progress: JobProgress
    metrics: list[dict[str, Any]] = Field(description="fine-tunes: per epoch train_loss, val_loss, val_auroc, lr, "
                                          "images_per_s; calibrations: one entry, calibration_out_of_fold")
    error: str | None
    model: str | None = Field(None, description="the new model's name once the job succeeded (what "
                              "POST /models/{name}/activate takes)")
    model_version: str | None = Field(description="its version: what /predict and /readyz report once it serves")
    promoted: bool | None
    promotion_reason: str | None


class JobList(BaseModel):
    jobs: list[Job]
    total: int
    limit: int
    offset: int


class RejectedFile(BaseModel):
    file: str
    reason: str


class Dataset(BaseModel):
    id: str
    filename: str | None
    source: dict[str, Any] | None = Field(None, description="datasets built from feedback: the selection and what "
                                          "was left out (conflicting verdicts, images no longer kept)")
    created_at: str
    counts: dict[str, dict[str, int]] = Field(description="split (train, val) -> class -> valid images")
    rejected_count: int
    rejected: list[RejectedFile] = Field(description="first 200 rejected files with reasons")


class DatasetList(BaseModel):
    datasets: list[Dataset]


class DicomResult(BaseModel):
    """What was produced for one radiograph received over STOW-RS, and whether the PACS has it."""

    id: str
    study_instance_uid: str
    source_sop_class_uid: str
    source_sop_instance_uid: str
    state: ResultState = Field(
        description="not_evaluated: the integrity check refused the image; a report saying so was made")
    error: str | None = Field(None, description="why inference failed (failed) or the image was not read "
                                                "(not_evaluated)")
    prediction: Label | None = None
    probability_pneumonia: float | None = None
    threshold: float | None = None
    model: str | None = Field(None, description="name@version of the model that read the image")
    priority: Priority | None = Field(None, description="worklist priority (null until processed)")
    secondary_capture_sop_instance_uid: str | None = None
    structured_report_sop_instance_uid: str | None = None
    parametric_map_sop_instance_uid: str | None = None
    delivery: DeliveryState = Field(
        description="not_configured: no CXR_PACS_STOW_URL; pending: waiting or retrying; failed: out of attempts")
    delivery_attempts: int
    delivery_error: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    delivered_at: datetime | None = None
    fhir_delivery: DeliveryState = Field(description="delivery of the FHIR Bundle (CXR_FHIR_URL), same states")
    fhir_delivery_attempts: int = 0
    fhir_delivery_error: str | None = None
    fhir_delivered_at: datetime | None = None


class DicomResultList(BaseModel):
    study_instance_uid: str | None
    results: list[DicomResult]


class FeedbackRequest(BaseModel):
    """POST /feedback: a reader's verdict on one screened image, named by its audit record or its bytes' hash."""

    model_config = {"extra": "forbid"}

    record: int | None = Field(None, ge=1, le=2**62, description="the audit record's seq (GET /audit)")
    input_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                                     description="SHA-256 of the screened file: its newest screening is meant")
    label: Label = Field(description="the reader's verdict")
    reader: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[\w.@:/ -]+$",
                               description="who read it (default: the API key's id); a later verdict by the same "
                               "reader replaces the earlier one")
    comment: str | None = Field(None, max_length=2000, description="kept with the verdict, never in the trail "
                                "(which holds its SHA-256)")

    @model_validator(mode="after")
    def _one_reference(self) -> "FeedbackRequest":
        if (self.record is None) == (self.input_sha256 is None):
            raise ValueError("give exactly one of record or input_sha256")
        return self


class FeedbackResponse(BaseModel):
    record: int = Field(description="the screening record the verdict is about")
    reader: str
    label: Label
    model_label: str | None = Field(description="what the model said")
    agrees: bool
    replaced: bool = Field(description="true when it replaced this reader's earlier verdict")
    audit_seq: int = Field(description="the trail record of this verdict")


class FeedbackDatasetRequest(BaseModel):
    """POST /datasets/from-feedback: the kept images readers labelled, as a NORMAL/ + PNEUMONIA/ dataset."""

    model_config = {"extra": "forbid"}

    since: datetime | None = Field(None, description="screenings at or after this time (ISO 8601)")
    until: datetime | None = Field(None, description="screenings before this time")
    model: str | None = Field(None, max_length=200, description="only screenings by this model (name or name@version)")
    reader: str | None = Field(None, max_length=64, description="only this reader's verdicts")

    def since_iso(self) -> str | None:
        return optional_audit_time(self.since)

    def until_iso(self) -> str | None:
        return optional_audit_time(self.until)
