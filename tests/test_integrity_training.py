"""Every fine-tuned version is checked by the integrity guard that will stand in front of it."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.core.config import Settings
from tests.synth import write_dataset
from tests.waiting import wait_for


def _wait(client: TestClient, job_id: str, timeout: float = 240) -> dict:
    return wait_for(lambda: client.get(f"/train/{job_id}").json(),
                    lambda job: job["state"] in ("succeeded", "failed", "cancelled"), timeout=timeout,
                    what="the job to finish", interval=0.2)


def _train(settings, dataset: str) -> tuple[dict, dict]:
    with TestClient(create_app(settings, configure_logs=False)) as c:
        r = c.post("/train", json={"dataset": dataset, "epochs": 1, "batch_size": 8, "val_fraction": 0.3,
                                   "auto_promote": True})
        assert r.status_code == 202, r.text
        job = _wait(c, r.json()["id"])
        assert job["state"] == "succeeded", job
        cards = {m["name"]: m["card"] for m in c.get("/models").json()["models"]}
        return job, cards[job["model"]]


def _settings(settings, root):
    return settings.model_copy(update={"data_root": root, "min_images_per_class": 10, "train_threads": 1,
                                       "integrity": "on", "integrity_guard": Settings().integrity_guard_dir})


@pytest.mark.slow
def test_a_version_trained_on_images_the_guard_refuses_is_not_promoted(settings, tmp_path):
    write_dataset(tmp_path / "data" / "synthetic", per_class=12, size=64, splits=("train",))
    job, card = _train(_settings(settings, tmp_path / "data"), "synthetic")
    check = card["integrity"]
    assert check["guard"] == "frontal_cxr_guard" and check["n"] > 0 and check["accepted"] == 0.0
    assert job["promoted"] is False
    assert "the integrity check accepts only 0.0% of this version's validation images" in job["promotion_reason"]


@pytest.mark.slow
def test_a_version_trained_on_radiographs_passes_the_check(settings, tmp_path, shared_data):
    for label in ("NORMAL", "PNEUMONIA"):
        folder = tmp_path / "data" / "site" / label
        folder.mkdir(parents=True)
        for path in sorted((shared_data / "train" / label).iterdir())[:12]:
            shutil.copy(path, folder / path.name)
    job, card = _train(_settings(settings, tmp_path / "data"), "site")
    assert card["integrity"]["accepted"] == 1.0 and card["integrity"]["n"] >= 6
    assert "integrity check" not in (job["promotion_reason"] or "")
