"""A fast PNG writer for the heatmap: the Up filter in numpy and ISA-L deflate (python-isal).

Pillow's encoder spends ~70 ms on a 1024x1024 RGB overlay at level 1 (adaptive filtering and
zlib); this one ~8 ms for a file of the same size class. The format is plain PNG (8-bit
grayscale, RGB or RGBA, one IDAT, filter type 2 on every row), so any decoder reads it; tests
decode it with Pillow and compare every pixel. Without python-isal, stdlib zlib does the
deflate (slower, same format).

An image can be given as a function of row bands (``encode_png_rows``), so that its pixels are made
where they are compressed. With an ``IdleHelper`` that is free, a large image is cut in two at a row
and both halves are made, filtered and deflated at once (numpy's gathers and the deflate libraries
release the GIL), joined as pigz joins its blocks: the first half ends with a sync flush
(byte-aligned, not final), the second is a new raw stream from that byte, so the IDAT is one
ordinary zlib stream. A busy helper is never waited for: the image is then made in one piece, so
under load nothing queues behind it.
"""

from __future__ import annotations

import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, TypeVar

import numpy as np

from models.png_decode import SIGNATURE, chunk_crc

try:
    from isal import isal_zlib as _deflate

    MAX_LEVEL = 3  # ISA-L levels 0-3 (1: its fast default)
except ImportError:  # pragma: no cover - isal is a dependency; the fallback keeps the format
    _deflate = zlib  # type: ignore[assignment]
    MAX_LEVEL = 9

ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KB window, no preset dictionary (CMF·256 + FLG divisible by 31)
SPLIT_MIN_BYTES = 1 << 20  # below this the second thread's start costs more than it saves
COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (grayscale, truecolour, truecolour + alpha)
UP = 2
T = TypeVar("T")
U = TypeVar("U")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return b"".join((struct.pack(">I", len(data)), kind, data, struct.pack(">I", chunk_crc(kind, data))))


def up_filtered(arr: np.ndarray) -> memoryview:
    """Scanlines with filter type Up: each byte minus the byte above it (mod 256), a filter byte per row, as a
    flat memoryview (not copied into bytes). ``arr`` may be a strided view (e.g. RGB out of RGBA): it is read once."""
    h = arr.shape[0]
    row_bytes = int(np.prod(arr.shape[1:]))
    out = np.empty((h, row_bytes + 1), dtype=np.uint8)
    out[:, 0] = UP
    body = out[:, 1:].reshape(arr.shape)
    body[0] = arr[0]
    np.subtract(arr[1:], arr[:-1], out=body[1:])  # uint8 arithmetic wraps: exactly PNG's mod 256
    return memoryview(out.reshape(-1))


class IdleHelper:
    """One extra thread for the first half of a large image, taken only while it is idle."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cxr-render")
        self._idle = threading.Semaphore(1)

    def halves(self, first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U] | None:
        """``first`` on the helper while ``second`` runs here; None (neither run) when the helper is busy or closed."""
        if not self._idle.acquire(blocking=False):
            return None
        try:
            try:
                head = self._pool.submit(first)
            except RuntimeError:  # closed (the server is stopping): one piece
                return None
            try:
                tail = second()
            finally:
                wait([head])  # idle again before it is released, also when this half failed
            return head.result(), tail
        finally:
            self._idle.release()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _raw_deflate(data: memoryview, level: int, flush: int) -> bytes:
    c = _deflate.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(flush)


Rows = Callable[[int, int], np.ndarray]  # (r0, r1) -> rows r0..r1-1 as (r1 - r0, W[, C]) uint8


def encode_png(arr: np.ndarray, level: int = 1, helper: IdleHelper | None = None) -> bytes:
    """(H, W), (H, W, 3) or (H, W, 4) uint8 -> PNG bytes. ``level`` is clipped to the deflate library's range;
    ``helper``: deflate a large image in two halves at once when the helper is idle."""
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"expected (H, W), (H, W, 3) or (H, W, 4) uint8, got {arr.dtype} {arr.shape}")
    h, w = arr.shape[:2]
    return encode_png_rows(lambda r0, r1: arr[r0:r1], w, h, 1 if arr.ndim == 2 else arr.shape[2], level, helper)


def encode_png_rows(rows: Rows, width: int, height: int, channels: int, level: int = 1,
                    helper: IdleHelper | None = None) -> bytes:
    """The PNG of an image given by ``rows``. With an idle ``helper`` and 1 MB or more of pixels, the
    helper makes, filters and deflates rows [0, cut) while this thread does [cut, H) (from row cut - 1,
    which the Up filter of row cut reads); otherwise ``rows(0, H)`` in one piece."""
    if channels not in COLOR_TYPES or width < 1 or height < 1:
        raise ValueError(f"expected 1, 3 or 4 channels and a size of at least 1 x 1, got {channels} {width} x {height}")
    header = struct.pack(">IIBBBBB", width, height, 8, COLOR_TYPES[channels], 0, 0, 0)
    level = min(max(level, 0), MAX_LEVEL)
    line = width * channels + 1
    split = None
    if helper is not None and height >= 2 and height * line >= SPLIT_MIN_BYTES:
        cut = height // 2

        def first() -> tuple[bytes, int]:
            scanlines = up_filtered(rows(0, cut))
            return _raw_deflate(scanlines, level, zlib.Z_SYNC_FLUSH), _deflate.adler32(scanlines)

        def second() -> tuple[bytes, memoryview]:
            scanlines = up_filtered(rows(cut - 1, height))[line:]  # row cut - 1 only as the Up reference
            return _raw_deflate(scanlines, level, zlib.Z_FINISH), scanlines

        split = helper.halves(first, second)
    if split is not None:
        (head, head_check), (tail, tail_lines) = split
        check = _deflate.adler32(tail_lines, head_check) & 0xFFFFFFFF  # Adler-32 runs on over the second half
        idat = ZLIB_HEADER + head + tail + struct.pack(">I", check)
    else:
        idat = _deflate.compress(up_filtered(rows(0, height)), level)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
