"""A loaded model ready to serve: verified weights, warmed up, run by ONNX Runtime or eager PyTorch.

Through ONNX Runtime (the CPU default) nothing here imports torch; the eager runner (a GPU, or no
onnxruntime installed) imports it when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.schemas import ModelRef
from models.card import ModelCard
from models.onnx_serving import cpu_session
from models.postprocess import calibrated_probs


class Runner(Protocol):
    backend: str

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 1, S, S) float32 -> logits (N, 2) and every class's map (N, 2, h, w), float32."""
        ...


class OnnxRunner:
    """ONNX Runtime session over the exported (logits, class maps) graph; CPU only."""

    backend = "onnx"

    def __init__(self, graph: bytes, threads: int | None) -> None:
        self.session = cpu_session(graph, threads)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, cams = self.session.run(None, {"x": x})
        return logits, cams


class TorchRunner:
    """The eager model (``forward_with_cam``) on its device."""

    backend = "torch"

    def __init__(self, model: Any, device: str) -> None:
        self.model = model
        self.device = device

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from models.gradcam import forward_with_cam

        with torch.inference_mode():
            logits, cams = forward_with_cam(self.model, torch.from_numpy(x).to(self.device, non_blocking=True))
        return logits.float().cpu().numpy(), cams.float().cpu().numpy()


@dataclass(frozen=True)
class ServingModel:
    """A loaded, verified, warmed-up model. Immutable: swapping replaces the whole object."""

    card: ModelCard
    runner: Runner
    device: str
    folder: Path
    source: str

    @property
    def backend(self) -> str:
        return self.runner.backend

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.card.name, version=self.card.version, sha256=self.card.sha256)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 1, S, S) normalized batch -> calibrated probabilities (N, 2) and class maps (N, 2, h, w)."""
        logits, cams = self.runner(np.ascontiguousarray(x, dtype=np.float32))
        return calibrated_probs(logits, self.card.temperature, self.card.bias), np.asarray(cams, dtype=np.float32)

    def warmup(self, batch_sizes: tuple[int, ...] = (1, 2)) -> None:
        s = self.card.input.image_size
        for n in batch_sizes:
            self.run(np.zeros((n, 1, s, s), dtype=np.float32))
