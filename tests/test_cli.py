"""The `cxr` command line: train one tiny epoch, evaluate, and clear errors for bad folders."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.card import read_card
from tests.synth import write_dataset

ROOT = Path(__file__).resolve().parents[1]


def cxr(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_train_one_tiny_epoch_then_evaluate(tmp_path):
    data = write_dataset(tmp_path / "data", per_class=10, size=72, splits=("train", "test"))
    out = tmp_path / "model"
    r = cxr("train", "--data", str(data), "--arch", "simple_cnn", "--epochs", "1", "--image-size", "64",
            "--batch-size", "8", "--val-fraction", "0.3", "--out", str(out), "--threads", "1")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["name"] == "simple_cnn"
    assert "epoch 1/1 loss" in r.stderr and "val_auroc" in r.stderr and "img/s" in r.stderr
    card = read_card(out)
    assert card.input.image_size == 64 and card.training.epochs_run == 1
    assert card.training.counts["test"] == {"NORMAL": 10, "PNEUMONIA": 10}
    assert (out / "model.safetensors").is_file() and (out / "test_predictions.csv").is_file()
    assert (out / "MODEL_CARD.md").read_text().startswith("# Model card: simple_cnn ")
    r = cxr("card", "--model", str(out))
    assert r.returncode == 0 and r.stdout == (out / "MODEL_CARD.md").read_text()

    r = cxr("evaluate", "--model", str(out), "--data", str(data / "test"))  # synthetic images: not radiographs
    assert r.returncode == 2
    assert "no readable images that the integrity check accepts (20 refused, 0 unreadable)" in r.stderr
    r = cxr("evaluate", "--model", str(out), "--data", str(data / "test"), "--plot", str(tmp_path / "roc.png"),
            "--no-integrity")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    for key in ("n", "auroc", "accuracy", "sensitivity", "specificity", "f1", "ece", "threshold", "confusion_matrix"):
        assert key in report
    assert report["n"] == 20 and 0 <= report["auroc"] <= 1
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(tmp_path):
    data = write_dataset(tmp_path / "data", per_class=8, size=64, splits=("train",))
    out = tmp_path / "m"
    common = ("train", "--data", str(data), "--arch", "simple_cnn", "--image-size", "64", "--batch-size", "8",
              "--val-fraction", "0.3", "--out", str(out), "--threads", "1", "--patience", "9")
    assert cxr(*common, "--epochs", "1").returncode == 0
    r = cxr(*common, "--epochs", "2", "--resume")
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stderr and "epoch 2/2" in r.stderr and "epoch 1/2" not in r.stderr
    assert read_card(out).training.epochs_run == 2


def test_overfit_batch_flag():
    r = cxr("train", "--arch", "simple_cnn", "--overfit-batch")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["passed"] is True


@pytest.mark.parametrize("layout,message", [
    ("empty", "neither train/val/test split folders nor NORMAL/PNEUMONIA"),
    ("one-class", "missing the class folder(s): PNEUMONIA"),
    ("no-images", "contains no images"),
])
def test_train_on_bad_folders_fails_with_a_clear_message(tmp_path, layout, message):
    root = tmp_path / "d"
    root.mkdir()
    if layout == "one-class":
        write_dataset(root, per_class=2, size=64, splits=("train",))
        for f in (root / "train" / "PNEUMONIA").iterdir():
            f.unlink()
        (root / "train" / "PNEUMONIA").rmdir()
    elif layout == "no-images":
        for cls in ("NORMAL", "PNEUMONIA"):
            (root / "train" / cls).mkdir(parents=True)
            (root / "train" / cls / "readme.txt").write_text("x")
    r = cxr("train", "--data", str(root), "--arch", "simple_cnn", "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_evaluate_without_class_folders_fails_clearly(tmp_path):
    (tmp_path / "images").mkdir()
    r = cxr("evaluate", "--data", str(tmp_path / "images"))
    assert r.returncode == 2 and "neither train/val/test split folders nor NORMAL/PNEUMONIA" in r.stderr


@pytest.mark.slow
def test_evaluate_default_model_on_the_shared_test_split(shared_data):
    r = cxr("evaluate", "--data", str(shared_data))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["n"] == 369 and report["counts"] == {"NORMAL": 138, "PNEUMONIA": 231}
    assert report["integrity"]["refused"] == 0 and report["integrity"]["accepted"] == 369
    assert 0.9 < report["auroc"] <= 1 and 0 <= report["ece"] <= 1
    assert report["model"] == json.loads((ROOT / "weights" / "manifest.json").read_text())["default"]


def test_help_and_settings_do_not_load_torch():
    """`cxr --help` stays instant (0.1 s here, 2 s when it loaded torch) and importing Settings is light."""
    code = ("import sys, contextlib, io\n"
            "import app.core.config\n"
            "from app.cli import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['--help'])\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr
