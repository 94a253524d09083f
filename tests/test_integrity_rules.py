"""The integrity check's parts: DICOM header rules, the shipped pixel guard and its artifact."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from models.errors import WeightsError
from models.imaging import decode_image
from models.integrity.check import CONTENT_REASON, check_image
from models.integrity.dicom_rules import age_in_years, check_header
from app.core.config import Settings
from models.integrity.guard import load_guard
from models.integrity.synthetic import KINDS, synthetic_image
from tests.synth import dicom_bytes, encode

GUARD_DIR = Settings().integrity_guard_dir


@pytest.fixture(scope="module")
def guard():
    return load_guard(GUARD_DIR)


def ds(**attrs: str) -> pydicom.Dataset:
    d = pydicom.Dataset()
    d.Modality = attrs.pop("Modality", "CR")
    for k, v in attrs.items():
        setattr(d, k, v)
    return d


@pytest.mark.parametrize(("attrs", "reason"), [
    ({"Modality": "MR"}, "modality MR (only CR and DX radiographs are screened)"),
    ({"Modality": "OT"}, "modality OT (only CR and DX radiographs are screened)"),
    ({"Modality": ""}, "modality missing (only CR and DX radiographs are screened)"),
    ({"BodyPartExamined": "KNEE"}, "body part KNEE is not the chest (BodyPartExamined)"),
    ({"BodyPartExamined": "hand"}, "body part HAND is not the chest (BodyPartExamined)"),
    ({"ViewPosition": "LL"}, "lateral view (ViewPosition LL)"),
    ({"ViewPosition": "rl"}, "lateral view (ViewPosition RL)"),
    ({"ViewPosition": "LATERAL"}, "lateral view (ViewPosition LATERAL)"),
    ({"BodyPartExamined": "CHEST", "ViewPosition": "LAT"}, "lateral view (ViewPosition LAT)"),
])
def test_header_refusals_say_why(attrs, reason):
    assert check_header(ds(**attrs)).refusal == reason


@pytest.mark.parametrize("body", ["CHEST", "Thorax", "CHEST_PA", "PORTABLE CHEST", "LUNG", "TORAX", "", "  "])
@pytest.mark.parametrize("modality", ["CR", "DX", "dx"])
def test_chest_spellings_and_frontal_views_pass(body, modality):
    verdict = check_header(ds(Modality=modality, BodyPartExamined=body, ViewPosition="PA"))
    assert verdict.refusal is None and verdict.warnings == []


@pytest.mark.parametrize(("age", "warned"), [("004Y", False), ("017Y", False), ("018Y", True), ("045Y", True),
                                              ("216M", True), ("030W", False), ("bad", False)])
def test_adults_are_read_with_a_warning(age, warned):
    verdict = check_header(ds(PatientAge=age))
    assert verdict.refusal is None
    assert bool(verdict.warnings) is warned
    if warned:
        assert "validated on pediatric radiographs" in verdict.warnings[0]


def test_age_parsing():
    assert age_in_years("005Y") == 5 and age_in_years("018M") == 1.5 and age_in_years("") is None


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_guard_refuses_every_synthetic_kind(guard, kind):
    rng = np.random.default_rng(1234)  # not the fitting seed
    scores = [guard.score(synthetic_image(kind, rng)) for _ in range(12)]
    assert max(scores) < guard.card.threshold, scores


def test_guard_refusal_reason_names_the_score(guard):
    result = check_image(decode_image(encode(synthetic_image("noise", np.random.default_rng(0), (256, 256)))), guard)
    assert not result.accepted and result.code == "not_frontal_chest"
    assert result.reason == CONTENT_REASON.format(score=result.score, threshold=0.5)
    assert result.reason.startswith("the image does not look like a frontal chest radiograph (integrity 0.0")


def test_guard_accepts_real_radiographs_in_every_format(guard, shared_data):
    paths = sorted((shared_data / "test" / "NORMAL").iterdir())[:4] + sorted((shared_data / "test" / "PNEUMONIA").iterdir())[:4]
    for path in paths:
        pixels = decode_image(path.read_bytes()).pixels
        wide = (pixels.astype(np.uint16) * 257)  # 16-bit stored values
        forms = {"jpeg": path.read_bytes(), "png": encode(pixels),
                 "dicom16_mono2": dicom_bytes(wide, bits=16),
                 "dicom16_mono1": dicom_bytes(65535 - wide, bits=16, photometric="MONOCHROME1")}
        for form, data in forms.items():
            result = check_image(decode_image(data), guard)
            assert result.accepted, (path.name, form, result)


def test_onnx_guard_scores_like_pytorch(guard, tmp_path):
    from models.integrity.guard_onnx import load_onnx_guard

    onnx = load_onnx_guard(GUARD_DIR, tmp_path / "onnx")
    assert load_onnx_guard(GUARD_DIR, tmp_path / "onnx").card == onnx.card  # the second load reads the cache
    assert len(list((tmp_path / "onnx").glob("guard-*.onnx"))) == 1
    rng = np.random.default_rng(5)
    for kind in ("noise", "gradient", "text"):
        img = synthetic_image(kind, rng, (300, 260))
        assert onnx.score(img) == pytest.approx(guard.score(img), abs=1e-5)


def test_guard_card_records_how_it_was_made(guard):
    card = guard.card
    assert card.command.startswith("cxr integrity fit")
    assert card.input.image_size == 96 and card.threshold == 0.5
    for category in ("frontal_chest_adult", "lateral_chest", "non_chest_xray", "other_modality", "not_medical"):
        assert category in card.metrics and card.metrics[category]["n"] > 0
    assert card.fitted_on["counts"]["pediatric"]["images"] > 500


def test_a_tampered_guard_is_refused(tmp_path):
    copy = tmp_path / "guard"
    shutil.copytree(GUARD_DIR, copy)
    head = copy / "head.safetensors"
    raw = bytearray(head.read_bytes())
    raw[-1] ^= 0xFF
    head.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="corrupt"):
        load_guard(copy)
    (copy / "guard_card.json").unlink()
    with pytest.raises(WeightsError, match="not found"):
        load_guard(copy)


def test_header_rules_see_real_dicom_attributes():
    data = dicom_bytes(np.zeros((64, 64), np.uint8), modality="DX")
    d = pydicom.dcmread(io.BytesIO(data))
    d.ViewPosition = "LL"
    assert check_header(d).refusal == "lateral view (ViewPosition LL)"


def test_shipped_guard_files_are_small():
    assert sum(p.stat().st_size for p in Path(GUARD_DIR).iterdir()) < 64 * 1024
