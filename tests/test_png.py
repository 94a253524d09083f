"""The heatmap's PNG writer against the reference decoder (Pillow): every pixel, every shape."""

import io

import numpy as np
import pytest
from PIL import Image

from app.inference.png import IdleHelper, encode_png, encode_png_rows


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (37, 53), (256, 256), (3, 5, 3), (1, 1, 3), (64, 97, 3),
                                   (1, 1, 4), (29, 41, 4)])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_decodes_to_the_same_pixels(shape, level):
    arr = np.random.default_rng(sum(shape) + level).integers(0, 256, size=shape, dtype=np.uint8)
    img = Image.open(io.BytesIO(encode_png(arr, level)))
    img.load()  # checks every chunk's CRC and the deflate stream
    assert img.mode == {2: "L", 3: "RGB", 4: "RGBA"}[len(shape) if len(shape) == 2 else shape[2]]
    assert img.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(img), arr)


def test_smooth_images_compress():
    ramp = np.tile(np.arange(512, dtype=np.uint16)[None, :] // 2, (512, 1)).astype(np.uint8)
    assert len(encode_png(np.stack([ramp] * 3, -1))) < ramp.size * 3 // 20


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8), np.zeros(4, np.uint8)])
def test_other_arrays_are_refused(bad):
    with pytest.raises(ValueError, match="expected"):
        encode_png(bad)


def test_a_strided_view_is_written_as_its_pixels():
    rgba = np.random.default_rng(3).integers(0, 256, size=(31, 17, 4), dtype=np.uint8)
    view = rgba[..., :3]  # what the overlay renderer hands over
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(view)))), view)


@pytest.mark.parametrize("shape", [(1024, 1024), (601, 700, 3), (1023, 513, 4)])
@pytest.mark.parametrize("level", [0, 1, 3])
def test_a_deflate_in_two_halves_is_one_stream_with_the_same_pixels(shape, level):
    """Over SPLIT_MIN_BYTES: cut at a row, both halves filtered and deflated at once, joined; Pillow and zlib read
    it as one stream."""
    import zlib

    rng = np.random.default_rng(len(shape) + level)
    smooth = np.cumsum(rng.integers(-2, 3, size=shape), axis=0).astype(np.uint8)  # compressible, not trivial
    helper = IdleHelper()
    try:
        data = encode_png(smooth, level, helper)
    finally:
        helper.close()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), smooth)
    idat_length = int.from_bytes(data[33:37], "big")  # after the signature and IHDR: one IDAT
    assert data[37:41] == b"IDAT"
    raw = zlib.decompress(data[41:41 + idat_length])  # checks the Adler-32 of the whole
    assert len(raw) == shape[0] * (shape[1] * (shape[2] if len(shape) == 3 else 1) + 1)
    assert b"\x00\x00\xff\xff" in data[41:41 + idat_length]  # the sync flush's empty block: it was split


def test_a_busy_or_closed_helper_is_not_waited_for():
    arr = np.random.default_rng(5).integers(0, 256, size=(1024, 1024), dtype=np.uint8)
    helper = IdleHelper()
    ran: list[str] = []
    assert helper._idle.acquire(blocking=False)  # another render holds it
    assert helper.halves(lambda: ran.append("first"), lambda: ran.append("second")) is None
    helper._idle.release()
    assert helper.halves(lambda: 1, lambda: 2) == (1, 2)
    helper.close()
    assert helper.halves(lambda: ran.append("first"), lambda: ran.append("second")) is None  # closed: no error
    assert ran == []  # neither half ran: the caller makes the whole image itself
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(arr, 1, helper)))), arr)


@pytest.mark.parametrize("shape", [(1024, 1024, 3), (1101, 977, 4), (2, 600_000)])
def test_an_image_made_in_bands_asks_for_each_row_once_but_the_reference_row(shape):
    """encode_png_rows with an idle helper: rows [0, cut) on the helper, [cut - 1, H) here (row cut - 1 only as
    the Up filter's reference); the file decodes to the image."""
    arr = np.cumsum(np.random.default_rng(sum(shape)).integers(-3, 4, size=shape), axis=0).astype(np.uint8)
    asked: list[tuple[int, int]] = []

    def rows(r0: int, r1: int) -> np.ndarray:
        asked.append((r0, r1))
        return arr[r0:r1]

    helper = IdleHelper()
    try:
        data = encode_png_rows(rows, shape[1], shape[0], shape[2] if len(shape) == 3 else 1, 1, helper)
    finally:
        helper.close()
    cut = shape[0] // 2
    assert sorted(asked) == [(0, cut), (cut - 1, shape[0])]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), arr)
    assert encode_png_rows(rows, shape[1], shape[0], shape[2] if len(shape) == 3 else 1, 1) == encode_png(arr, 1)


def test_a_band_encoder_refuses_what_png_cannot_hold():
    with pytest.raises(ValueError, match="channels"):
        encode_png_rows(lambda r0, r1: np.zeros((r1 - r0, 4, 2), np.uint8), 4, 4, 2)


def test_a_failing_half_leaves_the_helper_idle_before_it_is_released():
    """When this thread's half fails, the helper's half is finished first: the next image never queues behind it."""
    import threading
    import zlib

    helper = IdleHelper()
    started, done = threading.Event(), []

    def first() -> None:
        started.wait()
        zlib.compress(bytes(8 << 20), 9)  # still working when the other half has already failed
        done.append("first")

    def second() -> None:
        started.set()
        raise ValueError("this half failed")

    try:
        with pytest.raises(ValueError, match="this half failed"):
            helper.halves(first, second)
        assert done == ["first"]
        assert helper.halves(lambda: 1, lambda: 2) == (1, 2)
    finally:
        helper.close()
