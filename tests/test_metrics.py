import numpy as np
import pytest
import torch

from models.metrics import (auroc, confusion, expected_calibration_error, fit_temperature, screening_threshold,
                            summarize)


def test_auroc_hand_computed_with_ties():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    assert auroc(y, s) == 0.75  # pairs: (0.35>0.1) (0.35<0.4) (0.8>0.1) (0.8>0.4) -> 3/4
    assert auroc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert np.isnan(auroc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_auroc_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500) + 0.3 * y, 2)  # rounding creates ties
    assert auroc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)


def test_confusion_and_summary_hand_computed():
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.6, 0.2, 0.7, 0.9, 0.4, 0.8])
    assert confusion(y, p, 0.5) == {"tn": 2, "fp": 1, "fn": 1, "tp": 3}
    r = summarize(y, p, 0.5)
    assert r["n"] == 7 and r["accuracy"] == round(5 / 7, 4)
    assert r["sensitivity"] == 0.75 and r["specificity"] == round(2 / 3, 4)
    assert r["f1"] == 0.75  # precision 3/4, recall 3/4
    assert r["confusion_matrix"]["rows_true_cols_pred"] == [[2, 1], [1, 3]]


def test_ece():
    y = np.array([1, 1, 0, 0])
    assert expected_calibration_error(y, np.array([1.0, 1.0, 0.0, 0.0])) == 0.0
    # all predicted 0.9 positive, half right: |0.5 - 0.9| = 0.4
    assert expected_calibration_error(np.array([1, 0, 1, 0]), np.full(4, 0.9)) == pytest.approx(0.4)


def test_screening_threshold_keeps_sensitivity():
    y = np.array([1] * 20 + [0] * 10)
    p = np.r_[np.linspace(0.3, 0.99, 20), np.linspace(0.0, 0.6, 10)]
    t = screening_threshold(y, p, min_sensitivity=0.95)
    assert (p[y == 1] >= t).mean() >= 0.95
    assert not ((p[y == 1] >= np.nextafter(t, 1)).mean() >= 0.95)  # highest such threshold


def test_temperature_scaling_recovers_a_known_temperature():
    torch.manual_seed(0)
    true_logits = torch.randn(4000, 2) * 2
    labels = torch.distributions.Categorical(logits=true_logits).sample()
    assert fit_temperature(true_logits * 3.0, labels) == pytest.approx(3.0, rel=0.1)
