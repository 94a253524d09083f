"""Screened inputs kept for feedback (opt-in): with CXR_KEEP_INPUTS_DAYS set, the bytes of every screened
upload and STOW-RS instance are kept, content-addressed by SHA-256, for that many days, so that images
readers gave a verdict on can become a labelled set (POST /datasets/from-feedback) for site calibration.

Off by default: these are the images themselves (a DICOM header names the patient). The audit trail
never holds them; this folder is the one place they stay, and only for the set number of days.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

SUFFIX = {"png": ".png", "jpeg": ".jpg", "dicom": ".dcm"}


class InputKeeper:
    def __init__(self, root: Path, days: float) -> None:
        self.root = Path(root)
        self.days = days

    def _path(self, sha256: str, fmt: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}{SUFFIX.get(fmt, '.bin')}"

    def keep(self, sha256: str, data: bytes, fmt: str | None) -> Path:
        """Write once (atomic, 0600); the same bytes screened again only refresh the file's time."""
        path = self._path(sha256, fmt or "bin")
        if path.exists():
            os.utime(path)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keep-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def find(self, sha256: str) -> Path | None:
        folder = self.root / sha256[:2]
        if not folder.is_dir():
            return None
        return next((p for p in folder.glob(f"{sha256}.*")), None)

    def expire(self) -> int:
        """Delete kept inputs not screened for ``days``; returns how many went."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - self.days * 86400
        gone = 0
        for path in self.root.glob("*/*"):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                gone += 1
        return gone
