"""Site calibration (models.site_calibration, `cxr calibrate`): Platt scaling, the checks on the calibration
set, and the new version it writes (same weights, new operating point, cross-fitted figures)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.card import read_card
from models.errors import DatasetError
from models.inference import calibrated_p_pneumonia, calibrated_probs
from models.metrics import fit_platt
from models.site_calibration import check_counts, site_calibrate
from models.weights import load_model, sha256_file
from tests.synth import make_model_dir, write_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_platt_recovers_a_known_temperature_and_bias():
    rng = np.random.default_rng(0)
    diff = rng.normal(0.0, 3.0, 20000)
    p_true = 1 / (1 + np.exp(-(diff / 2.0 - 1.0)))  # T = 2, bias = -1
    y = torch.from_numpy((rng.random(20000) < p_true).astype(np.int64))
    logits = torch.from_numpy(np.stack([-diff / 2, diff / 2], 1))
    t, b = fit_platt(logits, y)
    assert t == pytest.approx(2.0, abs=0.1) and b == pytest.approx(-1.0, abs=0.1)
    p = calibrated_p_pneumonia(logits, t, b).numpy()
    assert np.abs(p - p_true).max() < 0.05


def test_bias_zero_is_temperature_scaling_and_bias_shifts_the_pneumonia_logit():
    logits = torch.tensor([[0.3, 1.2], [2.0, -1.0]])
    torch.testing.assert_close(calibrated_probs(logits, 1.5), torch.softmax(logits / 1.5, dim=1))
    shifted = calibrated_p_pneumonia(logits, 1.5, 0.7)
    torch.testing.assert_close(shifted, torch.sigmoid((logits[:, 1] - logits[:, 0]) / 1.5 + 0.7))


@pytest.mark.parametrize("counts,message", [
    ({"NORMAL": 0, "PNEUMONIA": 0}, "has no images to calibrate on"),
    ({"NORMAL": 30, "PNEUMONIA": 0}, "has only NORMAL images; calibration needs both NORMAL and PNEUMONIA"),
    ({"PNEUMONIA": 30}, "has only PNEUMONIA images"),
    ({"NORMAL": 30, "PNEUMONIA": 7}, "too small to calibrate on: needs at least 20 images per class, has "
                                     "{'NORMAL': 30, 'PNEUMONIA': 7}"),
])
def test_calibration_sets_that_cannot_fit_an_operating_point_are_refused(counts, message):
    with pytest.raises(DatasetError, match="^site set") as exc:
        check_counts(counts, 20, label="site set")
    assert message in exc.value.detail


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("site"), per_class=24, size=64, splits=("test",)) / "test"


def test_a_calibrated_version_keeps_the_weights_and_reports_cross_fitted_figures(tmp_path, site):
    model = make_model_dir(tmp_path / "m", image_size=64, temperature=1.0, threshold=0.5)
    digest = sha256_file(model / "model.safetensors")
    out = tmp_path / "m-site"
    card = site_calibrate(model, site, out, command="cxr calibrate (test)", min_per_class=20)

    assert read_card(out) == card and sha256_file(out / "model.safetensors") == digest == card.sha256
    assert card.version.startswith("test-1+cal.") and card.name == "m"
    c = card.calibration
    assert c is not None and c.calibrated_from == "m@test-1" and c.counts == {"NORMAL": 24, "PNEUMONIA": 24}
    assert c.method == "platt" and c.folds == 5 and c.patients == 24  # 2 images per patient in the synthetic names
    assert set(c.out_of_fold) == {"auroc", "accuracy", "sensitivity", "specificity", "ece"}
    for fig in c.out_of_fold.values():
        assert 0.0 <= fig.ci95[0] <= fig.ci95[1] <= 1.0
    assert len(c.fold_fits) == 5 and c.previous["threshold"] == 0.5 and c.previous["temperature"] == 1.0
    assert list(card.metrics) == ["calibration_out_of_fold"]
    assert card.metrics["calibration_out_of_fold"].sensitivity == c.out_of_fold["sensitivity"].value
    # the new operating point is what the fitted rule says, on the model's own logits
    loaded = load_model(out)
    assert loaded.card.temperature == card.temperature and loaded.card.bias == card.bias
    rows = list(csv.DictReader((out / "calibration_predictions.csv").open()))
    assert len(rows) == 48 and {r["label"] for r in rows} == {"NORMAL", "PNEUMONIA"}
    positives = sorted(float(r["p_pneumonia"]) for r in rows if r["label"] == "PNEUMONIA")
    # sensitivity kept on the fitting images (the file rounds to 6 decimals: compare with that tolerance)
    assert sum(p >= card.threshold - 1e-6 for p in positives) >= 0.95 * 24
    assert "## Site calibration" in (out / "MODEL_CARD.md").read_text()
    ref = card.reference  # what drift monitoring compares live scores with
    assert ref is not None and ref.n == 48 and sum(ref.fractions) == pytest.approx(1.0, abs=1e-4)
    assert ref.positive_rate == pytest.approx(sum(r["predicted"] == "PNEUMONIA" for r in rows) / 48, abs=1e-4)
    assert ref.expected_positive_rate == (round(ref.positive_rate / 1.5, 4), round(min(1.0, ref.positive_rate * 1.5), 4))

    with pytest.raises(DatasetError, match="exists and is not empty"):
        site_calibrate(model, site, out, command="again", min_per_class=20)


def test_calibrating_in_place_replaces_the_folder_whole(tmp_path, site):
    model = make_model_dir(tmp_path / "m", image_size=64)
    (model / "train.log").write_text("epoch 1 ...")
    (model / "test_predictions.csv").write_text("file,label,p_pneumonia,predicted\n")  # the old operating point's
    digest = sha256_file(model / "model.safetensors")
    card = site_calibrate(model, site, model, command="in place", version="2.0.0", method="temperature",
                          min_per_class=20)
    assert read_card(model).version == "2.0.0" and card.bias == 0.0 and card.calibration.method == "temperature"
    assert sha256_file(model / "model.safetensors") == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging or previous folder left behind
    assert (model / "train.log").read_text() == "epoch 1 ..." and not (model / "test_predictions.csv").exists()


def test_images_the_integrity_check_refuses_are_left_out_and_counted(tmp_path, site):
    model = make_model_dir(tmp_path / "m", image_size=64)
    refuse_some = iter(range(10**6))
    card = site_calibrate(model, site, tmp_path / "out", command="t", min_per_class=20,
                          screen=lambda decoded: "not a chest" if next(refuse_some) % 12 == 0 else None)
    assert card.calibration.refused == 4 and sum(card.calibration.counts.values()) == 44
    with pytest.raises(DatasetError, match=r"after 48 image\(s\) refused by the integrity check"):
        site_calibrate(model, site, tmp_path / "out2", command="t", min_per_class=20, screen=lambda d: "no")


def _cxr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_cxr_calibrate_end_to_end_and_its_refusals(tmp_path, site):
    model = make_model_dir(tmp_path / "m", image_size=64)
    one_class = tmp_path / "one"
    (one_class / "NORMAL").mkdir(parents=True)
    for src in sorted((site / "NORMAL").iterdir()):
        (one_class / "NORMAL" / src.name).write_bytes(src.read_bytes())
    r = _cxr("calibrate", "--model", str(model), "--data", str(one_class), "--out", str(tmp_path / "x"),
             "--no-integrity")
    assert r.returncode == 2 and "has only NORMAL images" in r.stderr and not (tmp_path / "x").exists()
    r = _cxr("calibrate", "--model", "nope", "--data", str(site), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "no model named 'nope'" in r.stderr

    r = _cxr("calibrate", "--model", str(model), "--data", str(site), "--out", str(tmp_path / "m-site"),
             "--no-integrity", "--min-sensitivity", "0.9", "--version", "1.1.0")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["version"] == "1.1.0" and report["counts"] == {"NORMAL": 24, "PNEUMONIA": 24}
    assert set(report["out_of_fold"]["auroc"]) == {"value", "ci95"}
    card = read_card(tmp_path / "m-site")
    assert card.calibration.min_sensitivity == 0.9 and card.calibration.command.startswith("cxr calibrate --model")
    # the worklist's urgent point is fitted with it: never below the screening threshold, figures out of fold
    assert card.urgent_threshold is not None and card.urgent_threshold >= card.threshold
    assert card.urgent_out_of_fold is not None and len(card.urgent_out_of_fold.fold_thresholds) == 5
    assert "specificity >= 0.98" in card.urgent_rule
