"""DICOM Part-10 bytes -> 8-bit grayscale radiograph (bone bright).

Order of operations follows the DICOM grayscale pipeline (PS3.4 N.2.1): stored values →
Modality LUT (rescale slope/intercept or LUT) → VOI LUT (window centre/width or LUT;
without either, the image's own min..max) → 8 bits → inversion for MONOCHROME1 or a
Presentation LUT Shape of INVERSE. Compressed transfer syntaxes are decoded by pydicom's
pixel-data plug-ins (pylibjpeg with libjpeg, openjpeg and rle).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from models.errors import ImageTooLarge, InvalidImage

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

# SOP classes that are images a chest radiograph can arrive as (CR, DX for presentation and
# processing, digital X-ray variants, secondary capture of a radiograph).
_IMAGE_SOP_PREFIXES = ("1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.12")
_NON_IMAGE_SOP_PREFIXES = ("1.2.840.10008.5.1.4.1.1.88", "1.2.840.10008.5.1.4.1.1.104", "1.2.840.10008.5.1.4.1.1.11")


def _window(arr: np.ndarray, center: float, width: float) -> np.ndarray:
    """Linear VOI window (PS3.3 C.11.2.1.2.1) mapped straight to 0..255."""
    width = max(float(width), 1.0)
    lo = center - 0.5 - (width - 1) / 2
    scaled = ((arr - (center - 0.5)) / (width - 1) + 0.5) * 255.0 if width > 1 else (arr > lo) * 255.0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def _first(value: object) -> float:
    """Window centre/width may be multi-valued; the first pair is the default."""
    if isinstance(value, (list, tuple)) or hasattr(value, "__getitem__") and not isinstance(value, (str, bytes)):
        try:
            return float(value[0])  # type: ignore[index]
        except (TypeError, IndexError):
            pass
    return float(value)  # type: ignore[arg-type]


# What pydicom raises for broken files, while parsing or when a lazily read element is first used.
READ_ERRORS: tuple[type[Exception], ...] = (EOFError, ValueError, KeyError, TypeError, OSError, AttributeError)


def read_dicom(data: bytes | BinaryIO, *, defer_size: int | None = None) -> Dataset:
    """Parse Part-10 bytes or an open binary file (pixel data is decoded later, on demand).
    ``defer_size``: values larger than this many bytes (the pixels) are left unread until used."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data, defer_size=defer_size)
    except (InvalidDicomError, *READ_ERRORS) as exc:
        raise InvalidImage(f"corrupt or truncated DICOM: {exc}") from None


def dicom_to_gray(ds: Dataset, *, max_pixels: int) -> np.ndarray:
    """A parsed DICOM image -> (H, W) uint8, bone bright."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    sop = str(ds.get("SOPClassUID", ""))
    if sop.startswith(_NON_IMAGE_SOP_PREFIXES):
        raise InvalidImage(f"DICOM SOP class {sop} is not an image (structured report, waveform or similar)")
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InvalidImage("DICOM has no pixel data")
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise InvalidImage("DICOM lacks valid Rows/Columns/NumberOfFrames") from None
    if frames != 1:
        raise InvalidImage(f"multi-frame DICOM ({frames} frames) is not supported; send a single-frame CR/DX image")
    if rows * cols > max_pixels:
        raise ImageTooLarge(f"image is {cols}x{rows} = {rows * cols} pixels, over the limit of {max_pixels}")
    if rows <= 0 or cols <= 0:
        raise InvalidImage("DICOM declares an empty image")

    try:
        arr = ds.pixel_array
    except NotImplementedError as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise InvalidImage(f"unsupported DICOM transfer syntax {ts}: {exc}") from None
    except Exception as exc:  # pydicom raises many types for broken pixel data
        raise InvalidImage(f"cannot decode DICOM pixel data: {exc}") from None

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if arr.ndim == 3 and photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT"):
        from PIL import Image

        # JPEG 2000 decoders undo the RCT/ICT colour transform themselves: those arrive as RGB
        try:
            rgb = arr if photometric in ("RGB", "YBR_RCT", "YBR_ICT") else pydicom.pixels.convert_color_space(
                arr, photometric, "RGB")
        except (NotImplementedError, ValueError) as exc:
            raise InvalidImage(f"cannot convert {photometric} colour DICOM to grayscale: {exc}") from None
        return np.asarray(Image.fromarray(rgb.astype(np.uint8), "RGB").convert("L"), dtype=np.uint8)
    if arr.ndim != 2 or arr.shape != (rows, cols):
        raise InvalidImage(f"DICOM pixel data has shape {arr.shape}, expected a single {rows}x{cols} frame")

    try:
        values = apply_modality_lut(arr, ds).astype(np.float64)
        if "VOILUTSequence" in ds:
            from models.imaging import to_uint8

            out = to_uint8(apply_voi_lut(values, ds, index=0))
        elif "WindowCenter" in ds and "WindowWidth" in ds:
            out = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
        else:
            from models.imaging import to_uint8

            out = to_uint8(values)
    except InvalidImage:
        raise
    except Exception as exc:
        raise InvalidImage(f"cannot apply DICOM LUTs: {exc}") from None

    inverse = str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE"
    if (photometric == "MONOCHROME1") != inverse:
        out = 255 - out
    return out
