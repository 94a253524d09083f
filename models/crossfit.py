"""Honest figures for an operating point fitted on the data it is judged on: cross-fitting.

The images are split into ``k`` folds by patient; for each fold the temperature and bias (NLL; see
``models.metrics.fit_calibration``) and the
screening threshold (highest with sensitivity >= ``min_sensitivity``) are fitted on the other
folds and applied to this one. The pooled out-of-fold predictions give AUROC, accuracy,
sensitivity, specificity and ECE, each with a 95 % interval from a bootstrap over patients.
Used to report what a temperature and threshold fitted on a site's (or the test period's) images
would do on images of the same kind that were not used to fit them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from models.inference import calibrated_p_pneumonia
from models.metrics import auroc, expected_calibration_error, fit_calibration, screening_threshold

METRICS = ("auroc", "accuracy", "sensitivity", "specificity", "ece")


def patient_folds(patients: list[str], k: int, *, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) per sample; every image of a patient lands in the same fold."""
    unique = sorted(set(patients))
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of = {unique[i]: rank % k for rank, i in enumerate(order)}
    return np.array([fold_of[p] for p in patients])


def _figures(y: np.ndarray, p: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    pos, neg = y == 1, y == 0
    return {"auroc": auroc(y, p), "accuracy": float((pred == y).mean()),
            "sensitivity": float(pred[pos].mean()) if pos.any() else float("nan"),
            "specificity": float(1 - pred[neg].mean()) if neg.any() else float("nan"),
            "ece": expected_calibration_error(y, p)}


def cross_fit(logits: torch.Tensor, labels: torch.Tensor, patients: list[str], *, k: int = 5,
              min_sensitivity: float = 0.95, seed: int = 0, bootstrap: int = 1000,
              method: str = "temperature") -> dict[str, Any]:
    """Out-of-fold figures (with 95 % bootstrap intervals), the pooled out-of-fold P(PNEUMONIA)
    (``p_out_of_fold``, per sample) and each fold's fitted temperature, bias and threshold."""
    y = labels.numpy().astype(int)
    folds = patient_folds(patients, k, seed=seed)
    p_oof, pred_oof = np.zeros(len(y)), np.zeros(len(y), dtype=int)
    fitted = []
    for f in range(k):
        test, train = folds == f, folds != f
        t, b = fit_calibration(logits[torch.from_numpy(train)], labels[torch.from_numpy(train)], method)
        p_train = calibrated_p_pneumonia(logits[torch.from_numpy(train)], t, b).numpy()
        threshold = screening_threshold(y[train], p_train, min_sensitivity=min_sensitivity)
        p_oof[test] = calibrated_p_pneumonia(logits[torch.from_numpy(test)], t, b).numpy()
        pred_oof[test] = (p_oof[test] >= threshold).astype(int)
        fitted.append({"fold": f, "n": int(test.sum()), "temperature": round(t, 4), "bias": round(b, 4),
                       "threshold": round(threshold, 4)})
    point = _figures(y, p_oof, pred_oof)
    rng = np.random.default_rng(seed)
    groups = {p: np.flatnonzero(np.array(patients) == p) for p in sorted(set(patients))}
    keys = list(groups)
    draws = {m: [] for m in METRICS}
    for _ in range(bootstrap):
        idx = np.concatenate([groups[keys[i]] for i in rng.integers(0, len(keys), len(keys))])
        for m, v in _figures(y[idx], p_oof[idx], pred_oof[idx]).items():
            draws[m].append(v)
    out: dict[str, Any] = {"n": int(len(y)), "folds": k, "patients": len(keys), "method": method,
                           "min_sensitivity": min_sensitivity}
    for m in METRICS:
        lo, hi = np.nanpercentile(draws[m], [2.5, 97.5])
        out[m] = {"value": round(point[m], 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}
    out["fitted"] = fitted
    out["p_out_of_fold"] = p_oof
    return out
