"""Burn text into an RGB image: the banner a radiologist sees on the secondary capture."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def burn_in(rgb: np.ndarray, lines: list[str]) -> np.ndarray:
    """Draw ``lines`` white on a black band across the top of ``rgb`` (H, W, 3) uint8; same size out.

    The font scales with the image width so the text stays legible on a 3000 px radiograph
    and still fits on a 256 px one.
    """
    img = Image.fromarray(rgb, "RGB")
    w, h = img.size
    # Largest size at which the longest line fits the width and the band stays within a quarter of the height.
    ref = ImageFont.load_default(size=100)
    widest = max((ref.getlength(t) for t in lines), default=1.0) or 1.0
    size = int(min(100 * 0.96 * w / widest, h / (4 * 1.4 * max(1, len(lines))), 64))
    size = max(6, size)
    font = ImageFont.load_default(size=size)
    pad = max(2, size // 3)
    draw = ImageDraw.Draw(img)
    line_h = size + pad
    draw.rectangle((0, 0, w, pad + line_h * len(lines)), fill=(0, 0, 0))
    for i, text in enumerate(lines):
        draw.text((pad, pad + i * line_h), text, fill=(255, 255, 255), font=font)
    return np.asarray(img)
