"""The integrity guard served by ONNX Runtime, without torch: what the service scores every image with."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from models.integrity.guard_card import GuardCard, verify_guard
from models.onnx_serving import cpu_session, onnx_graph


def graph_source_sha256(card: GuardCard) -> str:
    """One digest for the two weight files the guard's graph is made from."""
    return hashlib.sha256(f"{card.backbone_sha256}:{card.sha256}".encode()).hexdigest()


class OnnxGuard:
    """Scores equal the eager guard's within 1e-5 (tests/test_integrity_rules.py)."""

    def __init__(self, card: GuardCard, session: Any, folder: Path) -> None:
        self.card = card
        self.session = session
        self.folder = folder

    def score(self, pixels: np.ndarray) -> float:
        """P(frontal chest radiograph) of one (H, W) uint8 image. Thread-safe."""
        x = self.card.input.to_array(pixels)[None]
        return float(self.session.run(None, {"x": x})[0][0])


def load_onnx_guard(folder: Path, cache_dir: Path | None, *, threads: int = 1) -> OnnxGuard:
    """Verify the guard's digests, then open its (cached) graph on the CPU."""
    card = verify_guard(folder)
    graph = onnx_graph("guard", Path(folder), graph_source_sha256(card), card.input.image_size, cache_dir)
    return OnnxGuard(card, cpu_session(graph, threads), Path(folder))
