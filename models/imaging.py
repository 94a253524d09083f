"""Image bytes -> 8-bit grayscale array: the one decoder used by training, evaluation and serving.

Formats are detected from magic numbers, never from file names. PNG and JPEG go through
Pillow (EXIF orientation applied, 16-bit and colour modes reduced to 8-bit luminance), plain
greyscale PNGs through a faster decoder giving the same pixels (models/png_decode.py);
DICOM goes through pydicom (models/dicom.py).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from models.errors import ImageTooLarge, InvalidImage, UnsupportedImageType
from models.png_decode import SIGNATURE as PNG_SIGNATURE, decode_grey_png

DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MIN_SIDE = 64


class ImageFormat(str, Enum):
    png = "png"
    jpeg = "jpeg"
    dicom = "dicom"


@dataclass(frozen=True)
class DecodedImage:
    """A radiograph as 8-bit grayscale (bone bright), with where it came from."""

    pixels: np.ndarray  # (H, W) uint8
    format: ImageFormat
    dataset: Any = None  # the parsed pydicom Dataset for DICOM input (its header feeds DICOM outputs)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def sniff_format(data: bytes) -> ImageFormat:
    """Detect the format from the first bytes; raise UnsupportedImageType otherwise."""
    if data.startswith(PNG_SIGNATURE):
        return ImageFormat.png
    if data.startswith(b"\xff\xd8\xff"):
        return ImageFormat.jpeg
    if len(data) >= 132 and data[128:132] == b"DICM":
        return ImageFormat.dicom
    if not data:
        raise UnsupportedImageType("empty upload: no image bytes received")
    raise UnsupportedImageType("unsupported image type: expected PNG, JPEG or DICOM (Part 10 with 'DICM' preamble)")


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale any numeric 2-D array linearly to the full 0..255 range (constant images become 0)."""
    arr = np.asarray(array, dtype=np.float64)
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise InvalidImage("image contains non-finite pixel values")
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.round((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _pil_to_gray(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "L":
        return np.asarray(img, dtype=np.uint8)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grayscale: keep the full dynamic range (shift to 8 bits, no windowing guess).
        return (np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8)
    if mode in ("I", "F"):
        arr = np.asarray(img)
        if mode == "I" and arr.min() >= 0 and arr.max() <= 65535:
            return (arr.astype(np.uint32) >> 8).astype(np.uint8) if arr.max() > 255 else arr.astype(np.uint8)
        return to_uint8(arr)
    if mode in ("1", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LA", "La", "HSV", "LAB", "RGBa"):
        if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
            # Composite on black: transparent areas of a radiograph are background.
            rgba = img.convert("RGBA")
            black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            img = Image.alpha_composite(black, rgba)
        return np.asarray(img.convert("L"), dtype=np.uint8)
    raise InvalidImage(f"unsupported pixel mode {mode!r}")


def _decode_raster(data: bytes, fmt: ImageFormat, max_pixels: int) -> np.ndarray:
    if fmt is ImageFormat.png and (grey := decode_grey_png(data, max_pixels)) is not None:
        return grey  # plain greyscale PNGs without Pillow's slow Paeth unfiltering (models/png_decode.py)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise ImageTooLarge(f"image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}")
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # no copy when it needs no turning (most images)
    except ImageTooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"image is over the limit of {max_pixels} pixels ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc) if not isinstance(exc, UnidentifiedImageError) else "not a decodable image"
        raise InvalidImage(f"corrupt or truncated {fmt.value.upper()}: {reason}") from None
    return _pil_to_gray(img)


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> DecodedImage:
    """Decode PNG, JPEG or DICOM bytes into an 8-bit grayscale radiograph."""
    fmt = sniff_format(data)
    if fmt is ImageFormat.dicom:
        from models.dicom import dicom_to_gray, read_dicom  # pydicom import is slow; only pay for it when needed

        dataset = read_dicom(data)
        pixels = dicom_to_gray(dataset, max_pixels=max_pixels)
    else:
        dataset = None
        pixels = _decode_raster(data, fmt, max_pixels)
    if pixels.ndim != 2:
        raise InvalidImage(f"expected a single grayscale frame, got array of shape {pixels.shape}")
    h, w = pixels.shape
    if min(h, w) < min_side:
        raise InvalidImage(f"image is {w}x{h}; the smaller side must be at least {min_side} px")
    return DecodedImage(pixels=np.ascontiguousarray(pixels), format=fmt, dataset=dataset)
