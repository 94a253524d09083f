"""Builds the bad-input corpus: hostile, broken and unusual files with the answer each must get.

  python -m tests.corpus.generate OUT_DIR     # writes the files and manifest.json

Nothing here is a hand-made binary: every file is generated from code, so the corpus is
reviewable and reproducible. Each case names its endpoint, expected status and a fragment of
the expected ``detail``.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.synth import chest_like, dicom_bytes, encode


@dataclass(frozen=True)
class Case:
    name: str
    endpoint: str  # /predict or /datasets
    status: int
    detail: str  # fragment of the JSON detail ('' for 2xx)
    content_type: str = "application/octet-stream"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side: int = 20_000) -> bytes:
    """A valid grayscale PNG of side x side zeros: a few KB compressed, 400 MP decoded."""
    raw = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    body = b"".join(raw.compress(row) for _ in range(side)) + raw.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def jpeg_huge_declared() -> bytes:
    """A real JPEG whose SOF0 marker is rewritten to declare 60000 x 60000 pixels."""
    data = bytearray(encode(chest_like(64, 64), "JPEG"))
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = struct.pack(">HH", 60000, 60000)
    return bytes(data)


def png_bad_crc() -> bytes:
    data = bytearray(encode(chest_like(80, 80)))
    data[29] ^= 0xFF  # inside IHDR's CRC
    return bytes(data)


def dicom_short_pixels(img: np.ndarray) -> bytes:
    """Rows x Columns claim twice the pixel data the file holds."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(img[: img.shape[0] // 2])))
    ds.Rows = img.shape[0]
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def zip_of(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def build_cases() -> dict[str, tuple[bytes, Case]]:
    """Every corpus file's bytes and expected answer, in memory."""
    img = chest_like(128, 128, seed=7)
    png, jpeg, dcm = encode(img), encode(img, "JPEG"), dicom_bytes(img)
    rgb = Image.fromarray(img).convert("RGB")
    rng = np.random.default_rng(0)
    files: dict[str, tuple[bytes, Case]] = {}

    def add(name: str, data: bytes, endpoint: str, status: int, detail: str, ctype: str = "application/octet-stream") -> None:
        files[name] = (data, Case(name, endpoint, status, detail, ctype))

    add("zero_bytes.bin", b"", "/predict", 400, "empty upload")
    add("random_bytes.bin", rng.bytes(4096), "/predict", 415, "expected PNG, JPEG or DICOM")
    add("text_named.png", b"this is not an image\n" * 20, "/predict", 415, "expected PNG, JPEG or DICOM")
    add("pdf.pdf", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF", "/predict", 415, "expected PNG, JPEG or DICOM")
    add("gif.gif", encode(img, "GIF"), "/predict", 415, "expected PNG, JPEG or DICOM")
    add("tiff.tif", encode(img, "TIFF"), "/predict", 415, "expected PNG, JPEG or DICOM")
    for cut in (8, 60, len(png) // 2):
        add(f"png_truncated_{cut}.png", png[:cut], "/predict", 422, "corrupt or truncated PNG")
    for cut in (3, 200, len(jpeg) // 2):
        add(f"jpeg_truncated_{cut}.jpg", jpeg[:cut], "/predict", 422, "corrupt or truncated JPEG")
    # named by where the cut falls, not by its offset: the file's length varies with its random UIDs, and
    # every pytest-xdist worker must collect the same names
    for where, cut in (("132", 132), ("400", 400), ("in_pixels", len(dcm) - 5000)):
        add(f"dicom_truncated_{where}.dcm", dcm[:cut], "/predict", 422, "DICOM")
    add("png_bad_crc.png", png_bad_crc(), "/predict", 422, "corrupt or truncated PNG")
    add("png_bomb_20000.png", png_bomb(), "/predict", 413, "over the limit")
    add("jpeg_declares_60000.jpg", jpeg_huge_declared(), "/predict", 413, "over the limit")
    add("png_1x1.png", encode(np.zeros((1, 1), np.uint8)), "/predict", 422, "at least 64 px")
    add("png_16bit.png", encode(Image.fromarray(img.astype(np.uint16) * 257)), "/predict", 200, "")
    add("png_rgba.png", encode(rgb.convert("RGBA")), "/predict", 200, "")
    add("png_palette.png", encode(rgb.convert("P")), "/predict", 200, "")
    add("jpeg_cmyk.jpg", encode(rgb.convert("CMYK"), "JPEG"), "/predict", 200, "")
    add("dicom_no_pixels.dcm", dicom_bytes(img, with_pixels=False), "/predict", 422, "no pixel data")
    add("dicom_multiframe.dcm", dicom_bytes(np.stack([img, img]), frames=2), "/predict", 422, "multi-frame")
    add("dicom_sr.dcm", dicom_bytes(img, sop_class="1.2.840.10008.5.1.4.1.1.88.33"), "/predict", 422, "is not an image")
    add("dicom_short_pixels.dcm", dicom_short_pixels(img), "/predict", 422, "DICOM")
    lying = dcm.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.5\x00")  # claims RLE, holds raw pixels
    add("dicom_lying_transfer_syntax.dcm", lying, "/predict", 422, "DICOM")
    unsupported = dcm.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.4.80")  # JPEG-LS, no decoder
    add("dicom_unsupported_transfer_syntax.dcm", unsupported, "/predict", 422, "DICOM")
    add("dicom_preamble_only.dcm", b"\0" * 128 + b"DICM", "/predict", 422, "DICOM")
    add("wrong_content_type.png", png, "/predict", 415, "unsupported Content-Type", "text/plain")
    add("zip_bomb.zip", zip_of({"NORMAL/a.png": b"\0" * 50_000_000}), "/datasets", 413, "zip bomb", "application/zip")
    add("zip_slip.zip", zip_of({"NORMAL/a.png": png, "../../escape.png": png}), "/datasets", 400, "zip-slip",
        "application/zip")
    add("not_an_archive.zip", png, "/datasets", 415, ".zip or .tar.gz", "application/zip")

    return files


def build(dest: Path) -> list[Case]:
    """Write the corpus files and manifest.json into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    files = build_cases()
    manifest = []
    for name, (data, case) in files.items():
        (dest / name).write_bytes(data)
        manifest.append(asdict(case))
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return [c for _, c in files.values()]


if __name__ == "__main__":
    cases = build(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/corpus/files"))
    print(f"{len(cases)} cases written")
