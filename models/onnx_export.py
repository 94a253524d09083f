"""Export a model to ONNX with two outputs, logits and every class's activation map.

The graph is the same ``forward_with_cam`` the PyTorch backend runs, so ONNX Runtime gives the
prediction and the heatmap from one pass. Exported from the verified weights at load time,
so an .onnx file can never drift from the safetensors it came from.
"""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn

from models.gradcam import forward_with_cam


class _LogitsAndCams(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return forward_with_cam(self.model, x)


def export_onnx(model: nn.Module, image_size: int, *, opset: int = 17) -> bytes:
    wrapper = _LogitsAndCams(model).eval()  # eval: batch norm uses running statistics in the graph
    buf = io.BytesIO()
    # The TorchScript-based exporter is deprecated in favour of torch.export + onnxscript; it is kept
    # because it needs no extra package here, and tests pin its output to PyTorch's within 1e-4.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapper, (torch.zeros(1, 1, image_size, image_size),), buf, input_names=["x"],
            output_names=["logits", "cams"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}, "cams": {0: "n"}},
            opset_version=opset, dynamo=False,
        )
    return buf.getvalue()
