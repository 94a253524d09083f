"""Recipe selection on the shared test split, by cross-fitted (out-of-fold) figures: the table in the README.

  .venv/bin/python benchmarks/selection.py [--model DIR ...] [--folds 5]

For each model (default: every shipped one, plus any --model folder), the logits on the 369 shared test
images are computed once; then for each operating-point rule (temperature only or Platt: temperature +
bias; threshold for sensitivity >= 0.95 or 0.97) the rule is cross-fitted (5 folds by patient) and the
pooled out-of-fold AUROC, accuracy, sensitivity, specificity and ECE are reported. Also: the mean logit
of the three single models (an ensemble, 3x the latency) and, for the default, test-time augmentation
(a 90 % centre crop, a horizontal flip) averaged with the plain pass (2x the latency). Prints one JSON
line per row.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import Settings  # noqa: E402
from app.inference.catalog import catalog_of  # noqa: E402
from models.crossfit import METRICS, cross_fit  # noqa: E402
from models.data import patient_id, scan_class_folders  # noqa: E402
from models.imaging import decode_image  # noqa: E402
from models.inference import predict_logits  # noqa: E402
from models.weights import LoadedModel, load_model  # noqa: E402
from tests.synth import DATA_ROOT  # noqa: E402

RULES = [("platt", 0.95), ("platt", 0.97), ("temperature", 0.95)]


def logits_of(loaded: LoadedModel, raw: list[np.ndarray], view: str = "plain") -> torch.Tensor:
    spec = loaded.card.input

    def look(p: np.ndarray) -> np.ndarray:
        if view == "crop90":
            h, w = p.shape
            dh, dw = int(h * 0.05), int(w * 0.05)
            p = p[dh:h - dh, dw:w - dw]
        return spec.resize_uint8(np.ascontiguousarray(p))

    images = torch.from_numpy(np.stack([look(p) for p in raw]))
    if view == "flip":
        images = images.flip(-1)
    return predict_logits(loaded.model, images, spec, torch.device("cpu"))


def rows(name: str, logits: torch.Tensor, y: torch.Tensor, patients: list[str], folds: int) -> None:
    diff = (logits[:, 1] - logits[:, 0]).double()
    two = torch.stack([torch.zeros_like(diff), diff], 1)
    for method, sens in RULES:
        out = cross_fit(two, y, patients, k=folds, method=method, min_sensitivity=sens)
        print(json.dumps({"model": name, "rule": f"{method}, sensitivity >= {sens}",
                          **{m: out[m]["value"] for m in METRICS}, "ci95": {m: out[m]["ci95"] for m in METRICS}}),
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", default=[], help="an extra model folder (repeat)")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(2)
    catalog = catalog_of(Settings())
    samples = scan_class_folders(DATA_ROOT / "test").samples
    raw = [decode_image(s.path.read_bytes()).pixels for s in samples]
    y = torch.tensor([s.label for s in samples])
    patients = [patient_id(s.path) for s in samples]
    singles = {}
    folders = [e.folder for e in catalog.entries() if e.source == "shipped"] + [Path(m) for m in args.model]
    for folder in folders:
        loaded = load_model(folder)
        logits = logits_of(loaded, raw)
        rows(f"{loaded.card.name}@{loaded.card.version}", logits, y, patients, args.folds)
        if loaded.card.name in ("efficientnet_lite0", "resnet18", "simple_cnn"):
            singles[loaded.card.name] = logits
        if folder.name == catalog.default_name():
            for view in ("crop90", "flip"):
                mean = (logits + logits_of(loaded, raw, view)) / 2
                rows(f"{loaded.card.name} + {view} test-time augmentation", mean, y, patients, args.folds)
    if len(singles) == 3:
        diffs = [(lg[:, 1] - lg[:, 0]) for lg in singles.values()]
        mean = torch.stack(diffs).mean(0)
        rows("ensemble of the three single models", torch.stack([torch.zeros_like(mean), mean], 1), y, patients,
             args.folds)


if __name__ == "__main__":
    main()
