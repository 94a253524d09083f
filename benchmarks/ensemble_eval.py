"""Experiment, not shipped: what would averaging models' logits give? Prints ONE JSON line.

Each member's logits on the patient-level validation split (from train, the split the cards were
calibrated on) and on the test split; the ensemble averages the members' log-softmax outputs,
fits ONE temperature and the screening threshold (sensitivity >= 0.95) on validation, and is
then scored on test. Test numbers are reported, never used to choose.

  .venv/bin/python benchmarks/ensemble_eval.py --model efficientnet_lite0 --model resnet18 [--model ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.config import TrainConfig  # noqa: E402
from models.data import load_tensors  # noqa: E402
from models.inference import calibrated_p_pneumonia, predict_logits  # noqa: E402
from models.metrics import fit_temperature, screening_threshold, summarize  # noqa: E402
from models.package import split_samples  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.inference.catalog import catalog_of  # noqa: E402
from models.weights import load_model  # noqa: E402


def member_logits(name: str, data: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    loaded = load_model(catalog_of(Settings()).find(name).folder)
    card = loaded.card
    samples = split_samples(TrainConfig.from_dict({**card.training.config, "data": str(data)}))
    logits, labels = {}, {}
    for split in ("val", "test"):
        ds = load_tensors(samples[split], card.input)
        logits[split] = torch.log_softmax(predict_logits(loaded.model, ds.images, card.input, torch.device("cpu")), 1)
        labels[split] = ds.labels
    return logits, labels


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    members = [member_logits(m, Path(args.data)) for m in args.model]
    labels = members[0][1]
    for _, lab in members[1:]:
        assert all(torch.equal(lab[k], labels[k]) for k in labels), "members saw different splits"
    mean = {k: torch.stack([m[0][k] for m in members]).mean(0) for k in ("val", "test")}
    with torch.enable_grad():
        t = fit_temperature(mean["val"], labels["val"])
    p = {k: calibrated_p_pneumonia(mean[k], t).numpy() for k in mean}
    y = {k: labels[k].numpy() for k in labels}
    threshold = screening_threshold(y["val"], p["val"], min_sensitivity=0.95)
    print(json.dumps({"experiment": "ensemble", "members": args.model, "temperature": round(t, 4),
                      "val": summarize(y["val"], p["val"], threshold), "test": summarize(y["test"], p["test"], threshold)}))


if __name__ == "__main__":
    main()
