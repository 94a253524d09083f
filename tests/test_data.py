from pathlib import Path

import pytest

from models.data import find_splits, load_tensors, patient_id, scan_class_folders, split_by_patient
from models.errors import DatasetError
from models.transforms import PreprocessSpec
from tests.synth import chest_like, encode, write_dataset


@pytest.mark.parametrize("name,expected", [
    ("person1000_bacteria_2931.jpeg", "PERSON1000"),
    ("person1000_virus_1681.jpeg", "PERSON1000"),
    ("IM-0115-0001.jpeg", "IM-0115"),
    ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"),
    ("scan_42.png", "SCAN_42"),
])
def test_patient_id(name, expected):
    assert patient_id(Path(name)) == expected


def test_patient_split_has_no_leakage_and_is_deterministic(tmp_path):
    root = write_dataset(tmp_path / "d", per_class=20, size=64, splits=("train",))
    samples = scan_class_folders(root / "train").samples
    train, val = split_by_patient(samples, val_fraction=0.3, seed=7)
    assert len(train) + len(val) == len(samples)
    assert not {s.patient for s in train} & {s.patient for s in val}
    assert {s.label for s in val} == {0, 1}  # stratified: both classes in validation
    again = split_by_patient(samples, val_fraction=0.3, seed=7)
    assert [s.path for s in again[1]] == [s.path for s in val]
    other = split_by_patient(samples, val_fraction=0.3, seed=8)
    assert [s.path for s in other[1]] != [s.path for s in val]


def test_real_data_split_has_no_patient_in_both(shared_data):
    samples = scan_class_folders(shared_data / "train").samples
    assert len(samples) == 5216
    train, val = split_by_patient(samples, val_fraction=0.15, seed=0)
    assert not {s.patient for s in train} & {s.patient for s in val}
    assert 0.1 < len(val) / len(samples) < 0.2


def test_class_folders_are_case_insensitive_and_extra_files_ignored(tmp_path, caplog):
    for cls in ("normal", "Pneumonia"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "a.png").write_bytes(encode(chest_like(70, 70)))
    (tmp_path / "normal" / "notes.txt").write_text("hello")
    result = scan_class_folders(tmp_path)
    assert result.counts() == {"NORMAL": 1, "PNEUMONIA": 1}
    assert [p.name for p in result.ignored] == ["notes.txt"]
    assert "ignored 1 file(s)" in caplog.text


def test_bad_layouts_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        find_splits(tmp_path / "missing")
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DatasetError, match="neither train/val/test split folders nor NORMAL/PNEUMONIA"):
        find_splits(tmp_path)
    (tmp_path / "NORMAL").mkdir()
    with pytest.raises(DatasetError, match="missing the class folder\\(s\\): PNEUMONIA"):
        scan_class_folders(tmp_path)
    (tmp_path / "PNEUMONIA").mkdir()
    with pytest.raises(DatasetError, match="contains no images"):
        scan_class_folders(tmp_path)


def test_corrupt_files_are_skipped_with_a_count(tmp_path):
    root = write_dataset(tmp_path / "d", per_class=3, size=64, splits=("train",))
    (root / "train" / "NORMAL" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (root / "train" / "NORMAL" / "text.jpeg").write_bytes(b"not an image")
    ds = load_tensors(scan_class_folders(root / "train").samples, PreprocessSpec(image_size=32))
    assert len(ds) == 6
    assert sorted(p.name for p, _ in ds.skipped) == ["broken.png", "text.jpeg"]
    assert ds.images.shape == (6, 32, 32)
