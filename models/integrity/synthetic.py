"""Synthetic images that are certainly not radiographs: noise, blank, gradients, text, patterns.

The guard is fitted with them as negatives and tests check that it refuses every kind. All
randomness comes from the ``rng`` passed in, so a seeded set repeats exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Maker = Callable[[np.random.Generator, int, int], np.ndarray]


def noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    if rng.random() < 0.5:
        return rng.integers(0, 256, (h, w), dtype=np.uint8)
    return np.clip(rng.normal(rng.uniform(60, 190), rng.uniform(10, 70), (h, w)), 0, 255).astype(np.uint8)


def blank(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return np.full((h, w), int(rng.integers(0, 256)), dtype=np.uint8)


def gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if rng.random() < 0.7:  # linear, any direction
        a = rng.uniform(0, 2 * np.pi)
        t = np.cos(a) * xx / w + np.sin(a) * yy / h
    else:  # radial
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        t = np.hypot(yy - cy, xx - cx)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-9)
    return (t * 255).astype(np.uint8)


def text(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Lines of words on a page, like a scanned form or a screenshot."""
    bg = int(rng.choice([255, 240, 20, int(rng.integers(0, 256))]))
    img = Image.new("L", (w, h), bg)
    draw = ImageDraw.Draw(img)
    size = int(rng.integers(10, 40))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    fg = 255 - bg if abs(255 - 2 * bg) > 60 else 0
    words = ["patient", "request", "chest", "report", "date", "name", "ID", "exam", "signature", "2026", "PA",
             "radiology", "order", "history", "AP", "clinical", "form", "page", "1", "lorem", "ipsum"]
    y = int(rng.integers(2, 20))
    while y < h - size:
        line = " ".join(rng.choice(words, size=int(rng.integers(2, 9))))
        draw.text((int(rng.integers(2, 30)), y), line, fill=fg, font=font)
        y += int(size * rng.uniform(1.2, 2.0))
    return np.asarray(img, dtype=np.uint8)


def pattern(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Stripes, checkerboards and random shapes: test patterns, charts, drawings."""
    yy, xx = np.mgrid[0:h, 0:w]
    kind = rng.integers(0, 3)
    if kind == 0:
        period = int(rng.integers(4, 64))
        return (((xx // period + yy // period) % 2) * 255).astype(np.uint8)
    if kind == 1:
        period = int(rng.integers(3, 48))
        return ((np.sin(2 * np.pi * (xx if rng.random() < 0.5 else yy) / period) + 1) * 127.5).astype(np.uint8)
    img = Image.new("L", (w, h), int(rng.integers(0, 256)))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 25))):
        box = sorted(rng.integers(0, w, 2).tolist()), sorted(rng.integers(0, h, 2).tolist())
        xy = (box[0][0], box[1][0], box[0][1], box[1][1])
        fill = int(rng.integers(0, 256))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(xy, fill=fill)
    return np.asarray(img, dtype=np.uint8)


KINDS: dict[str, Maker] = {"noise": noise, "blank": blank, "gradient": gradient, "text": text, "pattern": pattern}


def synthetic_image(kind: str, rng: np.random.Generator, size: tuple[int, int] | None = None) -> np.ndarray:
    """One (H, W) uint8 image of ``kind`` (see KINDS); a random size between 64 and 768 px when none is given."""
    h, w = size or (int(rng.integers(64, 768)), int(rng.integers(64, 768)))
    return KINDS[kind](rng, h, w)
