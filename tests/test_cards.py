"""Every shipped card validates, its weights match the sha256, and loading refuses tampering."""

import json
import shutil

import pytest

from models.card import ModelCard, read_card
from models.card_markdown import MARKDOWN_FILE, render_markdown
from models.errors import WeightsError
from app.core.config import Settings
from app.inference.catalog import catalog_of
from models.weights import load_model, sha256_file

CATALOG = catalog_of(Settings())
WEIGHTS = CATALOG.weights_dir

SHIPPED = [e.name for e in CATALOG.entries() if e.source == "shipped"]


def test_three_models_are_shipped_and_the_default_is_one_of_them():
    assert set(SHIPPED) >= {"simple_cnn", "resnet18", "efficientnet_lite0"}
    assert CATALOG.default_name() in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_card_is_valid_and_complete(name):
    folder = WEIGHTS / name
    card = read_card(folder)
    assert card.name == name and card.classes == ["NORMAL", "PNEUMONIA"]
    assert card.sha256 == sha256_file(folder / card.weights_file)
    assert (folder / card.weights_file).stat().st_size < 50 * 1024 * 1024
    assert card.weights_file.endswith(".safetensors")
    assert 0 < card.threshold < 1 and card.temperature > 0
    assert card.training.command.startswith(("cxr train", "cxr soup"))
    if card.training.command.startswith("cxr soup"):  # every member was trained by a recorded command
        members = card.training.model_extra["members"]
        assert len(members) >= 2 and all(m["command"].startswith("cxr train") for m in members)
        assert all(len(m["sha256"]) == 64 for m in members)
    assert "not a diagnosis" in card.limitations.lower() or "not a medical device" in card.limitations.lower()
    if card.calibration is not None:  # site-calibrated: fitted on named images, figures cross-fitted
        c = card.calibration
        assert set(card.metrics) == {"calibration_out_of_fold"} and c.folds >= 2 and sum(c.counts.values()) >= 40
        assert c.command.startswith("cxr calibrate") and "val" in c.previous["metrics"]
        assert card.reference is not None and (folder / "calibration_predictions.csv").is_file()
        assert "cross-fitted" in card.operating_point and "independent estimate needs other data" in card.limitations
    else:
        assert {"val", "test"} <= set(card.metrics)
        assert card.operating_point and "sensitivity >= 0.95" in card.operating_point
        assert (folder / "test_predictions.csv").is_file()


@pytest.mark.parametrize("name", SHIPPED)
def test_readable_model_card_is_in_sync_with_card_json(name):
    folder = WEIGHTS / name
    card = read_card(folder)
    text = (folder / MARKDOWN_FILE).read_text()
    assert text == render_markdown(card), f"regenerate with: cxr card --model {name} --write"
    assert text.startswith(f"# Model card: {name} {card.version}\n")
    assert f"**{card.threshold:.4f}**" in text and card.sha256 in text and "Not a diagnosis" in text
    split, title = (("calibration_out_of_fold", "calibration images, cross-fitted (out of fold)") if card.calibration
                    else ("test", "shared test split"))
    assert f"| {title} | {card.metrics[split].n} | {card.metrics[split].auroc:.4f} |" in text


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load(name):
    loaded = load_model(WEIGHTS / name)
    assert sum(p.numel() for p in loaded.model.parameters()) == loaded.card.num_parameters


def test_corrupt_weights_are_refused(tmp_path, tiny_weights):
    folder = tmp_path / "m"
    shutil.copytree(tiny_weights / "tiny", folder)
    with open(folder / "model.safetensors", "r+b") as f:
        f.seek(200)
        f.write(b"\xff\xff\xff\xff")
    with pytest.raises(WeightsError, match="is corrupt: sha256"):
        load_model(folder)


def test_missing_weights_and_bad_cards_are_refused(tmp_path, tiny_weights):
    folder = tmp_path / "m"
    shutil.copytree(tiny_weights / "tiny", folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="is missing"):
        load_model(folder)
    card = json.loads((folder / "card.json").read_text())
    card["threshold"] = 7
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="is invalid"):
        read_card(folder)
    with pytest.raises(WeightsError, match="does not exist"):
        load_model(tmp_path / "nope")


def test_card_schema_rejects_unknown_fields():
    schema = ModelCard.model_json_schema()
    assert schema.get("additionalProperties") is False
