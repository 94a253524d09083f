"""models/png_decode.py against Pillow, the reference: the same pixels for every filter type, both depths and
odd sizes; None (Pillow decodes it) for everything it does not fully understand."""

from __future__ import annotations

import io
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from models import png_decode
from models.errors import InvalidImage
from models.imaging import decode_image
from models.png_decode import decode_grey_png

built = pytest.mark.skipif(not png_decode.available(), reason="models/_png_unfilter.c was not built (no C "
                           "compiler at install time): every PNG goes to Pillow")
RNG = np.random.default_rng(7)


def _chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _predict(kind: int, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    if kind == 0:
        return np.zeros_like(a)
    if kind == 1:
        return a
    if kind == 2:
        return b
    if kind == 3:
        return (a + b) // 2
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filtered(samples: np.ndarray, depth: int, kinds: list[int]) -> bytes:
    """The PNG scanlines of a (H, W) image, row i filtered with kinds[i % len(kinds)] (the spec's filters)."""
    h, w = samples.shape
    rows = samples.astype(">u2").view(np.uint8).reshape(h, 2 * w) if depth == 16 else samples.astype(np.uint8)
    bpp, out, prev = depth // 8, [], np.zeros(rows.shape[1], dtype=np.int32)
    for i, row in enumerate(rows.astype(np.int32)):
        kind = kinds[i % len(kinds)]
        a = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        c = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        out.append(bytes([kind]) + ((row - _predict(kind, a, prev, c)) % 256).astype(np.uint8).tobytes())
        prev = row
    return b"".join(out)


def png(samples: np.ndarray, depth: int = 8, kinds: tuple[int, ...] = (4,), *, colour: int = 0, interlace: int = 0,
        extra: list[tuple[bytes, bytes]] = (), idat_parts: int = 1, scanlines: bytes | None = None,
        after_idat: list[tuple[bytes, bytes]] = ()) -> bytes:
    h, w = samples.shape
    data = zlib.compress(scanlines if scanlines is not None else filtered(samples, depth, list(kinds)), 6)
    cut = np.linspace(0, len(data), idat_parts + 1).astype(int)
    idats = [_chunk(b"IDAT", data[a:b]) for a, b in zip(cut[:-1], cut[1:])]
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace))
    return (png_decode.SIGNATURE + ihdr + b"".join(_chunk(k, b) for k, b in extra) + idats[0]
            + b"".join(_chunk(k, b) for k, b in after_idat) + b"".join(idats[1:]) + _chunk(b"IEND", b""))


def pillow(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    arr = np.asarray(img)
    return (arr.astype(np.uint16) >> 8).astype(np.uint8) if img.mode.startswith("I;16") else arr


@built
@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("kinds", [(0,), (1,), (2,), (3,), (4,), (4, 1, 2, 3, 0)])
@pytest.mark.parametrize("shape", [(37, 53), (1, 9), (9, 1), (64, 64)])
def test_every_filter_type_gives_pillows_pixels(depth, kinds, shape):
    samples = RNG.integers(0, 2 ** depth, size=shape)
    smooth = (np.add.outer(np.arange(shape[0]), np.arange(shape[1])) * (2 ** depth // 128)) % 2 ** depth
    for image in (samples, smooth):  # noise takes every branch of Paeth; a gradient takes the ties
        data = png(image, depth, kinds, idat_parts=3)
        ours = decode_grey_png(data, 10 ** 8)
        assert ours is not None and ours.dtype == np.uint8
        assert np.array_equal(ours, pillow(data))


@built
def test_pillows_own_files_and_what_decode_image_returns():
    image = RNG.integers(0, 256, size=(300, 211)).astype(np.uint8)
    for arr in (image, image.astype(np.uint16) * 257):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG")  # Pillow's adaptive filtering
        assert np.array_equal(decode_grey_png(buf.getvalue(), 10 ** 8), pillow(buf.getvalue()))
        assert np.array_equal(decode_image(buf.getvalue()).pixels, pillow(buf.getvalue()))


GREY = RNG.integers(0, 256, size=(80, 70))


@built
@pytest.mark.parametrize("case,data", [
    ("RGB", png(np.repeat(GREY, 3, axis=1), colour=2)),
    ("interlaced", png(GREY, interlace=1)),
    ("4-bit", png(GREY, depth=4, scanlines=b"".join(b"\x00" + bytes(35) for _ in range(80)))),
    ("transparency", png(GREY, extra=[(b"tRNS", b"\x00\x05")])),
    ("text (may hold EXIF)", png(GREY, extra=[(b"tEXt", b"Raw profile type exif\x00...")])),
    ("eXIf", png(GREY, extra=[(b"eXIf", b"MM\x00*")])),
    ("an unknown chunk", png(GREY, extra=[(b"teSt", b"x")])),
    ("IDATs split by another chunk", png(GREY, idat_parts=2, after_idat=[(b"gAMA", b"\x00\x00\xb1\x8f")])),
    ("unknown filter type", png(GREY, scanlines=b"".join(b"\x05" + bytes(70) for _ in range(80)))),
    ("rows short", png(GREY, scanlines=filtered(GREY, 8, [4])[:-1])),
    ("rows long", png(GREY, scanlines=filtered(GREY, 8, [4]) + b"\x00")),
    ("no IEND", png(GREY)[:-12]),
    ("truncated", png(GREY)[:200]),
])
def test_what_it_does_not_fully_understand_goes_to_pillow(case, data):
    assert decode_grey_png(data, 10 ** 8) is None


@built
def test_a_bad_crc_or_too_many_pixels_goes_to_pillow():
    good = png(GREY)
    assert decode_grey_png(good, 10 ** 8) is not None
    ihdr_crc = len(png_decode.SIGNATURE) + 8 + 13
    bad = good[:ihdr_crc] + bytes([good[ihdr_crc] ^ 1]) + good[ihdr_crc + 1:]
    assert decode_grey_png(bad, 10 ** 8) is None
    assert decode_grey_png(good, 80 * 70 - 1) is None
    with pytest.raises(Exception, match="over the limit"):
        decode_image(good, max_pixels=80 * 70 - 1)  # Pillow's path says why


@built
def test_broken_files_keep_pillows_answers():
    with pytest.raises(InvalidImage, match="corrupt or truncated PNG"):
        decode_image(png(GREY)[:200])
    unknown_filter = png(GREY, scanlines=b"".join(b"\x05" + bytes(70) for _ in range(80)))
    with pytest.raises(InvalidImage, match="corrupt or truncated PNG"):
        decode_image(unknown_filter)


def test_without_the_compiled_helper_pillow_decodes_everything(monkeypatch):
    data = png(GREY)
    monkeypatch.setattr(png_decode, "unfilter", None)
    assert decode_grey_png(data, 10 ** 8) is None
    assert np.array_equal(decode_image(data).pixels, pillow(data))


@built
def test_the_helper_checks_its_buffers():
    with pytest.raises(ValueError, match="buffer sizes"):
        png_decode.unfilter(bytes(9), np.empty((2, 4), np.uint8), 2, 4, 1)  # src must be 2 rows * (1 + 4)
    with pytest.raises(ValueError, match="buffer sizes"):
        png_decode.unfilter(bytes(10), np.empty((2, 3), np.uint8), 2, 4, 1)  # dst must be 2 * 4
    with pytest.raises(ValueError, match="buffer sizes"):
        png_decode.unfilter(bytes(10), np.empty((2, 4), np.uint8), 2, 4, 3)  # bpp 1 or 2
    assert png_decode.unfilter(bytes(10), np.empty((2, 4), np.uint8), 2, 4, 1) == -1


def test_the_helper_is_built_wherever_a_c_compiler_is():
    """setup.py builds it optionally (an install without a compiler still works); where one is, as in CI, a
    failed build must not pass unseen."""
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler on this machine: PNGs go to Pillow")
    assert png_decode.available(), "models/_png_unfilter.c did not build: run scripts/setup.sh (pip install -e .)"
