"""Binary screening metrics on P(PNEUMONIA): AUROC, operating point, calibration (numpy; the temperature
fit uses torch's LBFGS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is loaded by the fits only: the serving process reads metrics without it
    import torch


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) with thresholds descending; predicted positive when score >= threshold."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    thresholds = np.unique(s)[::-1]
    tpr = np.array([(s[y] >= t).mean() for t in thresholds])
    fpr = np.array([(s[~y] >= t).mean() for t in thresholds])
    return np.r_[0.0, fpr], np.r_[0.0, tpr], np.r_[np.inf, thresholds]


def confusion(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, int]:
    y = np.asarray(labels).astype(bool)
    p = np.asarray(scores) >= threshold
    return {"tn": int((~y & ~p).sum()), "fp": int((~y & p).sum()), "fn": int((y & ~p).sum()), "tp": int((y & p).sum())}


def expected_calibration_error(labels: np.ndarray, p_pos: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins (Guo et al. 2017)."""
    y = np.asarray(labels).astype(int)
    p = np.asarray(p_pos, dtype=np.float64)
    pred = (p >= 0.5).astype(int)
    conf = np.where(pred == 1, p, 1 - p)
    correct = (pred == y).astype(float)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    ece = 0.0
    for k in range(n_bins):
        lo, hi = edges[k], edges[k + 1]
        mask = (conf > lo) & (conf <= hi) if k else (conf >= lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def screening_threshold(labels: np.ndarray, p_pos: np.ndarray, *, min_sensitivity: float = 0.95) -> float:
    """Highest threshold whose sensitivity is >= ``min_sensitivity``: the best specificity that keeps it."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(p_pos, dtype=np.float64)
    pos = np.sort(s[y])[::-1]
    if len(pos) == 0:
        return 0.5
    k = int(np.ceil(min_sensitivity * len(pos))) - 1  # need at least k+1 positives at or above it
    return float(pos[min(max(k, 0), len(pos) - 1)])


def summarize(labels: np.ndarray, p_pos: np.ndarray, threshold: float) -> dict[str, object]:
    """The evaluation report: n, auroc, accuracy, sensitivity, specificity, f1, ece, confusion matrix."""
    c = confusion(labels, p_pos, threshold)
    tp, tn, fp, fn = c["tp"], c["tn"], c["fp"], c["fn"]
    n = tp + tn + fp + fn
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    prec = tp / (tp + fp) if tp + fp else 0.0
    f1 = 2 * prec * sens / (prec + sens) if prec + sens else 0.0
    return {
        "n": n,
        "auroc": round(auroc(labels, p_pos), 4),
        "accuracy": round((tp + tn) / n, 4) if n else float("nan"),
        "sensitivity": round(sens, 4),
        "specificity": round(spec, 4),
        "f1": round(f1, 4),
        "ece": round(expected_calibration_error(labels, p_pos), 4),
        "threshold": round(float(threshold), 6),
        "confusion_matrix": {"labels": ["NORMAL", "PNEUMONIA"], "rows_true_cols_pred": [[tn, fp], [fn, tp]]},
    }


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, max_iter: int = 200) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 that minimises NLL of softmax(logits / T)."""
    import torch

    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")
    logits = logits.detach().double()
    labels = labels.detach().long()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.double().exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0).item())


def fit_platt(logits: torch.Tensor, labels: torch.Tensor, *, max_iter: int = 200) -> tuple[float, float]:
    """Platt scaling of the logit difference: the (T > 0, bias) minimising the NLL of
    sigmoid((z_P - z_N) / T + bias). Returns (temperature, bias)."""
    import torch

    diff = (logits[:, 1] - logits[:, 0]).detach().double()
    target = labels.detach().double()
    log_a = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_a, bias], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(diff * log_a.exp() + bias, target)
        loss.backward()
        return loss

    opt.step(closure)
    temperature = float((-log_a.detach()).exp().clamp(0.05, 20.0).item())
    return temperature, float(bias.detach().clamp(-20.0, 20.0).item())


CALIBRATION_METHODS = ("temperature", "platt")


def fit_calibration(logits: torch.Tensor, labels: torch.Tensor, method: str) -> tuple[float, float]:
    """(temperature, bias) by ``method``: 'temperature' (bias 0) or 'platt'."""
    if method == "temperature":
        return fit_temperature(logits, labels), 0.0
    if method == "platt":
        return fit_platt(logits, labels)
    raise ValueError(f"unknown calibration method {method!r}; choose from {', '.join(CALIBRATION_METHODS)}")


def score_fractions(p: np.ndarray, bins: int = 10) -> list[float]:
    """Share of scores in each of ``bins`` equal-width bins over [0, 1] (1.0 falls in the last)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    if len(p) == 0:
        return [0.0] * bins
    counts = np.bincount(np.minimum((p * bins).astype(int), bins - 1), minlength=bins)
    return [round(float(c) / len(p), 6) for c in counts]


def population_stability_index(reference: list[float], current: list[float], *, floor: float = 1e-4) -> float:
    """PSI = sum (c - r) ln(c / r) over bins, empty bins floored at ``floor``. Rule of thumb: < 0.1 stable,
    0.1-0.2 moderate shift, > 0.2 a shift worth investigating."""
    r = np.maximum(np.asarray(reference, dtype=np.float64), floor)
    c = np.maximum(np.asarray(current, dtype=np.float64), floor)
    return float(((c - r) * np.log(c / r)).sum())


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion; (nan, nan) when n is 0."""
    if n == 0:
        return float("nan"), float("nan")
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))
