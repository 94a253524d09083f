"""Atomic file writes for the service's own state (keys, the active-model pointer, results, datasets).

``models`` has the same rule for cards and weights (models/card.py); the two packages may not import
each other's way (core imports nothing above it, models nothing from app), so each keeps its copy.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Temporary file in the same folder, fsync, rename over ``path``: readers see the old file or the
    whole new one, and a crash after return cannot lose it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any, *, mode: int = 0o644) -> None:
    write_atomic(path, (json.dumps(payload, indent=2) + "\n").encode("utf-8"), mode=mode)
