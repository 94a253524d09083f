"""Worklist priority: the urgent operating point, its cross-fitted figures, and what the API answers."""

from __future__ import annotations

import numpy as np
import pytest

from models.triage import Priority, cross_fit_urgent, high_specificity_threshold, priority
from tests.synth import chest_like, encode


def test_the_urgent_threshold_keeps_the_specificity_and_stays_above_the_screening_point():
    y = np.array([0] * 100 + [1] * 50)
    p = np.concatenate([np.linspace(0, 0.9, 100), np.linspace(0.5, 1.0, 50)])
    t = high_specificity_threshold(y, p, min_specificity=0.98)
    assert ((p[y == 0] >= t).mean() <= 0.02) and ((p[y == 0] >= np.nextafter(t, 0) - 0.01).mean() > 0.02)
    assert high_specificity_threshold(y, p, min_specificity=0.5, floor=0.95) == 0.95
    assert high_specificity_threshold(np.ones(3), np.array([0.2, 0.5, 0.9]), min_specificity=0.98, floor=0.3) == 0.3


@pytest.mark.parametrize(("p", "urgent", "expected"), [
    (0.97, 0.95, Priority.urgent), (0.95, 0.95, Priority.urgent), (0.6, 0.95, Priority.routine),
    (0.2, 0.95, Priority.routine),
    (0.6, None, Priority.urgent), (0.2, None, Priority.routine),  # no urgent point: the screening threshold
])
def test_priority(p, urgent, expected):
    assert priority(p, 0.35, urgent) is expected


def test_cross_fitted_urgent_figures_are_out_of_fold():
    rng = np.random.default_rng(0)
    y = np.array([0] * 200 + [1] * 200)
    p = np.clip(np.concatenate([rng.beta(2, 6, 200), rng.beta(6, 2, 200)]), 0, 1)
    patients = [f"P{i // 2}" for i in range(len(y))]
    figures = cross_fit_urgent(y, p, patients, screening_threshold=0.3, min_specificity=0.98)
    assert len(figures.fold_thresholds) == 5 and all(t >= 0.3 for t in figures.fold_thresholds)
    assert 0.93 <= figures.specificity <= 1.0 and 0 < figures.sensitivity < 1
    assert figures.ppv is not None and figures.ppv > 0.9
    assert figures.urgent_share == pytest.approx(((y == 1) * figures.sensitivity).sum() / len(y)
                                                 + ((y == 0) * (1 - figures.specificity)).sum() / len(y), abs=1e-3)


def test_json_answers_carry_the_priority(client):
    r = client.post("/predict?heatmap=none", content=encode(chest_like(256, 256, seed=2)),
                    headers={"content-type": "image/png"}).json()
    card = client.app.state.services.registry.active.card
    assert r["urgent_threshold"] == card.urgent_threshold
    assert r["priority"] == priority(r["probabilities"]["PNEUMONIA"], card.threshold, card.urgent_threshold).value


def test_the_shipped_default_has_an_urgent_point_above_its_threshold():
    from pathlib import Path

    from models.card import read_card

    card = read_card(Path(__file__).resolve().parents[1] / "weights" / "efficientnet_lite0_soup")
    assert card.urgent_threshold is not None and card.urgent_threshold > card.threshold
    assert card.urgent_out_of_fold is not None and card.urgent_out_of_fold.specificity >= 0.95
