"""Where do the models look? Share of each PNEUMONIA Grad-CAM inside the lung-field box, on the
patient-level VALIDATION split each card was calibrated on (never the test split).

The box (rows 15-90 %, columns 12-88 % of the image) holds the lung fields of a centred AP
chest film; the shoulders, the neck, the collimation edges and the burned-in markers lie outside
it. Evidence outside it is a shortcut the model may have learned. Prints ONE JSON line.

  .venv/bin/python benchmarks/cam_focus.py --model weights/efficientnet_lite0 [--model runs/x ...]
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
from models.gradcam import forward_with_cam  # noqa: E402
from models.package import split_samples  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.inference.catalog import catalog_of  # noqa: E402
from models.weights import load_model  # noqa: E402

BOX = (0.15, 0.90, 0.12, 0.88)  # top, bottom, left, right (fractions of the side)


def inside_share(cams: torch.Tensor, box: tuple[float, float, float, float] = BOX) -> torch.Tensor:
    """(N, h, w) maps -> (N,) share of the positive map mass inside ``box`` (maps upsampled to 112 px)."""
    up = torch.nn.functional.interpolate(cams.clamp(min=0).unsqueeze(1), size=(112, 112), mode="bilinear",
                                         align_corners=False).squeeze(1)
    t, b, l, r = (round(f * 112) for f in box)
    total = up.sum(dim=(1, 2)).clamp(min=1e-12)
    return up[:, t:b, l:r].sum(dim=(1, 2)) / total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True, help="model name or folder (repeatable)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    out = {}
    for name in args.model:
        loaded = load_model(catalog_of(Settings()).find(name).folder)
        card = loaded.card
        val = split_samples(TrainConfig.from_dict({**card.training.config, "data": args.data}))["val"]
        val = [s for s in val if s.label == 1]
        ds = load_tensors(val, card.input)
        shares = []
        for i in range(0, len(ds), 64):
            x = card.input.normalize(ds.images[i:i + 64]).unsqueeze(1)
            _, cams = forward_with_cam(loaded.model.eval(), x)
            shares.append(inside_share(cams[:, 1]))
        s = torch.cat(shares)
        out[f"{card.name}@{card.version} ({name})"] = {
            "n_val_pneumonia": len(ds), "mean_share_in_lung_box": round(float(s.mean()), 4),
            "median": round(float(s.median()), 4), "share_of_images_below_0.5": round(float((s < 0.5).float().mean()), 4),
        }
    print(json.dumps({"benchmark": "cam_focus", "split": "validation (patient-level, from train)", "box": BOX,
                      "models": out}))


if __name__ == "__main__":
    main()
