"""Worklist priority: a second, higher operating point chosen for high specificity.

The screening threshold is chosen for sensitivity (a triage tool must not miss pneumonia), so many
of the images above it are normal. A worklist wants a smaller set it can read first with
confidence: ``urgent`` when P(PNEUMONIA) >= the card's ``urgent_threshold``, the lowest threshold
whose specificity is >= ``min_specificity`` (default 0.98) on the calibration images, never below
the screening threshold; ``routine`` otherwise; ``not_evaluated`` when the integrity check refused
the image. Its figures are cross-fitted by patient like the screening point's
(``models.crossfit``): the threshold fitted on the other folds' probabilities, applied to this one.

Cards without an urgent point (older ones) fall back to the screening threshold: every image
called PNEUMONIA is urgent, as before priorities existed.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
from pydantic import BaseModel, Field

URGENT_MIN_SPECIFICITY = 0.98


class Priority(str, Enum):
    urgent = "urgent"
    routine = "routine"
    not_evaluated = "not_evaluated"


class UrgentFigures(BaseModel):
    """What the urgent point does on images like the calibration set (out of fold)."""

    specificity: float
    sensitivity: float
    ppv: float | None = Field(description="share of urgent images that have pneumonia (at this set's prevalence)")
    urgent_share: float = Field(description="share of all images marked urgent")
    fold_thresholds: list[float]


def high_specificity_threshold(labels: np.ndarray, p_pos: np.ndarray, *, min_specificity: float,
                               floor: float = 0.0) -> float:
    """Lowest threshold (>= ``floor``) at which at most ``1 - min_specificity`` of the negatives score at or above it."""
    y = np.asarray(labels).astype(bool)
    neg = np.sort(np.asarray(p_pos, dtype=np.float64)[~y])[::-1]
    if len(neg) == 0:
        return float(floor)
    allowed = int(np.floor((1 - min_specificity) * len(neg) + 1e-9))  # negatives that may stay above it
    if allowed >= len(neg):
        return float(floor)
    return float(max(floor, np.nextafter(neg[allowed], np.inf)))


def priority(p_pneumonia: float, screening_threshold: float, urgent_threshold: float | None) -> Priority:
    return Priority.urgent if p_pneumonia >= (urgent_threshold if urgent_threshold is not None
                                              else screening_threshold) else Priority.routine


def describe_urgent_rule(min_specificity: float, n: int, data_label: str) -> str:
    return (f"urgent: lowest P(PNEUMONIA) threshold with specificity >= {min_specificity:g} on the {n} calibration "
            f"images ({data_label}), not below the screening threshold; figures cross-fitted by patient")


def cross_fit_urgent(labels: np.ndarray, p_pos: np.ndarray, patients: list[str], *, screening_threshold: float,
                     min_specificity: float = URGENT_MIN_SPECIFICITY, k: int = 5, seed: int = 0) -> UrgentFigures:
    y = np.asarray(labels).astype(int)
    p = np.asarray(p_pos, dtype=np.float64)
    from models.crossfit import patient_folds  # torch-bound module: the server imports triage without it

    folds = patient_folds(patients, min(k, len(set(patients))), seed=seed)
    urgent = np.zeros(len(y), dtype=bool)
    thresholds = []
    for f in sorted(set(folds.tolist())):
        test = folds == f
        t = high_specificity_threshold(y[~test], p[~test], min_specificity=min_specificity, floor=screening_threshold)
        urgent[test] = p[test] >= t
        thresholds.append(round(t, 6))
    pos, neg = y == 1, y == 0
    return UrgentFigures(
        specificity=round(float(1 - urgent[neg].mean()), 4) if neg.any() else float("nan"),
        sensitivity=round(float(urgent[pos].mean()), 4) if pos.any() else float("nan"),
        ppv=round(float(y[urgent].mean()), 4) if urgent.any() else None,
        urgent_share=round(float(urgent.mean()), 4),
        fold_thresholds=thresholds,
    )
