"""One settings object, read from ``CXR_*`` environment variables (or passed in by tests)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The shipped models beside the source tree (an editable install); a container sets CXR_WEIGHTS_DIR.
SOURCE_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


class DicomOutput(str, Enum):
    """The result objects the service can write for a DICOM input (README: DICOM results)."""

    sr = "sr"  # TID 1500 Measurement Report (Comprehensive 3D SR)
    pm = "pm"  # Parametric Map of the class map
    sc = "sc"  # Secondary Capture of the overlay with the finding burned in


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CXR_", env_file=None, extra="ignore")

    host: str = Field("127.0.0.1", description="interface to bind (use 0.0.0.0 in a container)")
    port: int = Field(8000, ge=1, le=65535)
    model: str | None = Field(None, description="shipped model name or model folder; default: weights/manifest.json")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    weights_dir: Path = Field(SOURCE_WEIGHTS, description="folder of shipped models (and the integrity guard)")
    state_dir: Path = Field(Path("state"), description="writable folder for jobs, datasets and trained versions")
    database_url: SecretStr | None = Field(None, description="postgresql://user:password@host/db: the database "
                                           "replicas share; default: SQLite in CXR_STATE_DIR (jobs.sqlite3)")
    workers: Literal["embedded", "external"] = Field(
        "embedded", description="embedded: the server runs queued jobs in its own worker processes; external: "
        "`cxr worker` processes claim them from the database (replicas, a GPU node)")
    worker_name: str | None = Field(None, max_length=128, description="how this process names itself in the "
                                    "database: job runner, STOW-RS claims; unique per replica (default: the host name)")
    heartbeat_timeout_s: float = Field(30.0, ge=2, le=3600, description="a running job whose runner has not "
                                       "reported for this long is marked interrupted (its runner died)")
    active_poll_s: float = Field(1.0, gt=0, le=60, description="how often a replica checks which model the "
                                 "database names")
    threads: int | None = Field(None, ge=1, le=256, description="intra-op threads for inference")
    backend: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="auto: ONNX Runtime on CPU, PyTorch on GPU; torch: eager PyTorch everywhere")

    max_upload_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="413 above this many bytes")
    max_pixels: int = Field(100_000_000, ge=4096, description="413 above this many pixels")
    min_side: int = Field(64, ge=1, description="422 below this many pixels on the shorter side")

    integrity: Literal["on", "off"] = Field(
        "on", description="input-integrity check (DICOM header rules + frontal-chest pixel check); off: every "
        "decodable image is scored (logged as a warning)")
    onnx_cache: Path | None = Field(None, description="folder of exported ONNX graphs; default: <state_dir>/onnx")
    integrity_guard: Path | None = Field(None, description="integrity guard folder; default: <weights_dir>/integrity_guard")

    max_batch_size: int = Field(8, ge=1, le=256)
    malloc_arena_max: int = Field(2, ge=0, le=64, description="glibc malloc arenas of `cxr serve` (0: glibc's default); "
                                  "with it a high mmap threshold and a trim threshold (app/core/allocator.py)")
    blas_threads: int = Field(1, ge=0, le=256, description="threads of numpy's BLAS in `cxr serve` (0: the library's "
                              "default, one per core, spinning between calls; OPENBLAS_NUM_THREADS/OMP_NUM_THREADS "
                              "you set win); app/core/blas.py")
    max_wait_ms: float = Field(10.0, ge=0, le=1000, description="how long a batch waits for requests still decoding")
    queue_size: int = Field(64, ge=1, description="pending images before /predict answers 503")
    retry_after_s: int = Field(1, ge=1, description="Retry-After of every 503/429 (the rate limiter says more when "
                               "it knows the wait)")

    heatmap_max_side: int = Field(1024, ge=32, le=8192, description="cap on the returned heatmap's longer side")
    heatmap_alpha: float = Field(0.5, ge=0, le=1)
    heatmap_png_threads: int = Field(2, ge=1, le=2, description="2: a large PNG heatmap is made, filtered and "
                                     "deflated in two halves at once while the second thread is idle (1024² overlay: "
                                     "10.6 -> 5.9 ms); 1: one")
    png_compress_level: int = Field(1, ge=0, le=9)

    data_root: Path | None = Field(None, description="server-side folder that POST /train datasets are relative to")
    train_threads: int = Field(1, ge=1, le=64, description="CPU threads of a training worker (inference keeps the rest)")
    train_device: str = Field("cpu", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
                              description="device of a training worker: cpu (default: the GPU stays free for "
                                          "inference) | auto | cuda | cuda:N | mps")
    train_nice: int = Field(19, ge=0, le=19, description="CPU niceness of training workers (19: lowest priority)")
    train_queue_size: int = Field(4, ge=1, le=100, description="queued + running jobs before POST /train answers 429")
    min_images_per_class: int = Field(20, ge=1, description="422 for a training dataset with fewer")
    audit: Literal["on", "off"] = Field("on", description="the audit trail (tables in the database, see "
                                        "CXR_DATABASE_URL): one hash-chained record per screening, refusal, error "
                                        "and delivery")
    audit_retention_days: float | None = Field(None, gt=0, description="remove audit records older than this "
                                               "(whole prefix of the chain, itself recorded); unset: keep all")
    keep_inputs_days: float | None = Field(None, gt=0, description="keep the bytes of screened images this many "
                                           "days (CXR_STATE_DIR/inputs) so reader feedback can become a calibration "
                                           "set (POST /datasets/from-feedback); unset: keep nothing")
    calibration_min_per_class: int = Field(20, ge=5, description="422 for a site-calibration set with fewer images "
                                           "of either class (after the integrity check)")
    max_dataset_bytes: int = Field(2 * 1024**3, ge=1024, description="413 above this upload size for /datasets")
    max_dataset_files: int = Field(100_000, ge=1, description="files an archive may hold")
    max_dataset_uncompressed_bytes: int = Field(8 * 1024**3, ge=1024, description="what an archive may expand to")
    dataset_retention_days: float = Field(0, ge=0, description="delete uploaded datasets older than this; 0: keep")
    cancel_grace_s: float = Field(10.0, ge=0, description="seconds a cancelled worker gets before it is killed")

    pacs_stow_url: str | None = Field(
        None, description="STOW-RS URL that results (SC + SR) are sent to, e.g. http://pacs:8042/dicom-web/studies; "
        "unset: results are kept here only (GET /dicomweb/results)")
    pacs_username: str | None = Field(None, description="HTTP basic auth user for the PACS")
    pacs_password: SecretStr | None = Field(None, description="HTTP basic auth password for the PACS")
    pacs_token: SecretStr | None = Field(None, description="bearer token for the PACS (instead of basic auth)")
    pacs_timeout_s: float = Field(30.0, gt=0, le=600, description="timeout of one delivery attempt")
    pacs_max_attempts: int = Field(12, ge=1, le=1000, description="delivery attempts before a result is marked failed")
    pacs_retry_base_s: float = Field(2.0, gt=0, description="first retry delay; doubles per attempt")
    pacs_retry_max_s: float = Field(600.0, gt=0, description="cap on the retry delay")
    max_stow_bytes: int = Field(256 * 1024 * 1024, ge=1024, description="413 above this STOW-RS request size")
    dicom_queue_size: int = Field(256, ge=1, description="STOW-RS instances waiting for inference before 503/A700")
    dicom_sc_compression: Literal["jpeg", "none"] = Field(
        "jpeg", description="Secondary Capture encoding: jpeg (baseline, ~10x smaller) or none (lossless)")
    dicom_outputs: str = Field("sr,pm,sc", description="result objects for STOW-RS delivery and "
                               "/predict?output=dicom: comma list of sr, pm, sc")
    fhir_url: str | None = Field(None, description="FHIR R4 base URL that a transaction Bundle per STOW-RS result is "
                                 "posted to (retried like the PACS delivery); unset: no FHIR delivery")
    fhir_token: SecretStr | None = Field(None, description="bearer token for the FHIR server")
    dicom_retention_days: float = Field(
        30, ge=0, description="delete finished DICOM results (they hold patient data) after this many days; 0: keep")
    dicom_workers: int = Field(4, ge=1, le=64, description="STOW-RS instances processed at once (they share the batcher)")
    dicom_claim_timeout_s: float = Field(300.0, ge=2, le=86400, description="an instance a replica claimed this long "
                                         "ago without finishing is screened by another (the first one died)")

    auth: Literal["on", "off"] = Field("on", description="off disables API keys (logged as a warning)")
    api_keys: str | None = Field(None, description="'<key>:<predict|admin>,…'")
    api_keys_file: Path | None = Field(None, description="file with one '<key>:<role>' per line")
    metrics_auth: bool = Field(False, description="require a predict key for /metrics")
    rate_limit_per_min: float = Field(600, ge=0, description="requests a minute per API key (per client IP without keys); 0: off")
    rate_limit_burst: int = Field(60, ge=1, description="requests a client may send at once before the rate applies")
    max_concurrent_uploads: int = Field(32, ge=1, description="request bodies read at once; more get 503")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS (JSON list); empty: CORS off")

    log_level: str = "INFO"
    log_json: bool = True
    docs_enabled: bool = True
    console: bool = Field(True, description="serve the web console at / (false: the API alone)")

    @field_validator("dicom_outputs")
    @classmethod
    def _known_outputs(cls, value: str) -> str:
        names = [v.strip().lower() for v in value.split(",") if v.strip()]
        unknown = [n for n in names if n not in DicomOutput.__members__]
        if unknown or not names:
            raise ValueError(f"CXR_DICOM_OUTPUTS: {', '.join(unknown) or 'empty'}; use a comma list of sr, pm, sc")
        return ",".join(names)

    @property
    def dicom_output_kinds(self) -> tuple[DicomOutput, ...]:
        """The configured objects in delivery order (SR first: a PACS files the report before the images)."""
        chosen = set(self.dicom_outputs.split(","))
        return tuple(kind for kind in DicomOutput if kind.value in chosen)

    @property
    def integrity_guard_dir(self) -> Path:
        return self.integrity_guard or self.weights_dir / "integrity_guard"

    @property
    def onnx_cache_dir(self) -> Path:
        """Exported ONNX graphs, named by the sha256 of the weights they come from (models/onnx_serving.py)."""
        return self.onnx_cache or self.state_dir / "onnx"
