"""`cxr soup`: one model whose weights are the average of several fine-tunes of one pretrained backbone.

A uniform "model soup" (Wortsman et al., ICML 2022): fine-tunes that start from the same pretrained
weights stay in one basin of the loss, so averaging their weights gives one network -- same size,
same latency, same Grad-CAM path as each member -- that is usually more robust to a shift in the
data than any member. Averaged batch-norm running statistics do not match the averaged weights, so
they are re-estimated on training images. Temperature, threshold and the card then come from the
same code as ``cxr train`` (models.package.calibrate_and_save).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.card import ModelCard
from models.config import TrainConfig
from models.errors import CXRError
from models.package import calibrate_and_save, packaging_overrides, prepare_data
from models.weights import LoadedModel, load_model

log = logging.getLogger(__name__)
BN_IMAGES = 1024  # training images used to re-estimate batch-norm statistics


def check_members(members: list[LoadedModel]) -> None:
    """Members must share architecture, input, classes and the patient-level split (else the
    soup's validation images could be some member's training images)."""
    if len(members) < 2:
        raise CXRError("a soup needs at least two member models")
    first = members[0].card
    for m in members[1:]:
        c = m.card
        for what, a, b in (("architecture", first.architecture, c.architecture), ("input", first.input, c.input),
                           ("classes", first.classes, c.classes),
                           ("patient split seed", first.training.patient_split_seed, c.training.patient_split_seed),
                           ("validation fraction", first.training.val_fraction, c.training.val_fraction)):
            if a != b:
                raise CXRError(f"{m.folder} differs from {members[0].folder} in {what} ({b} vs {a}); "
                               "soup members must be fine-tunes of one architecture on one split")


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating tensors; integer buffers (batch-norm counters) from the first."""
    out = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            out[key] = torch.stack([s[key].float() for s in states]).mean(0).to(first.dtype)
        else:
            out[key] = first.clone()
    return out


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, images: torch.Tensor, spec: Any, *, limit: int = BN_IMAGES,
                         batch_size: int = 64, seed: int = 0) -> int:
    """Reset every batch-norm layer's running mean/var and recompute them as exact averages over
    ``limit`` seeded-random images (clean, no augmentation). Returns the number of images used."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:limit]
    device = next(model.parameters()).device
    was_training = model.training
    model.train()
    try:
        for i in range(0, len(idx), batch_size):
            model(spec.normalize(images[idx[i : i + batch_size]]).unsqueeze(1).to(device))
    finally:
        model.train(was_training)
        for m, momentum in saved:
            m.momentum = momentum
    return len(idx)


def soup_and_package(member_dirs: list[Path], overrides: dict[str, Any], *, command: str) -> ModelCard:
    """Average the members, re-estimate batch norm, calibrate on validation, write carded weights.
    ``overrides``: PACKAGING_FIELDS values (data, out, name, ...); the rest is the first member's config."""
    t0 = time.perf_counter()
    out = overrides.get("out")
    if not out:
        raise CXRError("a soup needs an output folder")
    if any(Path(out).resolve() == Path(d).resolve() for d in member_dirs):
        raise CXRError(f"the output folder {out} is one of the members; write the soup to a new folder")
    members = [load_model(Path(d)) for d in member_dirs]
    check_members(members)
    first = members[0].card
    base = TrainConfig.from_dict(first.training.config)
    cfg = TrainConfig.from_dict({**base.to_dict(), **packaging_overrides(overrides),
                                 "arch": first.architecture, "image_size": first.input.image_size,
                                 "seed": first.training.patient_split_seed, "val_fraction": first.training.val_fraction,
                                 "init_from": None, "resume": False,
                                 "notes": overrides.get("notes") or f"uniform weight soup of {len(members)} fine-tunes"})
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = prepare_data(cfg, first.input)
    model = members[0].model
    model.load_state_dict(average_state_dicts([m.model.state_dict() for m in members]))
    n_bn = reestimate_batchnorm(model, data["train"].images, first.input, seed=cfg.seed)
    log.info("soup of %d members; batch-norm statistics re-estimated on %d training images", len(members), n_bn)
    training = {
        "config": {**cfg.to_dict(), "bn_images": n_bn}, "command": command,
        "duration_s": round(time.perf_counter() - t0, 1), "epochs_run": 0, "best_epoch": 0,
        "members": [{"folder": str(m.folder), "name": m.card.name, "version": m.card.version,
                     "sha256": m.card.sha256, "command": m.card.training.command,
                     "val_auroc": m.card.metrics["val"].auroc if "val" in m.card.metrics else None}
                    for m in members],
    }
    return calibrate_and_save(model, cfg, data, first.input, training=training)

