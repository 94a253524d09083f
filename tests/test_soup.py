"""Weight soups (`cxr soup`), recalibration (`cxr recalibrate`) and the augmented-validation operating point."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from models.card import read_card, write_card
from models.errors import CXRError
from models.metrics import screening_threshold
from models.operating_point import augmented_logits, fit_operating_point
from models.registry import build_model
from models.soup import average_state_dicts, check_members, reestimate_batchnorm
from models.transforms import PreprocessSpec
from models.weights import load_model, sha256_file
from tests.synth import make_model_dir, write_dataset

ROOT = Path(__file__).resolve().parents[1]
SPEC = PreprocessSpec(image_size=32)


def cxr(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_average_state_dicts_means_floats_and_keeps_counters():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(5), "h": torch.tensor([1.0], dtype=torch.float16)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(9), "h": torch.tensor([2.0], dtype=torch.float16)}
    out = average_state_dicts([a, b])
    assert torch.equal(out["w"], torch.tensor([2.0, 4.0]))
    assert out["n"].item() == 5 and out["n"].dtype == torch.int64
    assert out["h"].dtype == torch.float16 and out["h"].item() == 1.5


def test_reestimate_batchnorm_gives_the_exact_mean_of_the_first_layer_inputs():
    torch.manual_seed(0)
    model = build_model("simple_cnn").eval()
    images = torch.randint(0, 256, (48, 32, 32), dtype=torch.uint8)
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    momentum = bn.momentum
    captured = []
    hook = bn.register_forward_pre_hook(lambda _m, inp: captured.append(inp[0].detach()))
    n = reestimate_batchnorm(model, images, SPEC, limit=48, batch_size=16)
    hook.remove()
    assert n == 48 and len(captured) == 3
    expected = torch.cat(captured).mean(dim=(0, 2, 3))
    torch.testing.assert_close(bn.running_mean, expected, rtol=1e-4, atol=1e-5)
    assert bn.momentum == momentum and not model.training  # settings restored


def _member(folder: Path, *, arch: str = "simple_cnn", image_size: int = 32, seed: int = 0) -> Path:
    return make_model_dir(folder, arch=arch, image_size=image_size, seed=seed)


def test_check_members_refuses_mismatches(tmp_path):
    a = load_model(_member(tmp_path / "a"))
    with pytest.raises(CXRError, match="at least two"):
        check_members([a])
    b = load_model(_member(tmp_path / "b", image_size=48, seed=1))
    with pytest.raises(CXRError, match="in input"):
        check_members([a, b])
    c = load_model(_member(tmp_path / "c", arch="resnet18"))
    with pytest.raises(CXRError, match="in architecture"):
        check_members([a, c])
    d_dir = _member(tmp_path / "d", seed=2)
    card = read_card(d_dir)
    write_card(d_dir, card.model_copy(update={"training": card.training.model_copy(update={"patient_split_seed": 7})}))
    with pytest.raises(CXRError, match="patient split seed"):
        check_members([a, load_model(d_dir)])
    check_members([a, load_model(_member(tmp_path / "e", seed=3))])  # same everything: accepted


def test_augmented_logits_are_seeded_and_stacked_by_draw():
    torch.manual_seed(0)
    model = build_model("simple_cnn").eval()
    images = torch.randint(0, 256, (5, 32, 32), dtype=torch.uint8)
    a = augmented_logits(model, images, SPEC, torch.device("cpu"), augment="standard", draws=3, seed=4)
    b = augmented_logits(model, images, SPEC, torch.device("cpu"), augment="standard", draws=3, seed=4)
    assert a.shape == (15, 2) and torch.equal(a, b)
    assert not torch.equal(a[:5], a[5:10])  # each draw is a new augmentation
    with pytest.raises(CXRError, match="unknown augmentation preset"):
        augmented_logits(model, images, SPEC, torch.device("cpu"), augment="mirror", draws=1)


def test_operating_point_rules():
    torch.manual_seed(0)
    model = build_model("simple_cnn").eval()
    images = torch.randint(0, 256, (40, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1] * 20)
    plain = fit_operating_point(model, images, labels, SPEC, torch.device("cpu"), min_sensitivity=0.9, augment="none")
    logits = augmented_logits(model, images, SPEC, torch.device("cpu"), augment="none", draws=1)
    p = torch.softmax(logits / plain.temperature, 1)[:, 1].numpy()
    assert plain.threshold == pytest.approx(screening_threshold(labels.numpy(), p, min_sensitivity=0.9))
    assert "clean validation images" in plain.rule

    aug = fit_operating_point(model, images, labels, SPEC, torch.device("cpu"), min_sensitivity=0.9,
                              augment="strong", draws=2, seed=1)
    assert aug.temperature == pytest.approx(plain.temperature)  # the temperature is always fitted on clean images
    la = augmented_logits(model, images, SPEC, torch.device("cpu"), augment="strong", draws=2, seed=1)
    pa = torch.softmax(la / aug.temperature, 1)[:, 1].numpy()
    y2 = np.tile(labels.numpy(), 2)
    assert (pa[y2 == 1] >= aug.threshold).mean() >= 0.9  # sensitivity holds on the augmented set
    assert "'strong' augmentation (2 seeded draws each)" in aug.rule


@pytest.mark.slow
def test_cxr_soup_then_calibrate_end_to_end(tmp_path):
    data = write_dataset(tmp_path / "data", per_class=10, size=64, splits=("train", "test"))
    common = ("--data", str(data), "--arch", "simple_cnn", "--epochs", "1", "--image-size", "32", "--batch-size", "8",
              "--val-fraction", "0.3", "--threads", "1")
    for i, lr in enumerate(("1e-3", "3e-3")):
        r = cxr("train", *common, "--lr", lr, "--out", str(tmp_path / f"m{i}"))
        assert r.returncode == 0, r.stderr
    out = tmp_path / "soup"
    r = cxr("soup", "--model", str(tmp_path / "m0"), "--model", str(tmp_path / "m1"), "--out", str(out),
            "--name", "tiny_soup", "--version", "0.1.0", "--threads", "1")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["name"] == "tiny_soup" and set(summary["metrics"]) == {"val", "val_augmented", "test"}
    card = read_card(out)
    assert card.training.command.startswith("cxr soup --model")
    members = card.training.model_extra["members"]
    assert [m["sha256"] for m in members] == [read_card(tmp_path / f"m{i}").sha256 for i in range(2)]
    assert all(m["command"].startswith("cxr train") for m in members)
    assert "under the 'standard' augmentation" in card.operating_point
    aug = card.metrics["val_augmented"]  # where the threshold was chosen: the rule holds there
    assert aug.n == 2 * card.metrics["val"].n and aug.sensitivity >= 0.95
    # the weights are the members' average (conv weights are not touched by the batch-norm re-estimation)
    soup = load_model(out).model.state_dict()
    parts = [load_model(tmp_path / f"m{i}").model.state_dict() for i in range(2)]
    key = next(k for k in soup if k.endswith("weight") and soup[k].dim() == 4)
    torch.testing.assert_close(soup[key], (parts[0][key] + parts[1][key]) / 2)
    assert (out / "test_predictions.csv").is_file()

    r = cxr("recalibrate", "--model", str(tmp_path / "m0"), "--threshold-augment", "mirror")
    assert r.returncode == 2 and "unknown threshold augmentation preset 'mirror'" in r.stderr

    # refuses to overwrite a member
    r = cxr("soup", "--model", str(tmp_path / "m0"), "--model", str(tmp_path / "m1"), "--out", str(tmp_path / "m0"))
    assert r.returncode == 2 and "is one of the members" in r.stderr

    # recalibrate m0 with the plain rule: same weights, new card
    digest = sha256_file(tmp_path / "m0" / "model.safetensors")
    before = read_card(tmp_path / "m0")
    r = cxr("recalibrate", "--model", str(tmp_path / "m0"), "--threshold-augment", "none", "--version", "0.1.1")
    assert r.returncode == 0, r.stderr
    after = read_card(tmp_path / "m0")
    assert after.sha256 == before.sha256 == digest and after.version == "0.1.1"
    assert after.training.command == before.training.command
    assert after.training.model_extra["recalibrated_by"].startswith("cxr recalibrate")
    assert "clean validation images" in after.operating_point and "val_augmented" not in after.metrics
    assert after.metrics["val"].sensitivity >= 0.95


def test_soup_of_a_missing_folder_fails_clearly(tmp_path):
    _member(tmp_path / "a")
    r = cxr("soup", "--model", str(tmp_path / "a"), "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "s"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_unknown_threshold_augmentation_fails_before_training(tmp_path):
    data = write_dataset(tmp_path / "data", per_class=6, size=64, splits=("train",))
    r = cxr("train", "--data", str(data), "--arch", "simple_cnn", "--image-size", "32", "--epochs", "1",
            "--val-fraction", "0.3", "--out", str(tmp_path / "m"), "--threshold-augment", "mirror")
    assert r.returncode == 2
    assert "unknown threshold augmentation preset 'mirror'" in r.stderr and "epoch 1/1" not in r.stderr
    assert not (tmp_path / "m" / "card.json").exists()
