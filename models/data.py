"""Datasets in the common layout: ``[train|val|test]/{NORMAL,PNEUMONIA}/<image>``.

Images are decoded once with the serving decoder (models/imaging.py), resized with the
card's spec and kept in memory as uint8 (5,216 images at 224 px are 260 MB), so an epoch
costs only the network. Corrupt or unreadable files are skipped with a count.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from models.errors import CXRError, DatasetError
from models.imaging import DecodedImage, decode_image
from models.registry import CLASSES
from models.transforms import PreprocessSpec

if TYPE_CHECKING:  # the dataset scanners run in the server, which serves without torch
    import torch

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}
SPLITS = ("train", "val", "test")

_PATIENT_PATTERNS = (
    re.compile(r"^(person\d+)_", re.IGNORECASE),  # person123_bacteria_456
    re.compile(r"^((?:NORMAL2-)?IM-\d+)-", re.IGNORECASE),  # IM-0115-0001, NORMAL2-IM-1427-0001
)


def patient_id(path: Path) -> str:
    """Patient identifier from a Kermany-style file name; other names count as their own patient."""
    for pattern in _PATIENT_PATTERNS:
        if m := pattern.match(path.name):
            return m.group(1).upper()
    return path.stem.upper()


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # index into CLASSES
    patient: str


@dataclass
class SampleList:
    samples: list[Sample]
    ignored: list[Path] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(s.label for s in self.samples)
        return {name: c.get(i, 0) for i, name in enumerate(CLASSES)}


def _child_dirs(folder: Path) -> dict[str, Path]:
    return {p.name.lower(): p for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else {}


def find_splits(root: Path) -> dict[str, Path]:
    """Map split name -> folder. A folder with class subfolders and no splits is a single 'test' split."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist or is not a folder")
    children = _child_dirs(root)
    splits = {name: children[name] for name in SPLITS if name in children}
    if splits:
        return splits
    if any(c.lower() in children for c in CLASSES):
        return {"test": root}
    raise DatasetError(
        f"{root} has neither train/val/test split folders nor NORMAL/PNEUMONIA class folders"
    )


def training_splits(root: Path) -> dict[str, Path]:
    """Splits of a training dataset: a plain NORMAL/ + PNEUMONIA/ folder is all training data."""
    root = Path(root)
    splits = find_splits(root)
    if "train" not in splits and splits.get("test") == root:
        return {"train": root}
    if "train" not in splits:
        raise DatasetError(f"{root} has no train/ split folder")
    return splits


def scan_class_folders(folder: Path, *, require_all_classes: bool = True) -> SampleList:
    """List the images under ``folder/{NORMAL,PNEUMONIA}`` (class names case-insensitive)."""
    children = _child_dirs(folder)
    missing = [c for c in CLASSES if c.lower() not in children]
    if len(missing) == len(CLASSES):
        raise DatasetError(f"{folder} has no NORMAL/ or PNEUMONIA/ class folder")
    if missing and require_all_classes:
        raise DatasetError(f"{folder} is missing the class folder(s): {', '.join(missing)}")
    result = SampleList(samples=[])
    for label, name in enumerate(CLASSES):
        class_dir = children.get(name.lower())
        if class_dir is None:
            continue
        for path in sorted(class_dir.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES:
                result.samples.append(Sample(path=path, label=label, patient=patient_id(path)))
            else:
                result.ignored.append(path)
    if result.ignored:
        log.warning("%s: ignored %d file(s) that are not images, e.g. %s", folder, len(result.ignored),
                    result.ignored[0].name)
    if not result.samples:
        raise DatasetError(f"{folder} contains no images (.png, .jpg, .jpeg, .dcm)")
    counts = result.counts()
    if require_all_classes and min(counts.values()) == 0:
        empty = [k for k, v in counts.items() if v == 0]
        raise DatasetError(f"{folder}: class folder(s) {', '.join(empty)} contain no images")
    return result


def split_by_patient(samples: list[Sample], *, val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Deterministic patient-level split, stratified by label: no patient appears on both sides."""
    if not 0 < val_fraction < 1:
        raise ValueError("val_fraction must be in (0, 1)")
    by_patient: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_patient[s.patient].append(s)
    groups: dict[int, list[str]] = defaultdict(list)
    for pid, items in sorted(by_patient.items()):
        majority = Counter(s.label for s in items).most_common(1)[0][0]
        groups[majority].append(pid)
    rng = random.Random(seed)
    val_patients: set[str] = set()
    for label in sorted(groups):
        pids = groups[label]
        rng.shuffle(pids)
        val_patients.update(pids[: max(1, round(len(pids) * val_fraction))])
    train = [s for s in samples if s.patient not in val_patients]
    val = [s for s in samples if s.patient in val_patients]
    return train, val


@dataclass
class TensorDataset:
    """Decoded, resized images (N, S, S) uint8 and labels (N,) int64, with the files they came from."""

    images: torch.Tensor
    labels: torch.Tensor
    paths: list[Path]
    skipped: list[tuple[Path, str]]
    refused: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason) the integrity check refused

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(CLASSES)}


def load_tensors(samples: list[Sample], spec: PreprocessSpec, *, progress: bool = False,
                 screen: Callable[[DecodedImage], str | None] | None = None) -> TensorDataset:
    """Decode every sample once; corrupt files are skipped and reported, never fatal. ``screen``
    (the integrity check, as the service applies it) returns a refusal reason or None; refused
    images are left out and listed."""
    images: list[np.ndarray] = []
    labels: list[int] = []
    paths: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    refused: list[tuple[Path, str]] = []
    iterator = samples
    if progress:
        from tqdm import tqdm

        iterator = tqdm(samples, desc="decode", unit="img", leave=False)
    for s in iterator:
        try:
            decoded = decode_image(s.path.read_bytes())
        except (CXRError, OSError) as exc:
            skipped.append((s.path, getattr(exc, "detail", str(exc))))
            continue
        if screen is not None and (reason := screen(decoded)) is not None:
            refused.append((s.path, reason))
            continue
        images.append(spec.resize_uint8(decoded.pixels))
        labels.append(s.label)
        paths.append(s.path)
    if skipped:
        log.warning("skipped %d unreadable image(s), e.g. %s: %s", len(skipped), skipped[0][0].name, skipped[0][1])
    size = spec.image_size
    import torch

    stacked = torch.from_numpy(np.stack(images)) if images else torch.empty((0, size, size), dtype=torch.uint8)
    return TensorDataset(stacked, torch.tensor(labels, dtype=torch.int64), paths, skipped, refused)
