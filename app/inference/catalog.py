"""Which model serves, and changing it safely (verify sha256, warm up, swap); lookups go to models.catalog.

Served through ONNX Runtime (the CPU default), a model is its card, its verified weights' digest and
a graph from models.onnx_serving: this process never imports torch. The eager path (a GPU, or
``CXR_BACKEND=torch``) loads the weights into PyTorch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from app.inference.serving import OnnxRunner, Runner, ServingModel, TorchRunner
from app.core.config import Settings
from app.db.active import ActivePointer
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
    """The serving model and the one way to change it: ``activate`` loads, verifies, warms up, swaps, names
    it in the database (``pointer``) and tells ``on_activate`` (the metric), whoever asked; ``follow`` swaps
    to what the database names when another replica or a worker changed it."""

    def __init__(self, catalog: ModelCatalog, device: str = "cpu", *,
                 backend: str = "torch", threads: int | None = None, pointer: ActivePointer | None = None,
                 legacy_active_file: Path | None = None, onnx_cache: Path | None = None,
                 on_activate: Callable[[ServingModel], None] | None = None, name: str = "cxr") -> None:
        self.catalog = catalog  # the one lookup rule (also the CLI's and the worker's)
        self.device = device  # "cpu", "cuda:0", ...
        self.onnx_cache = onnx_cache  # where exported graphs are kept (None: export at every load)
        self.backend = backend  # auto | torch | onnx
        self.threads = threads
        self.pointer = pointer  # the shared database's active model: remembered across restarts, followed by replicas
        self.legacy_active_file = legacy_active_file  # where releases before the database remembered it (read only)
        self.name = name  # who activates, as the pointer records it
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
            runner = OnnxRunner(graph, self.threads)
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
        """The model the database names (else the one a release before it remembered), if it can be found."""
        want = self.pointer.get() if self.pointer is not None else None
        if want is not None:
            return want.name
        if self.legacy_active_file is None or not self.legacy_active_file.is_file():
            return None
        try:
            folder = json.loads(self.legacy_active_file.read_text())["model"]
        except (OSError, ValueError, KeyError):
            return None
        return folder if (Path(folder) / CARD_FILE).is_file() else None

    def activate(self, name: str | None) -> ServingModel:
        """Load then atomically swap (requests already batched finish on the old model), then name it in the
        database, so that every replica follows. A model whose files cannot be read or verified is refused
        before anything changes."""
        serving = self._swap(name)
        if self.pointer is not None:
            self.pointer.set(serving.folder.name, serving.card.version, serving.card.sha256, updated_by=self.name)
        return serving

    def follow(self) -> bool:
        """Serve what the database names, when another replica or a worker changed it; True on a swap."""
        want = self.pointer.get() if self.pointer is not None else None
        active = self._active
        if want is None or active is None or (want.name, want.sha256) == (active.folder.name, active.card.sha256):
            return False
        log.info("the database names %s %s (set by %s at %s): following", want.name, want.version, want.updated_by,
                 want.updated_at)
        self._swap(want.name)
        return True

    def _swap(self, name: str | None) -> ServingModel:
        with self._lock:
            serving = self.load(name)
            previous, self._active = self._active, serving
            if self.on_activate is not None:
                self.on_activate(serving)
        log.info("active model: %s %s on %s, backend %s (was %s)", serving.card.name, serving.card.version, self.device,
                 serving.backend, previous.card.version if previous else "none")
        return serving


async def follow_active(registry: ModelRegistry, interval_s: float) -> None:
    """Every ``interval_s``: serve what the database names (another replica or a worker may have changed it).
    A failure (the database unreachable, a model that no longer loads) keeps the current model serving and is
    logged once per distinct reason."""
    last_error = ""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(registry.follow)
            last_error = ""
        except Exception as exc:
            if str(exc) != last_error:
                log.error("cannot follow the database's active model (still serving %s): %s",
                          registry.active.card.version if registry.active else "none", exc)
            last_error = str(exc)
