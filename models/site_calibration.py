"""Site calibration: a new version of a model whose temperature, bias and screening threshold are
refitted on labelled images like the deployment's; the weights (and their sha256) are unchanged.

Why: a model's probabilities and threshold, fitted on images like its training data, drift on a
site's images (another period, scanner or population). The only cure is to fit them on images
that look like the deployment. The figures reported for the new operating point are honest:
cross-fitted by patient (models.crossfit), never scored on the images that fitted them.

Used by ``cxr calibrate --model NAME --data FOLDER --out FOLDER`` and by the calibration jobs of
``POST /models/{name}/calibrate`` (app/training/worker.py).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.card import CARD_FILE, ModelCard, ScoreReference, SiteCalibration, SplitMetrics, write_card
from models.card_markdown import MARKDOWN_FILE, write_markdown
from models.crossfit import METRICS, cross_fit
from models.data import SampleList, TensorDataset, load_tensors, patient_id, scan_class_folders
from models.errors import DatasetError
from models.evaluate import evaluation_folder
from models.inference import calibrated_p_pneumonia, predict_logits
from models.metrics import fit_calibration, score_fractions, screening_threshold, summarize
from models.package import PREDICTIONS_FILE as TEST_PREDICTIONS_FILE
from models.package import write_predictions
from models.registry import CLASSES
from models.triage import URGENT_MIN_SPECIFICITY, cross_fit_urgent, describe_urgent_rule, high_specificity_threshold
from models.weights import LoadedModel, load_model

MIN_PER_CLASS = 20  # below this a 95 %-sensitivity threshold rests on one or two positives per fold
PREDICTIONS_FILE = "calibration_predictions.csv"
# written anew, or (test_predictions.csv) made stale by the new operating point, so not carried over
REWRITTEN = {CARD_FILE, MARKDOWN_FILE, PREDICTIONS_FILE, TEST_PREDICTIONS_FILE}
LIMITATIONS = (
    "Not a diagnosis and not a medical device. Not validated on adults, lateral or PA views, or other findings "
    "(tuberculosis, COVID-19, effusion). The probabilities and threshold were fitted on the labelled images named "
    "in 'calibration'; its figures are cross-fitted on those images, an estimate for images like them. An "
    "independent estimate needs other data."
)


def check_counts(counts: dict[str, int], min_per_class: int, *, label: str) -> None:
    """DatasetError (422) unless both classes have at least ``min_per_class`` images."""
    if not any(counts.values()):
        raise DatasetError(f"{label} has no images to calibrate on")
    missing = [c for c in CLASSES if not counts.get(c)]
    if missing:
        raise DatasetError(f"{label} has only {', '.join(c for c in CLASSES if c not in missing)} images; "
                           f"calibration needs both NORMAL and PNEUMONIA images (at least {min_per_class} each)")
    short = {c: counts.get(c, 0) for c in CLASSES if counts.get(c, 0) < min_per_class}
    if short:
        raise DatasetError(f"{label} is too small to calibrate on: needs at least {min_per_class} images per class, "
                           f"has {dict((c, counts.get(c, 0)) for c in CLASSES)}")


def calibration_folder(data: Path, min_per_class: int, *, label: str) -> tuple[Path, SampleList]:
    """The class folder to calibrate on (a NORMAL/ + PNEUMONIA/ folder, or a split root's test/) and its
    images, their per-class counts checked before any image is read."""
    folder = evaluation_folder(Path(data))
    samples = scan_class_folders(folder, require_all_classes=False)
    check_counts(samples.counts(), min_per_class, label=label)
    return folder, samples


def site_calibrate(
    model_dir: Path, data: Path, out: Path, *, command: str, version: str | None = None,
    data_label: str | None = None, min_sensitivity: float = 0.95, folds: int = 5, method: str = "platt",
    min_per_class: int = MIN_PER_CLASS, screen: Callable[[Any], str | None] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> ModelCard:
    """Write ``out`` (model folder: same weights file, new card, Markdown and out-of-fold predictions).
    ``screen``: the integrity check (decoded image -> refusal reason or None); refused images are left
    out, as the service refuses them. ``out`` may be ``model_dir`` itself (the folder is replaced)."""
    label = data_label or str(data)
    progress = on_progress or (lambda event: None)
    folder, samples = calibration_folder(Path(data), min_per_class, label=label)
    loaded = load_model(Path(model_dir), device=torch.device("cpu"))
    progress({"stage": "reading images"})
    ds = load_tensors(samples.samples, loaded.card.input, screen=screen)
    check_counts(ds.counts(), min_per_class, label=f"{label} (after {len(ds.refused)} image(s) refused by the "
                 f"integrity check and {len(ds.skipped)} unreadable)")
    progress({"stage": "scoring", "images": len(ds)})
    logits = predict_logits(loaded.model, ds.images, loaded.card.input, torch.device("cpu"))
    progress({"stage": "fitting"})
    card, p = calibrated_card(loaded, ds, logits, command=command, version=version, data_label=label,
                              min_sensitivity=min_sensitivity, folds=folds, method=method)
    # per image at the new operating point (in-sample: the card's figures are the out-of-fold ones)
    publish(Path(model_dir), Path(out), card,
            lambda staging: write_predictions(staging / PREDICTIONS_FILE, ds, p, card.threshold, root=folder))
    return card


def calibrated_card(loaded: LoadedModel, ds: TensorDataset, logits: torch.Tensor, *, command: str,
                    version: str | None, data_label: str, min_sensitivity: float, folds: int,
                    method: str) -> tuple[ModelCard, np.ndarray]:
    """The new card (operating point fitted on all images, figures cross-fitted by patient) and each
    image's P(PNEUMONIA) at it."""
    old = loaded.card
    y = ds.labels.numpy()
    temperature, bias = fit_calibration(logits, ds.labels, method)
    p_new = calibrated_p_pneumonia(logits, temperature, bias).numpy()
    threshold = screening_threshold(y, p_new, min_sensitivity=min_sensitivity)
    patients = [patient_id(p) for p in ds.paths]
    k = min(folds, len(set(patients)))
    crossed = cross_fit(logits, ds.labels, patients, k=k, min_sensitivity=min_sensitivity, method=method)
    p_oof = crossed.pop("p_out_of_fold")
    urgent = high_specificity_threshold(y, p_new, min_specificity=URGENT_MIN_SPECIFICITY, floor=threshold)
    urgent_oof = cross_fit_urgent(y, p_oof, patients, screening_threshold=threshold, k=k)
    previous = summarize(y, calibrated_p_pneumonia(logits, old.temperature, old.bias).numpy(), old.threshold)
    now = dt.datetime.now(dt.timezone.utc)
    calibration = SiteCalibration(
        calibrated_from=f"{old.name}@{old.version}", data=data_label, counts=ds.counts(), refused=len(ds.refused),
        unreadable=len(ds.skipped), method=method, min_sensitivity=min_sensitivity, folds=k,
        patients=crossed["patients"], out_of_fold={m: crossed[m] for m in METRICS}, fold_fits=crossed["fitted"],
        previous={"temperature": old.temperature, "bias": old.bias, "threshold": old.threshold,
                  "operating_point": old.operating_point,
                  "figures_on_these_images": {m: previous[m] for m in ("n", "auroc", "accuracy", "sensitivity",
                                                                       "specificity", "ece")},
                  "metrics": {k: v.model_dump(mode="json") for k, v in old.metrics.items()}},
        command=command, created=now.isoformat(timespec="seconds"),
    )
    oof = SplitMetrics(n=len(y), **{m: crossed[m]["value"] for m in METRICS}, threshold=round(threshold, 6))
    rate = float((p_new >= threshold).mean())
    reference = ScoreReference(data=data_label, n=len(y), bin_edges=[i / 10 for i in range(11)],
                               fractions=score_fractions(p_new), positive_rate=round(rate, 4),
                               expected_positive_rate=(round(rate / 1.5, 4), round(min(1.0, rate * 1.5), 4)))
    return old.model_copy(update={
        "version": version or f"{old.version}+cal.{now.strftime('%Y%m%d%H%M%S')}",
        "temperature": temperature, "bias": bias, "threshold": threshold,
        "urgent_threshold": urgent, "urgent_out_of_fold": urgent_oof,
        "urgent_rule": describe_urgent_rule(URGENT_MIN_SPECIFICITY, len(y), data_label),
        "operating_point": (f"{'temperature and bias' if method == 'platt' else 'temperature'}: NLL on the "
                            f"{len(y)} calibration images ({data_label}); threshold: highest with sensitivity >= "
                            f"{min_sensitivity:g} on them; figures cross-fitted ({k} folds by patient)"),
        "created": now.isoformat(timespec="seconds"),
        "metrics": {"calibration_out_of_fold": oof},
        "calibration": calibration,
        "reference": reference,
        "limitations": LIMITATIONS,
    }), p_new


def publish(model_dir: Path, out: Path, card: ModelCard, write_predictions_to: Callable[[Path], None]) -> None:
    """Weights copied unchanged, new card + Markdown + predictions (``write_predictions_to(staging folder)``);
    the folder appears whole or not at all."""
    if out.exists() and out.resolve() != model_dir.resolve() and any(out.iterdir()):
        raise DatasetError(f"{out} exists and is not empty; choose a new folder for the calibrated version")
    staging = out.with_name(f".{out.name}.calibrating")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        shutil.copy2(model_dir / card.weights_file, staging / card.weights_file)
        if out.resolve() == model_dir.resolve():  # in place: the history (train.log, ...) stays with the weights
            for extra in model_dir.iterdir():
                if extra.is_file() and extra.name not in REWRITTEN:
                    shutil.copy2(extra, staging / extra.name)
        write_card(staging, card)
        write_markdown(staging, card)
        write_predictions_to(staging)
        if out.exists():
            old = out.with_name(f".{out.name}.previous")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

