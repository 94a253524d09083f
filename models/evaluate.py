"""`cxr evaluate`: a model folder on a labelled image folder -> one JSON report (and optional plot)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from models.data import find_splits, load_tensors, scan_class_folders
from models.device import select_device
from models.errors import DatasetError
from models.inference import calibrated_p_pneumonia, predict_logits
from models.integrity.check import screener
from models.metrics import expected_calibration_error, roc_curve, summarize
from models.weights import load_model


def evaluation_folder(data: Path) -> Path:
    """A folder with class subfolders, or a split root (its test/ split is used)."""
    splits = find_splits(Path(data))
    if "test" not in splits:
        raise DatasetError(f"{data} has no test/ split and no NORMAL/PNEUMONIA class folders to evaluate on")
    return splits["test"]


def evaluate(model_dir: Path, data: Path, *, device: str = "auto", plot: Path | None = None,
             guard: Path | None = None) -> dict[str, Any]:
    """Metrics on the images the service would read: those the integrity check (the guard in
    ``guard``; None: no check) refuses are counted and left out, as /predict refuses them."""
    folder = evaluation_folder(data)
    loaded = load_model(model_dir, device=select_device(device))
    card = loaded.card
    screen = screener(guard)
    ds = load_tensors(scan_class_folders(folder, require_all_classes=False).samples, card.input, screen=screen)
    if len(ds) == 0:
        raise DatasetError(f"{folder}: no readable images that the integrity check accepts "
                           f"({len(ds.refused)} refused, {len(ds.skipped)} unreadable)")
    logits = predict_logits(loaded.model, ds.images, card.input, next(loaded.model.parameters()).device)
    p = calibrated_p_pneumonia(logits, card.temperature, card.bias).numpy()
    y = ds.labels.numpy()
    report: dict[str, Any] = {"model": card.name, "version": card.version, "data": str(folder)}
    report.update(summarize(y, p, card.threshold))
    report["counts"] = ds.counts()
    report["skipped_files"] = len(ds.skipped)
    report["integrity"] = None if screen is None else {
        "refused": len(ds.refused), "accepted": len(ds),
        "reasons": dict(Counter(reason.split(" (")[0] for _, reason in ds.refused)),
        "refused_files": [p.name for p, _ in ds.refused[:50]],
    }
    if plot is not None:
        save_plot(plot, y, p, title=f"{card.name} {card.version}")
        report["plot"] = str(plot)
    return report


def save_plot(path: Path, y: np.ndarray, p: np.ndarray, *, title: str, n_bins: int = 10) -> None:
    """ROC curve and reliability diagram side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr, _ = roc_curve(y, p)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
    ax1.plot(fpr, tpr, lw=2)
    ax1.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax1.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC")
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, n_bins - 1)
    centers, freq = [], []
    for k in range(n_bins):
        m = idx == k
        if m.any():
            centers.append(p[m].mean())
            freq.append(y[m].mean())
    ax2.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax2.plot(centers, freq, "o-")
    ax2.set(xlabel="predicted P(PNEUMONIA)", ylabel="observed frequency",
            title=f"reliability (ECE {expected_calibration_error(y, p):.3f})")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
