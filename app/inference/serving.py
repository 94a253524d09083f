"""A loaded model ready to serve: verified weights, warmed up, run by eager PyTorch or ONNX Runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from app.schemas import ModelRef
from models.card import ModelCard
from models.gradcam import forward_with_cam
from models.inference import calibrated_probs


class OnnxRunner:
    """ONNX Runtime session over the exported (logits, class maps) graph; CPU only."""

    def __init__(self, model: torch.nn.Module, image_size: int, threads: int | None) -> None:
        import onnxruntime as ort

        from models.onnx_export import export_onnx

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # no busy-waiting between kernels: a spinning thread steals the core a training job or
        # the decoder needs, which costs more latency under load than it saves when idle
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(export_onnx(model, image_size), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, cams = self.session.run(None, {"x": x.numpy()})
        return torch.from_numpy(logits), torch.from_numpy(cams)


@dataclass(frozen=True)
class ServingModel:
    """A loaded, verified, warmed-up model. Immutable: swapping replaces the whole object."""

    card: ModelCard
    model: torch.nn.Module
    device: torch.device
    folder: Path
    source: str
    onnx: OnnxRunner | None = None

    @property
    def backend(self) -> str:
        return "onnx" if self.onnx is not None else "torch"

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.card.name, version=self.card.version, sha256=self.card.sha256)

    def run(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(N, 1, S, S) normalized batch -> calibrated probabilities (N, 2) and class maps (N, 2, h, w)."""
        with torch.inference_mode():
            if self.onnx is not None:
                logits, cams = self.onnx(x)
            else:
                logits, cams = forward_with_cam(self.model, x.to(self.device, non_blocking=True))
            probs = calibrated_probs(logits.float(), self.card.temperature, self.card.bias)
        return probs.cpu().numpy().astype(np.float64), cams.float().cpu().numpy()

    def warmup(self, batch_sizes: tuple[int, ...] = (1, 2)) -> None:
        s = self.card.input.image_size
        for n in batch_sizes:
            self.run(torch.zeros(n, 1, s, s))
