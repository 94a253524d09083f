"""Compare the shipped models: parameters, test metrics (from `cxr evaluate`'s code path), CPU
ms/image at batch 1 for eager PyTorch and ONNX Runtime, and training time. Prints ONE JSON line.

  .venv/bin/python benchmarks/models.py [--data ../shared/data/chest_xray]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.inference.serving import OnnxRunner  # noqa: E402
from benchmarks.timing import median_ms  # noqa: E402
from models.evaluate import evaluate  # noqa: E402
from models.gradcam import forward_with_cam  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.inference.catalog import catalog_of  # noqa: E402
from models.onnx_export import export_onnx  # noqa: E402
from models.weights import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    args = ap.parse_args()
    rows = {}
    catalog = catalog_of(Settings())
    for name in [e.name for e in catalog.entries() if e.source == "shipped"]:
        loaded = load_model(catalog.weights_dir / name)
        s = loaded.card.input.image_size
        x = torch.randn(1, 1, s, s)
        onnx = OnnxRunner(export_onnx(loaded.model, s), None)
        with torch.inference_mode():
            torch_ms = median_ms(lambda: forward_with_cam(loaded.model, x))
        onnx_ms = median_ms(lambda: onnx(x.numpy()))
        report = evaluate(catalog.weights_dir / name, Path(args.data), device="cpu")
        rows[name] = {
            "params": loaded.card.num_parameters, "image_size": s,
            "test": {k: report[k] for k in ("n", "auroc", "accuracy", "sensitivity", "specificity", "f1", "ece")},
            "threshold": loaded.card.threshold, "temperature": round(loaded.card.temperature, 3),
            "val_auroc": loaded.card.metrics["val"].auroc,
            "cpu_ms_torch": torch_ms, "cpu_ms_onnx": onnx_ms,
            "train_minutes": round(loaded.card.training.duration_s / 60, 1), "epochs_run": loaded.card.training.epochs_run,
        }
    print(json.dumps({"threads": torch.get_num_threads(), "models": rows}))


if __name__ == "__main__":
    main()
