"""What the shipped operating point does on the shared test split, and what one fitted on that split
(cross-fitted by patient) would do on images of that period it did not see. Prints ONE JSON line.

  .venv/bin/python benchmarks/crossfit.py [--model NAME] [--folds 5] [--method platt|temperature]
                                          [--min-sensitivity 0.95]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import Settings  # noqa: E402
from app.inference.catalog import catalog_of  # noqa: E402
from models.crossfit import cross_fit  # noqa: E402
from models.data import load_tensors, scan_class_folders  # noqa: E402
from models.inference import calibrated_p_pneumonia, predict_logits  # noqa: E402
from models.metrics import summarize  # noqa: E402
from models.weights import load_model  # noqa: E402
from tests.synth import DATA_ROOT  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--method", choices=["platt", "temperature"], default="platt")
    ap.add_argument("--min-sensitivity", type=float, default=0.95)
    args = ap.parse_args()
    loaded = load_model(catalog_of(Settings()).find(args.model).folder)
    samples = scan_class_folders(DATA_ROOT / "test").samples
    data = load_tensors(samples, loaded.card.input)
    logits = predict_logits(loaded.model, data.images, loaded.card.input, torch.device("cpu"))
    by_path = {s.path: s.patient for s in samples}
    patients = [by_path[p] for p in data.paths]
    shipped = summarize(data.labels.numpy(), calibrated_p_pneumonia(logits, loaded.card.temperature, loaded.card.bias).numpy(),
                        loaded.card.threshold)
    crossed = cross_fit(logits, data.labels, patients, k=args.folds, method=args.method,
                        min_sensitivity=args.min_sensitivity)
    crossed.pop("p_out_of_fold")
    print(json.dumps({"model": f"{loaded.card.name}@{loaded.card.version}", "data": str(DATA_ROOT / "test"),
                      "shipped_operating_point": {k: shipped[k] for k in ("n", "auroc", "accuracy", "sensitivity",
                                                                           "specificity", "ece")},
                      "cross_fitted_on_test": crossed}))


if __name__ == "__main__":
    main()
