"""Training datasets referenced by a path relative to CXR_DATA_ROOT, checked before a job is queued."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from app.errors import DatasetNotFound, PathNotAllowed
from models.data import find_splits, scan_class_folders, training_splits
from models.errors import DatasetError


def resolve_dataset(data_root: Path | None, relative: str) -> Path:
    """A folder under ``data_root``; never an absolute path, ``..``, or a symlink that leaves the root."""
    if data_root is None:
        raise PathNotAllowed("server-side datasets are off: set CXR_DATA_ROOT to a folder of datasets")
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        raise PathNotAllowed("dataset path is not valid UTF-8") from None
    if not relative.isprintable():
        raise PathNotAllowed("dataset path contains control characters")
    rel = PurePosixPath(relative)
    if not relative or rel.is_absolute() or ".." in rel.parts or relative.startswith(("\\", "~")) or ":" in relative:
        raise PathNotAllowed(f"dataset path {relative!r} must be relative to the data root, without '..'")
    root = Path(data_root).resolve()
    try:
        target = (root / rel).resolve()
    except (OSError, ValueError):
        raise PathNotAllowed(f"dataset path {relative!r} cannot be resolved") from None
    if not target.is_relative_to(root):
        raise PathNotAllowed(f"dataset path {relative!r} leaves the data root")
    if not target.is_dir():
        raise DatasetNotFound(f"dataset {relative!r} does not exist under the data root")
    return target


def locate_layout(folder: Path) -> Path:
    """The folder holding train/ or NORMAL/ + PNEUMONIA/, looking through one lone top-level folder."""
    try:
        find_splits(folder)
        return folder
    except DatasetError:
        children = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if len(children) == 1:
            find_splits(children[0])
            return children[0]
        raise


def check_dataset(root: Path, min_per_class: int, *, label: str) -> tuple[Path, dict[str, int]]:
    """The dataset's layout folder under ``root`` and the per-class image counts of its training part, by
    the one layout parser (models.data) that training uses; DatasetError (422) when unusable. Messages
    name the dataset by ``label``, never by a server path."""
    with public_paths(root, label):
        folder = locate_layout(root)
        counts = scan_class_folders(training_splits(folder)["train"]).counts()
    short = {k: v for k, v in counts.items() if v < min_per_class}
    if short:
        raise DatasetError(f"dataset needs at least {min_per_class} images per class; has {counts}")
    return folder, counts


def check_calibration_set(root: Path, min_per_class: int, *, label: str) -> tuple[Path, dict[str, int]]:
    """The class folder of a site-calibration set under ``root`` (NORMAL/ + PNEUMONIA/, or a split root's
    test/) and its per-class counts, by the rule `cxr calibrate` applies (models.site_calibration);
    DatasetError (422) when empty, one-class or too small."""
    from models.site_calibration import calibration_folder

    with public_paths(root, label):
        folder, samples = calibration_folder(locate_layout(root), min_per_class, label=label)
    return folder, samples.counts()


@contextmanager
def public_paths(root: Path, label: str) -> Iterator[None]:
    """Re-raise a DatasetError with ``root`` (a server path) replaced by ``label`` in its message."""
    try:
        yield
    except DatasetError as exc:
        raise DatasetError(exc.detail.replace(str(root), label)) from None
