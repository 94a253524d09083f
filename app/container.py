"""The one typed container of the service's parts, built by create_app and reached by routes through
``app/api/deps.py``. The background parts exist once the lifespan has started them."""

from __future__ import annotations

from dataclasses import dataclass

from app.audit.inputs import InputKeeper
from app.audit.trail import AuditTrail
from app.core.config import Settings
from app.core.metrics import Metrics
from app.core.ratelimit import RateLimiter, UploadSlots
from app.core.security import KeyRing
from app.inference.batcher import DynamicBatcher
from app.inference.catalog import ModelRegistry
from app.inference.pipeline import Predictor
from app.pacs.results import ResultStore
from app.pacs.service import StowService
from app.training.datasets.store import DatasetStore
from app.training.runner import JobRunner


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    registry: ModelRegistry
    batcher: DynamicBatcher
    predictor: Predictor
    datasets: DatasetStore
    rate_limiter: RateLimiter
    upload_slots: UploadSlots
    keyring: KeyRing | None  # None: CXR_AUTH=off; an empty ring denies everyone until keys are loaded
    jobs: JobRunner | None = None  # started by the lifespan
    results: ResultStore | None = None
    stow: StowService | None = None
    audit: AuditTrail | None = None  # None: CXR_AUDIT=off (or not started yet)
    inputs: InputKeeper | None = None  # None unless CXR_KEEP_INPUTS_DAYS is set
