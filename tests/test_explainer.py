"""Heatmap rendering: sizes, blending rule, encodings."""

import io

import numpy as np
import pytest
from PIL import Image

from app.inference.png import IdleHelper
from app.inference.render import blend_table, colormap_lut, grey_at, output_size, render_heatmap, upsample


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


@pytest.mark.parametrize("kind", ["overlay", "layer", "mask"])
def test_a_heatmap_made_in_two_halves_is_every_pixel_of_the_blend_rule(kind):
    """A large heatmap is made, filtered and deflated in two bands at once (an idle helper): the file must hold
    exactly the blend rule's pixels, computed here the plain way (3-column table lookup, colormap and opacity)."""
    rng = np.random.default_rng(7)
    pixels = np.cumsum(rng.integers(-2, 3, size=(1300, 1500)), axis=1).astype(np.uint8)  # scaled to 1024 x 887
    cam = rng.random((7, 7)).astype(np.float32)
    helper = IdleHelper()
    try:
        rendered = render_heatmap(pixels, cam, kind=kind, max_side=1024, alpha=0.5, helper=helper)
    finally:
        helper.close()
    size = (rendered.width, rendered.height)
    assert size == (1024, 887)
    heat = upsample(cam, size)
    if kind == "overlay":
        expected = blend_table(0.5)[grey_at(pixels, size).astype(np.int64) << 8 | heat]
    elif kind == "layer":
        expected = np.concatenate([colormap_lut()[heat], np.round(0.5 * heat.astype(np.float64))[..., None]], -1)
    else:
        expected = heat
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(rendered.data))), expected.astype(np.uint8))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 99_999])
def test_the_heatmaps_base64_is_the_standard_librarys(n):
    import base64

    from app.inference.render import RenderedHeatmap

    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    assert RenderedHeatmap(data, "image/png", 1, 1).base64() == base64.b64encode(data).decode("ascii")
