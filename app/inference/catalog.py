"""Which models exist, which one serves, and loading one safely (verify sha256, warm up, swap)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from app.inference.serving import OnnxRunner, ServingModel
from models.card import ModelCard, read_card, write_json_atomic
from models.errors import ModelNotFound, WeightsError
from models.weights import default_model_name, load_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    folder: Path
    source: str
    card: ModelCard


class ModelRegistry:
    """Shipped models live in ``weights_dir``; fine-tuned versions (jobs) under ``trained_dir``."""

    def __init__(self, weights_dir: Path, device: torch.device, trained_dir: Path | None = None,
                 backend: str = "torch", threads: int | None = None, active_file: Path | None = None,
                 on_activate: Callable[[ServingModel], None] | None = None) -> None:
        self.weights_dir = Path(weights_dir)
        self.trained_dir = Path(trained_dir) if trained_dir else None
        self.device = device
        self.backend = backend  # auto | torch | onnx
        self.threads = threads
        self.active_file = active_file  # remembers the active model across restarts
        self.on_activate = on_activate  # e.g. the active-model metric: every swap updates it, whoever asked
        self._active: ServingModel | None = None
        self._lock = threading.Lock()  # one load/swap at a time

    @property
    def active(self) -> ServingModel | None:
        return self._active

    def entries(self) -> list[ModelEntry]:
        found: list[ModelEntry] = []
        for source, root in (("shipped", self.weights_dir), ("trained", self.trained_dir)):
            if root is None or not root.is_dir():
                continue
            for folder in sorted(p for p in root.iterdir() if (p / "card.json").is_file()):
                try:
                    found.append(ModelEntry(folder.name, folder, source, read_card(folder)))
                except WeightsError as exc:
                    log.warning("skipping model folder %s: %s", folder.name, exc.detail)
        return found

    def find(self, name: str) -> ModelEntry:
        for entry in self.entries():
            if name in (entry.name, entry.card.name + "@" + entry.card.version):
                return entry
        as_path = Path(name)
        if (as_path / "card.json").is_file():
            return ModelEntry(as_path.name, as_path, "path", read_card(as_path))
        raise ModelNotFound(f"no model named {name!r}")

    def load(self, name: str | None) -> ServingModel:
        """Load, verify and warm up a model without touching the active one."""
        entry = self.find(name or default_model_name(self.weights_dir))
        loaded = load_model(entry.folder, device=self.device)
        onnx = None
        if self._use_onnx():
            onnx = OnnxRunner(loaded.model, loaded.card.input.image_size, self.threads)
        serving = ServingModel(loaded.card, loaded.model, self.device, entry.folder, entry.source, onnx)
        serving.warmup()
        return serving

    def _use_onnx(self) -> bool:
        if self.backend == "torch":
            return False
        if self.device.type != "cpu":
            if self.backend == "onnx":
                log.warning("backend onnx is for CPU serving; using PyTorch on %s", self.device)
            return False
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            if self.backend == "onnx":
                raise WeightsError("backend onnx requested but onnxruntime is not installed") from None
            return False
        return True

    def remembered(self) -> str | None:
        """The model that was active before the last restart, if its folder still exists."""
        if self.active_file is None or not self.active_file.is_file():
            return None
        try:
            folder = json.loads(self.active_file.read_text())["model"]
        except (OSError, ValueError, KeyError):
            return None
        return folder if (Path(folder) / "card.json").is_file() else None

    def activate(self, name: str | None) -> ServingModel:
        """Load then atomically swap: requests already batched finish on the old model."""
        with self._lock:
            serving = self.load(name)
            previous, self._active = self._active, serving
            if self.active_file is not None:
                self.active_file.parent.mkdir(parents=True, exist_ok=True)
                write_json_atomic(self.active_file, {"model": str(serving.folder)})
            if self.on_activate is not None:
                self.on_activate(serving)
        log.info("active model: %s %s on %s, backend %s (was %s)", serving.card.name, serving.card.version, self.device,
                 serving.backend, previous.card.version if previous else "none")
        return serving
