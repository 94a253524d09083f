"""Heatmap rendering: sizes, blending rule, encodings."""

import io

import numpy as np
from PIL import Image

from app.inference.render import blend_table, colormap_lut, output_size, render_heatmap


def test_output_size_caps_the_longer_side():
    assert output_size(2400, 2000, 1024) == (1024, 853)
    assert output_size(300, 200, 1024) == (300, 200)


def test_overlay_blend_rule():
    table = blend_table(0.5)
    lut = colormap_lut().astype(float)
    for gray, heat in ((0, 0), (200, 0), (100, 255), (37, 128)):
        a = 0.5 * heat / 255
        expected = np.round(gray * (1 - a) + lut[heat] * a)
        assert np.array_equal(table[gray << 8 | heat], expected.astype(np.uint8))
    assert np.array_equal(table[200 << 8], [200, 200, 200])  # no heat: the X-ray unchanged


def test_render_overlay_and_mask():
    pixels = np.tile(np.arange(256, dtype=np.uint8), (100, 1))  # (100, 256)
    cam = np.zeros((7, 7), dtype=np.float32)
    cam[3, 3] = 1.0
    overlay = render_heatmap(pixels, cam, kind="overlay")
    img = np.asarray(Image.open(io.BytesIO(overlay.data)))
    assert img.shape == (100, 256, 3) and (overlay.width, overlay.height) == (256, 100)
    assert np.array_equal(img[0, 0], [0, 0, 0])  # cold corner: unchanged gray 0
    mask = render_heatmap(pixels, cam, kind="mask", fmt="webp")
    assert mask.media_type == "image/webp"
    m = np.asarray(Image.open(io.BytesIO(mask.data)).convert("L"))
    assert m[50, 128] > 200 and m[0, 0] < 10  # hottest in the middle
