"""Model card: everything needed to rebuild, verify and honestly describe a weights file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.errors import WeightsError
from models.registry import CLASSES
from models.transforms import PreprocessSpec
from models.triage import UrgentFigures

M = TypeVar("M", bound=BaseModel)
CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"

INTENDED_USE = (
    "Triage aid that ranks chest radiographs by likelihood of pneumonia so a radiologist reads "
    "likely-positive studies first. Trained on pediatric (1-5 years) anterior-posterior chest "
    "X-rays from one hospital (Kermany et al. 2018)."
)
LIMITATIONS = (
    "Not a diagnosis and not a medical device. Not validated on adults, lateral or PA views, "
    "other hospitals' scanners, or other findings (tuberculosis, COVID-19, effusion). "
    "Probabilities are calibrated on a validation split of the same source; expect drift elsewhere."
)


class SplitMetrics(BaseModel):
    model_config = ConfigDict(extra="allow")

    n: int
    auroc: float
    accuracy: float
    sensitivity: float
    specificity: float
    f1: float | None = None
    ece: float | None = None
    threshold: float | None = None


class Figure(BaseModel):
    value: float
    ci95: tuple[float, float]


class SiteCalibration(BaseModel):
    """Temperature, bias and threshold refitted on labelled images like the deployment's; weights unchanged."""

    model_config = ConfigDict(extra="allow")

    calibrated_from: str = Field(description="name@version whose weights (same sha256) were calibrated")
    data: str = Field(description="the labelled folder or dataset id the operating point was fitted on")
    counts: dict[str, int] = Field(description="class -> images used (accepted by the integrity check)")
    refused: int = Field(0, description="images the integrity check refused (left out, as /predict refuses them)")
    unreadable: int = 0
    method: str = Field(description="temperature (T only) or platt (T and bias), fitted by NLL")
    min_sensitivity: float
    folds: int
    patients: int
    out_of_fold: dict[str, Figure] = Field(
        description="auroc, accuracy, sensitivity, specificity, ece of predictions each made by an operating point "
        "fitted without that image's patient (k folds by patient), with 95 % bootstrap intervals over patients")
    fold_fits: list[dict[str, float]] = Field(default_factory=list)
    previous: dict[str, Any] = Field(description="the calibrated-from version's operating point and its figures "
                                     "on the same images")
    command: str
    created: str


class ScoreReference(BaseModel):
    """The distribution of P(PNEUMONIA) the model gives on images like the deployment's, at its operating
    point: what drift monitoring (GET /monitoring) compares live scores with (population stability index)."""

    data: str = Field(description="the images it was measured on")
    n: int
    bin_edges: list[float] = Field(description="equal-width bins of P(PNEUMONIA) over [0, 1]")
    fractions: list[float] = Field(description="share of images per bin")
    positive_rate: float = Field(description="share called PNEUMONIA at the card's threshold")
    expected_positive_rate: tuple[float, float] = Field(
        description="the band outside which a live positive rate is flagged: from rate / 1.5 to rate x 1.5")


class TrainingInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    data: str
    counts: dict[str, dict[str, int]] = Field(description="split -> class -> images used")
    patient_split_seed: int
    val_fraction: float
    config: dict[str, Any]
    command: str
    duration_s: float
    epochs_run: int
    best_epoch: int
    images_per_s: float | None = None
    notes: str = ""


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    architecture: str
    classes: list[str] = Field(default_factory=lambda: list(CLASSES))
    input: PreprocessSpec
    threshold: float = Field(ge=0, le=1, description="decision threshold on calibrated P(PNEUMONIA)")
    temperature: float = Field(gt=0, description="logits are divided by this before the softmax")
    bias: float = Field(0.0, ge=-20, le=20, description="added to the PNEUMONIA logit after the temperature: "
                        "P(PNEUMONIA) = sigmoid((z_P - z_N) / temperature + bias); 0 unless calibrated on site images")
    operating_point: str | None = Field(None, description="how the temperature and threshold were fitted")
    urgent_threshold: float | None = Field(
        None, ge=0, le=1, description="worklist priority: urgent when P(PNEUMONIA) >= this (a high-specificity point "
        "at or above the threshold; models/triage.py); absent: every image called PNEUMONIA is urgent")
    urgent_rule: str | None = Field(None, description="how the urgent threshold was chosen")
    urgent_out_of_fold: UrgentFigures | None = Field(
        None, description="the urgent point's cross-fitted specificity, sensitivity, PPV and share of images")
    num_parameters: int
    weights_file: str = WEIGHTS_FILE
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created: str
    pretrained: str | None = None
    base_model: str | None = None
    training: TrainingInfo
    metrics: dict[str, SplitMetrics] = Field(description="split name -> metrics at the card's threshold")
    base_metrics: dict[str, SplitMetrics] | None = Field(
        None, description="fine-tunes: the base model's metrics on the same validation split")
    integrity: dict[str, Any] | None = Field(
        None, description="fine-tunes: the integrity guard run over this version's validation images (share accepted)")
    calibration: SiteCalibration | None = Field(
        None, description="versions calibrated on a site's images (cxr calibrate, POST /models/{name}/calibrate): "
        "what fitted the operating point and its cross-fitted figures")
    reference: ScoreReference | None = Field(
        None, description="P(PNEUMONIA) distribution on images like the deployment's (site calibration writes it)")
    intended_use: str = INTENDED_USE
    limitations: str = LIMITATIONS
    data_license: str = "Kermany et al., Cell 2018, CC BY 4.0"


def read_validated(path: Path, schema: type[M], what: str) -> M:
    """A JSON card parsed into ``schema``; WeightsError naming ``what`` when missing or invalid."""
    try:
        return schema.model_validate_json(Path(path).read_bytes())
    except FileNotFoundError:
        raise WeightsError(f"{what} {path} not found") from None
    except (ValidationError, ValueError) as exc:
        raise WeightsError(f"{what} {path} is invalid: {exc.__class__.__name__}: {str(exc)[:300]}") from None


def read_card(folder: Path) -> ModelCard:
    return read_validated(Path(folder) / CARD_FILE, ModelCard, "model card")


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``: readers see
    the old file or the whole new one, and a crash after return cannot lose it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    """JSON through write_atomic (0644: cards and pointers are not secrets)."""
    write_atomic(path, (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def write_card(folder: Path, card: ModelCard) -> None:
    write_json_atomic(Path(folder) / CARD_FILE, card.model_dump(mode="json"))
