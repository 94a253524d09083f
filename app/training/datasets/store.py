"""Uploaded training datasets under STATE/datasets/<id>/: validated, then published atomically."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from app.training.datasets.archive import extract
from app.training.datasets.layout import locate_layout, public_paths
from app.core.config import Settings
from app.core.files import write_json_atomic
from models.data import scan_class_folders, training_splits
from models.errors import CXRError, DatasetError
from models.imaging import decode_image
from models.registry import CLASSES

META = "dataset.json"


class DatasetStore:
    def __init__(self, root: Path, *, max_files: int, max_bytes: int, min_per_class: int) -> None:
        self.root = Path(root)
        self.max_files, self.max_bytes, self.min_per_class = max_files, max_bytes, min_per_class

    @classmethod
    def of(cls, settings: Settings) -> DatasetStore:
        """The uploaded datasets of CXR_STATE_DIR with the configured limits (the server's and a worker's)."""
        return cls(settings.state_dir / "datasets", max_files=settings.max_dataset_files,
                   max_bytes=settings.max_dataset_uncompressed_bytes, min_per_class=settings.min_images_per_class)

    def folder(self, dataset_id: str) -> Path | None:
        if not re.fullmatch(r"[0-9a-f]{12}", dataset_id):
            return None
        d = self.root / dataset_id
        return d if (d / META).is_file() else None

    def get(self, dataset_id: str) -> dict[str, Any] | None:
        d = self.folder(dataset_id)
        return json.loads((d / META).read_text()) if d else None

    def list(self) -> list[dict[str, Any]]:
        if not self.root.is_dir():
            return []
        metas = [json.loads((d / META).read_text()) for d in self.root.iterdir() if (d / META).is_file()]
        return sorted(metas, key=lambda m: m["created_at"], reverse=True)

    def delete(self, dataset_id: str) -> bool:
        d = self.folder(dataset_id)
        if d is None:
            return False
        trash = d.with_name(f".trash-{dataset_id}")
        os.replace(d, trash)  # disappears from listings at once
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def expire(self, max_age_days: float, keep: set[str]) -> list[str]:
        """Delete datasets older than ``max_age_days`` except those in ``keep`` (used by active jobs)."""
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=max_age_days)
        gone = []
        for meta in self.list():
            if meta["id"] not in keep and dt.datetime.fromisoformat(meta["created_at"]) < cutoff:
                if self.delete(meta["id"]):
                    gone.append(meta["id"])
        return gone

    def create_from(self, cases: list[tuple[Path, str]], *, source: dict[str, Any]) -> dict[str, Any]:
        """A dataset of existing image files (``cases``: file, class), copied into NORMAL/ and PNEUMONIA/."""
        counts = {c: sum(label == c for _, label in cases) for c in CLASSES}
        if min(counts.values()) < self.min_per_class:
            raise DatasetError(f"dataset needs at least {self.min_per_class} images per class; the selection has "
                               f"{counts} ({source})")
        dataset_id = uuid.uuid4().hex[:12]
        staging = self.root / f".staging-{dataset_id}"
        try:
            for cls in CLASSES:
                (staging / cls).mkdir(parents=True)
            for path, label in cases:
                shutil.copyfile(path, staging / label / path.name)
            meta = {"id": dataset_id, "filename": None, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                    "counts": {"train": counts}, "rejected_count": 0, "rejected": [], "source": source}
            write_json_atomic(staging / META, meta)
            os.replace(staging, self.root / dataset_id)
            return meta
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def ingest(self, archive: Path, filename: str | None) -> dict[str, Any]:
        """Extract, validate every image with the /predict decoder, then rename into place."""
        dataset_id = uuid.uuid4().hex[:12]
        staging = self.root / f".staging-{dataset_id}"
        try:
            extract(archive, staging, max_files=self.max_files, max_bytes=self.max_bytes)
            # the layout is read by the same parser training uses (models.data via layout.py), so an
            # upload accepted here is one POST /train accepts
            with public_paths(staging, "the archive"):
                splits = training_splits(locate_layout(staging))
                samples = {split: scan_class_folders(folder, require_all_classes=split == "train").samples
                           for split, folder in splits.items() if split in ("train", "val")}
            counts: dict[str, dict[str, int]] = {}
            rejected: list[dict[str, str]] = []
            used = {s.path for group in samples.values() for s in group}
            for path in sorted(p for p in staging.rglob("*") if p.is_file() and p not in used):
                rejected.append({"file": str(path.relative_to(staging)),
                                 "reason": "not an image under NORMAL/ or PNEUMONIA/ of train/ (or val/)"})
                path.unlink()
            for split, group in samples.items():
                tally = counts.setdefault(split, {c: 0 for c in CLASSES})
                for sample in group:
                    try:
                        decode_image(sample.path.read_bytes())
                    except (CXRError, OSError) as exc:
                        rejected.append({"file": str(sample.path.relative_to(staging)),
                                         "reason": getattr(exc, "detail", "unreadable")})
                        sample.path.unlink()
                        continue
                    tally[CLASSES[sample.label]] += 1
            train = counts.get("train", {c: 0 for c in CLASSES})
            if min(train.values()) < self.min_per_class:
                raise DatasetError(f"dataset needs at least {self.min_per_class} valid images per class; has {train}"
                                   f" ({len(rejected)} file(s) rejected)")
            meta = {"id": dataset_id, "filename": filename, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                    "counts": counts, "rejected_count": len(rejected), "rejected": rejected[:200]}
            write_json_atomic(staging / META, meta)
            os.replace(staging, self.root / dataset_id)
            return meta
        finally:
            shutil.rmtree(staging, ignore_errors=True)
