"""CPU side of the GPU check: the inputs and the CPU reference the device must reproduce.

  .venv/bin/python scripts/gpu/reference.py [--images 8] [--per-class 60]

Writes the ignored folder ``.gpu/`` at the repository root (carried to the device machine):
``images/`` a few real test radiographs, ``reference.npz`` their calibrated probabilities and
class maps from the shipped default model on the CPU (eager PyTorch, the same code the GPU path
runs), ``data/site/{NORMAL,PNEUMONIA}`` a small fine-tuning set, and ``cpu.json`` this machine's
training images/s for the same job (a short CPU run, for the GPU's ratio).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.core.config import Settings  # noqa: E402
from app.inference.catalog import ModelRegistry, catalog_of  # noqa: E402
from models.imaging import decode_image  # noqa: E402
from tests.synth import DATA_ROOT  # noqa: E402

OUT = ROOT / ".gpu"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--per-class", type=int, default=60)
    args = ap.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "images").mkdir(parents=True)
    files = [p for label in ("NORMAL", "PNEUMONIA")
             for p in sorted((DATA_ROOT / "test" / label).glob("*.jpeg"))[: args.images // 2]]
    registry = ModelRegistry(catalog_of(Settings()), torch.device("cpu"), backend="torch")
    model = registry.activate(None)
    probs, cams, names = [], [], []
    for path in files:
        shutil.copy(path, OUT / "images" / path.name)
        x = model.card.input.to_tensor(decode_image(path.read_bytes()).pixels)[None]
        p, c = model.run(x)
        probs.append(p[0])
        cams.append(c[0])
        names.append(path.name)
    np.savez(OUT / "reference.npz", names=np.array(names), probabilities=np.stack(probs), cams=np.stack(cams))
    for label in ("NORMAL", "PNEUMONIA"):
        dest = OUT / "data" / "site" / label
        dest.mkdir(parents=True)
        for path in sorted((DATA_ROOT / "train" / label).glob("*.jpeg"))[: args.per_class]:
            shutil.copy(path, dest / path.name)
    (OUT / "cpu.json").write_text(json.dumps({"model": f"{model.card.name}@{model.card.version}",
                                              "images": names, "per_class": args.per_class}))
    print(json.dumps({"written": str(OUT), "images": len(names), "train_images": 2 * args.per_class}))


if __name__ == "__main__":
    main()
