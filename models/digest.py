"""SHA-256 of files and the check against a card's digest (no torch: the serving process verifies too)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from models.errors import WeightsError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: Path, sha256: str, what: str) -> None:
    """WeightsError naming ``what`` unless ``path`` exists and has the card's sha256."""
    if not Path(path).is_file():
        raise WeightsError(f"{what} {path} is missing")
    digest = sha256_file(path)
    if digest != sha256:
        raise WeightsError(f"{what} {path} is corrupt: sha256 {digest[:12]}… does not match the card's {sha256[:12]}…")
