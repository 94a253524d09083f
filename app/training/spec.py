"""The typed job requests: what POST /train or POST /models/{name}/calibrate asked for plus what the
server resolved, and the one mapping of a fine-tune to the training code's TrainConfig (every
policy the worker applies is written here)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field

from app.schemas import CalibrateRequest, TrainRequest
from models.card import ModelCard
from models.config import TrainConfig


class JobSpec(TrainRequest):
    """Stored as the job's ``request`` (JSON); the ``*_dir`` fields are server paths, never shown."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["train"] = "train"
    base_model: str  # resolved: the model name the job fine-tunes
    dataset_counts: dict[str, int] = Field(description="class -> training images, counted before queuing")
    dataset_dir: str
    base_model_dir: str
    threads: int = 1
    device: str = "cpu"
    integrity_guard_dir: str | None = None  # None: CXR_INTEGRITY=off, the new version is not checked

    def train_config(self, base_card: ModelCard, out: Path, *, job_id: str, resume: bool) -> TrainConfig:
        """Fine-tune ``base_card``'s architecture at its input size from its weights, on this job's data.

        Policy: ``freeze_backbone`` freezes for every epoch; early stopping never ends a fine-tune
        before two epochs (patience = max(2, epochs)); the given val/ split is used when the dataset
        has one (else a patient-level split of ``val_fraction``); no ImageNet start (the base model's
        weights are the start); the version is the UTC time the job started."""
        return TrainConfig(
            arch=base_card.architecture, data=self.dataset_dir, out=str(out), epochs=self.epochs,
            batch_size=self.batch_size, lr=self.learning_rate, image_size=base_card.input.image_size,
            seed=self.seed, val_fraction=self.val_fraction,
            freeze_epochs=self.epochs if self.freeze_backbone else 0, patience=max(2, self.epochs),
            init_from=self.base_model_dir, pretrained=False, device=self.device, threads=self.threads,
            resume=resume, name=f"{base_card.name}-ft-{job_id}", version=time.strftime("%Y%m%d-%H%M%S"),
            extra_val_from_official=False, prefer_given_val=True,
        )


class CalibrationSpec(CalibrateRequest):
    """A calibration job: the model and the site's images, resolved and counted before queuing."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["calibrate"] = "calibrate"
    model: str  # the model name the job calibrates (what /models lists)
    model_dir: str
    dataset_counts: dict[str, int] = Field(description="class -> images, counted before queuing")
    dataset_dir: str
    min_per_class: int
    integrity_guard_dir: str | None = None  # None: CXR_INTEGRITY=off, every readable image is used

    def output_name(self, job_id: str) -> str:
        """The new version's folder under CXR_STATE_DIR/models: what POST /models/{name}/activate takes."""
        return f"{self.model}-cal-{job_id}"


def load_spec(request: dict[str, Any]) -> JobSpec | CalibrationSpec:
    """A stored request; jobs queued before calibration existed have no ``kind`` and are fine-tunes."""
    if request.get("kind") == "calibrate":
        return CalibrationSpec.model_validate(request)
    return JobSpec.model_validate(request)


