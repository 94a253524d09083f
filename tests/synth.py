"""Synthetic test inputs: radiograph-like arrays, PNG/JPEG/DICOM encoders, tiny model folders."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.card import ModelCard, SplitMetrics, TrainingInfo
from models.registry import build_model
from models.transforms import PreprocessSpec
from models.weights import save_model

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray"


def chest_like(h: int = 256, w: int = 256, *, seed: int = 0, opacity: float = 0.0) -> np.ndarray:
    """A uint8 image with a bright body, two dark 'lungs' and optional 'consolidation' in the right lung."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = 60 + 120 * np.exp(-(((xx - w / 2) / (0.45 * w)) ** 2 + ((yy - h / 2) / (0.6 * h)) ** 2))
    for cx in (0.32 * w, 0.68 * w):
        lung = np.exp(-(((xx - cx) / (0.14 * w)) ** 2 + ((yy - 0.48 * h) / (0.3 * h)) ** 2))
        img -= 70 * lung
    if opacity:
        img += opacity * 80 * np.exp(-(((xx - 0.3 * w) / (0.08 * w)) ** 2 + ((yy - 0.6 * h) / (0.1 * h)) ** 2))
    img += rng.normal(0, 6, size=(h, w))
    img[0, 0], img[-1, -1] = 0, 255  # full range, so min-max windowing is the identity
    return np.clip(img, 0, 255).round().astype(np.uint8)


def radiograph(side: int, index: int = 0) -> np.ndarray:
    """A shared-data pediatric radiograph resized to side x side (what the integrity check accepts);
    ``chest_like`` when ../shared/data is absent (a server with the check on refuses that one)."""
    files = sorted((DATA_ROOT / "test" / "PNEUMONIA").glob("*.jpeg"))
    if not files:
        return chest_like(side, side, seed=index)
    img = Image.open(files[index % len(files)]).convert("L")
    return np.asarray(img.resize((side, side), Image.Resampling.BILINEAR))


def encode(img: Image.Image | np.ndarray, fmt: str = "PNG", **kwargs: object) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def dicom_bytes(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits: int = 8,
    window: tuple[float, float] | None = None,
    slope: float = 1.0,
    intercept: float = 0.0,
    transfer_syntax: str | None = None,
    sop_class: str = "1.2.840.10008.5.1.4.1.1.1",  # CR Image Storage
    frames: int = 1,
    modality: str = "CR",
    with_pixels: bool = True,
    patient: dict[str, str] | None = None,
) -> bytes:
    """A Part-10 DICOM file holding ``pixels`` (stored values) with the given attributes."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = modality
    for key, value in (patient or {"PatientName": "Test^Patient", "PatientID": "TEST"}).items():
        setattr(ds, key, value)
    arr = np.asarray(pixels)
    ds.Rows, ds.Columns = int(arr.shape[-2]), int(arr.shape[-1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if frames != 1:
        ds.NumberOfFrames = frames
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if slope != 1.0 or intercept != 0.0:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if with_pixels:
        dtype = np.uint8 if bits == 8 else np.uint16
        ds.PixelData = arr.astype(dtype).tobytes()
    if transfer_syntax is not None:
        ds.compress(transfer_syntax)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def make_model_dir(folder: Path, *, arch: str = "simple_cnn", image_size: int = 64, seed: int = 0,
                   threshold: float = 0.5, temperature: float = 1.0, version: str = "test-1") -> Path:
    """A carded model folder with random weights (fast to load, not meaningful)."""
    torch.manual_seed(seed)
    model = build_model(arch)
    model.eval()
    m = SplitMetrics(n=0, auroc=0.5, accuracy=0.5, sensitivity=0.5, specificity=0.5)
    card = ModelCard(
        name=folder.name, version=version, architecture=arch, input=PreprocessSpec(image_size=image_size),
        threshold=threshold, temperature=temperature, num_parameters=sum(p.numel() for p in model.parameters()),
        sha256="0" * 64, created="2026-01-01T00:00:00+00:00",
        training=TrainingInfo(data="synthetic", counts={}, patient_split_seed=0, val_fraction=0.15, config={},
                              command="tests", duration_s=0.0, epochs_run=0, best_epoch=0),
        metrics={"val": m},
    )
    save_model(folder, model, card)
    return folder


def write_dataset(root: Path, *, per_class: int = 12, size: int = 80, splits: tuple[str, ...] = ("train", "test")) -> Path:
    """A tiny split/class folder tree of synthetic PNGs with Kermany-style (patient-coded) names."""
    for split in splits:
        for label, opacity in (("NORMAL", 0.0), ("PNEUMONIA", 1.0)):
            d = root / split / label
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                name = f"IM-{i // 2:04d}-{i % 2:04d}.png" if label == "NORMAL" else f"person{i // 2}_bacteria_{i}.png"
                (d / name).write_bytes(encode(chest_like(size, size, seed=zlib.crc32(f"{split}/{label}/{i}".encode()) % 1000,
                                                         opacity=opacity)))
    return root
