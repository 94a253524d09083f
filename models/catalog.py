"""The one name -> model folder lookup, used by the server, the CLI and the training worker.

Shipped models live in ``weights_dir`` (its ``manifest.json`` names the default); fine-tuned
versions that ``POST /train`` publishes live in ``trained_dir`` (``CXR_STATE_DIR/models``). A model
is found by its folder name, by ``name@version``, or by a folder path holding a ``card.json``.
Where these folders are is configuration (``app.core.config.Settings``), not this module's business.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from models.card import CARD_FILE, ModelCard, read_card
from models.errors import ModelNotFound, WeightsError

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    folder: Path
    source: str  # shipped | trained | path
    card: ModelCard


class ModelCatalog:
    def __init__(self, weights_dir: Path, trained_dir: Path | None = None) -> None:
        self.weights_dir = Path(weights_dir)
        self.trained_dir = Path(trained_dir) if trained_dir else None

    def default_name(self) -> str:
        try:
            return str(json.loads((self.weights_dir / MANIFEST).read_text())["default"])
        except (OSError, ValueError, KeyError) as exc:
            raise WeightsError(f"{self.weights_dir / MANIFEST} does not name a default model: {exc}") from None

    def entries(self) -> list[ModelEntry]:
        found: list[ModelEntry] = []
        for source, root in (("shipped", self.weights_dir), ("trained", self.trained_dir)):
            if root is None or not root.is_dir():
                continue
            # dot-folders are versions being written (staging) or replaced, never served
            for folder in sorted(p for p in root.iterdir() if not p.name.startswith(".") and (p / CARD_FILE).is_file()):
                try:
                    found.append(ModelEntry(folder.name, folder, source, read_card(folder)))
                except WeightsError as exc:
                    log.warning("skipping model folder %s: %s", folder.name, exc.detail)
        return found

    def find(self, name: str | None = None) -> ModelEntry:
        """``name``: a model name, ``name@version`` or a model folder; None: the default model."""
        name = name or self.default_name()
        entries = self.entries()
        for entry in entries:
            if name in (entry.name, entry.card.name + "@" + entry.card.version):
                return entry
        as_path = Path(name)
        if _is_model_folder(as_path):
            return ModelEntry(as_path.name, as_path, "path", read_card(as_path))
        known = ", ".join(e.name for e in entries) or "none"
        raise ModelNotFound(f"no model named {name!r}; known: {known}")


def _is_model_folder(path: Path) -> bool:
    """A folder with a card; False for any name the file system cannot even look up (too long, NUL)."""
    try:
        return (path / CARD_FILE).is_file()
    except (OSError, ValueError):
        return False
