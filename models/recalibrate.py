"""`cxr recalibrate`: refit a shipped model's temperature and threshold with the current rule.

The weights are not touched (their sha256 stays); the card keeps its training record, gets new
validation/test metrics and notes the command that recalibrated it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.card import ModelCard
from models.config import TrainConfig
from models.package import calibrate_and_save, packaging_overrides, prepare_data
from models.weights import load_model


def recalibrate(model_dir: Path, overrides: dict[str, Any], *, command: str) -> ModelCard:
    """Rewrite ``model_dir``'s card (and test predictions) with a freshly fitted operating point."""
    loaded = load_model(Path(model_dir))
    card = loaded.card
    base = TrainConfig.from_dict(card.training.config)
    cfg = TrainConfig.from_dict({**base.to_dict(), **packaging_overrides(overrides), "out": str(model_dir),
                                 "name": card.name, "version": overrides.get("version") or card.version,
                                 "init_from": card.base_model})
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = prepare_data(cfg, card.input)
    training = card.training.model_dump(exclude={"data", "counts", "patient_split_seed", "val_fraction", "notes",
                                                 "skipped_files"})
    training["config"] = {**training["config"], "threshold_augment": cfg.threshold_augment,
                          "threshold_draws": cfg.threshold_draws}
    training["recalibrated_by"] = command
    return calibrate_and_save(loaded.model, cfg, data, card.input, training=training,
                              base_metrics=card.base_metrics)
