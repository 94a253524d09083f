"""The pixel check: P(frontal chest radiograph) from a small carded model.

The guard is the ImageNet-pretrained EfficientNet-Lite0 backbone (from the wheel the
classifier's pretraining uses; its stem folded to grayscale) at a small input size, global
average pooling, and one logistic unit fitted by ``models.integrity.fit``. The backbone is
generic on purpose: features learned for ImageNet tell a knee, a photo or a lateral view
from a frontal chest better than features fine-tuned to tell pneumonia from normal, and
they do not change when a site fine-tunes the classifier, so one guard serves every version.

Files in the guard's folder: ``head.safetensors`` (the logistic unit) and ``guard_card.json``
(sha256 of both the head and the backbone weights, input spec, threshold, fitting data and
metrics). ``load_guard`` verifies both digests before anything is scored. The card, that check and
the ONNX Runtime scorer the service uses live in torch-free modules (guard_card, guard_onnx).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from models.digest import sha256_file
from models.errors import WeightsError
from models.integrity.guard_card import (  # noqa: F401  (re-exported for the fitting code)
    GUARD_CARD, HEAD_FILE, GuardCard, backbone_sha256, read_guard_card, verify_guard,
)

FEATURES = 1280


class Guard(nn.Module):
    """(N, 1, S, S) normalized images -> (N,) P(frontal chest radiograph)."""

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.head = nn.Linear(FEATURES, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.embed(x))).squeeze(1)


def build_guard() -> Guard:
    """The guard with ImageNet features and an untrained head (eval mode)."""
    from models.registry import build_model

    net = build_model("efficientnet_lite0", num_classes=2, pretrained=True)
    return Guard(net.features).eval()


def save_guard(folder: Path, guard: Guard, card: GuardCard) -> GuardCard:
    from models.card import write_json_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in guard.head.state_dict().items()}
    save_file(state, str(folder / card.head_file))
    (folder / card.head_file).chmod(0o644)
    card = card.model_copy(update={"sha256": sha256_file(folder / card.head_file)})
    write_json_atomic(folder / GUARD_CARD, card.model_dump(mode="json"))
    return card


@dataclass(frozen=True)
class LoadedGuard:
    """The eager PyTorch guard (fitting, evaluation, and serving where ONNX Runtime is missing)."""

    card: GuardCard
    guard: Guard
    folder: Path

    def preprocess(self, pixels: np.ndarray) -> torch.Tensor:
        """(H, W) uint8 -> (1, S, S) float32, the guard's own input size."""
        return self.card.input.to_tensor(pixels)

    def score(self, pixels: np.ndarray) -> float:
        """P(frontal chest radiograph) of one (H, W) uint8 image. Thread-safe."""
        with torch.inference_mode():
            return float(self.guard(self.preprocess(pixels)[None])[0])


def load_guard(folder: Path) -> LoadedGuard:
    """Verify the card's digests (head and backbone), build the guard (eval mode)."""
    folder = Path(folder)
    card = verify_guard(folder)
    head = folder / card.head_file
    guard = build_guard()
    try:
        guard.head.load_state_dict(load_file(str(head)), strict=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise WeightsError(f"integrity guard weights {head} do not fit: {str(exc)[:200]}") from None
    return LoadedGuard(card, guard.eval(), folder)
