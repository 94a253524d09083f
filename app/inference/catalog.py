"""Which model serves, and changing it safely (verify sha256, warm up, swap); lookups go to models.catalog.

Served through ONNX Runtime (the CPU default), a model is its card, its verified weights' digest and
a graph from models.onnx_serving: this process never imports torch. The eager path (a GPU, or
``CXR_BACKEND=torch``) loads the weights into PyTorch.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from app.core.allocator import malloc_tuned
from app.inference.serving import OnnxRunner, Runner, ServingModel, TorchRunner
from app.core.config import Settings
from app.core.files import write_json_atomic
from models.card import CARD_FILE, ModelCard, read_card
from models.catalog import ModelCatalog, ModelEntry
from models.digest import verify_file
from models.errors import WeightsError
from models.onnx_serving import onnx_graph

log = logging.getLogger(__name__)


def catalog_of(settings: Settings) -> ModelCatalog:
    """The model lookup the server, the CLI and the worker share: shipped models in CXR_WEIGHTS_DIR,
    fine-tuned versions in CXR_STATE_DIR/models."""
    return ModelCatalog(settings.weights_dir, settings.state_dir / "models")


class ModelRegistry:
    """The serving model and the one way to change it: ``activate`` loads, verifies, warms up, swaps,
    remembers it in ``active_file`` and tells ``on_activate`` (the metric), whoever asked."""

    def __init__(self, catalog: ModelCatalog, device: str = "cpu", *,
                 backend: str = "torch", threads: int | None = None, active_file: Path | None = None,
                 onnx_cache: Path | None = None, on_activate: Callable[[ServingModel], None] | None = None) -> None:
        self.catalog = catalog  # the one lookup rule (also the CLI's and the worker's)
        self.device = device  # "cpu", "cuda:0", ...
        self.onnx_cache = onnx_cache  # where exported graphs are kept (None: export at every load)
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
        return self.catalog.entries()

    def find(self, name: str | None) -> ModelEntry:
        return self.catalog.find(name)

    def load(self, name: str | None) -> ServingModel:
        """Load, verify and warm up a model without touching the active one."""
        entry = self.find(name)
        runner: Runner
        if self._use_onnx():
            card = read_card(entry.folder)
            verify_file(entry.folder / card.weights_file, card.sha256, "weights file")
            graph = onnx_graph("classifier", entry.folder, card.sha256, card.input.image_size, self.onnx_cache)
            runner = OnnxRunner(graph, self.threads, arena=not malloc_tuned())
        else:
            card, runner = self._load_eager(entry)
        serving = ServingModel(card, runner, self.device, entry.folder, entry.source)
        serving.warmup()
        return serving

    def _load_eager(self, entry: ModelEntry) -> tuple[ModelCard, Runner]:
        import torch

        from models.weights import load_model

        if self.threads:
            torch.set_num_threads(self.threads)
        loaded = load_model(entry.folder, device=self.device)
        return loaded.card, TorchRunner(loaded.model, self.device)

    def _use_onnx(self) -> bool:
        if self.backend == "torch":
            return False
        if self.device != "cpu":
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
        return folder if (Path(folder) / CARD_FILE).is_file() else None

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
