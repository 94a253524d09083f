"""Export a model to ONNX with two outputs, logits and every class's activation map.

The graph is the same ``forward_with_cam`` the PyTorch backend runs, so ONNX Runtime gives the
prediction and the heatmap from one pass. Exported from the verified weights (models.onnx_serving
keys its cache by their sha256), so an .onnx file can never drift from the safetensors it came from.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

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


def export_guard_onnx(guard: nn.Module, image_size: int, *, opset: int = 17) -> bytes:
    """The integrity guard as a static (1, 1, S, S) graph: one image per call, and a third faster
    than a dynamic batch axis. Scores equal eager PyTorch's within 1e-5 (tests)."""
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(guard.eval(), (torch.zeros(1, 1, image_size, image_size),), buf, input_names=["x"],
                          output_names=["p"], opset_version=opset, dynamo=False)
    return buf.getvalue()


def export_folder(kind: str, folder: Path) -> bytes:
    """Load (verifying the digests) and export the classifier or the integrity guard in ``folder``."""
    if kind == "classifier":
        from models.weights import load_model

        loaded = load_model(folder)
        return export_onnx(loaded.model, loaded.card.input.image_size)
    from models.integrity.guard import load_guard

    guard = load_guard(folder)
    return export_guard_onnx(guard.guard, guard.card.input.image_size)


def main(argv: list[str] | None = None) -> int:
    """``python -m models.onnx_export classifier|guard FOLDER OUT``: how a server that does not load
    torch gets its graphs (models.onnx_serving runs this in a child process)."""
    import argparse
    import sys

    from models.errors import CXRError

    ap = argparse.ArgumentParser(prog="python -m models.onnx_export")
    ap.add_argument("kind", choices=["classifier", "guard"])
    ap.add_argument("folder", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    try:
        args.out.write_bytes(export_folder(args.kind, args.folder))
    except CXRError as exc:
        print(exc.detail, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
