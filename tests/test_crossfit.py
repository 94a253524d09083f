"""Cross-fitting: folds by patient, out-of-fold figures with bootstrap intervals."""

from __future__ import annotations

import numpy as np
import torch

from models.crossfit import cross_fit, patient_folds


def test_folds_keep_each_patient_together():
    patients = [f"P{i // 3}" for i in range(60)]  # 20 patients, 3 images each
    folds = patient_folds(patients, 5, seed=1)
    for p in set(patients):
        assert len({folds[i] for i, q in enumerate(patients) if q == p}) == 1
    assert sorted(np.bincount(folds).tolist()) == [12, 12, 12, 12, 12]


def test_out_of_fold_figures_on_known_scores():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    margin = np.where(y == 1, 2.0, -2.0) + rng.normal(0, 1.0, 200)
    logits = torch.from_numpy(np.stack([-margin / 2, margin / 2], 1)).float()
    out = cross_fit(logits, torch.from_numpy(y), [f"P{i}" for i in range(200)], k=5, bootstrap=200)
    assert out["n"] == 200 and len(out["fitted"]) == 5 and out["patients"] == 200
    assert 0.95 < out["auroc"]["value"] <= 1.0
    assert out["sensitivity"]["value"] >= 0.9  # each fold's threshold keeps >= 0.95 on the other folds
    for m in ("auroc", "accuracy", "sensitivity", "specificity", "ece"):
        lo, hi = out[m]["ci95"]
        assert lo <= hi and 0.0 <= lo and hi <= 1.0
