"""POST /models/{name}/calibrate: a job that refits a model's operating point on a site's images, then the
new version is listed, activated through the guarded path, and serves with its own calibration."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.synth import chest_like, encode, write_dataset
from tests.test_datasets import dataset_entries, make_zip
from tests.waiting import wait_for

PNG = encode(chest_like(100, 100))


@pytest.fixture()
def cal_settings(settings, tmp_path):
    root = tmp_path / "data"
    write_dataset(root / "site", per_class=24, size=64, splits=("test",))
    write_dataset(root / "small", per_class=8, size=64, splits=("test",))
    write_dataset(root / "one-class", per_class=24, size=64, splits=("test",))
    for f in (root / "one-class" / "test" / "PNEUMONIA").iterdir():
        f.unlink()
    (root / "empty" / "NORMAL").mkdir(parents=True)
    (root / "empty" / "PNEUMONIA").mkdir(parents=True)
    return settings.model_copy(update={"data_root": root, "calibration_min_per_class": 20, "train_threads": 1})


def _wait(client, job_id):
    return wait_for(lambda: client.get(f"/train/{job_id}").json(),
                    lambda job: job["state"] in ("succeeded", "failed", "cancelled"), timeout=180,
                    what=f"job {job_id} to finish", interval=0.2)


def test_calibrate_then_activate_then_predict_with_the_calibrated_version(cal_settings):
    with TestClient(create_app(cal_settings, configure_logs=False)) as c:
        before = c.post("/predict?heatmap=none", files={"file": ("a.png", PNG)}).json()
        r = c.post("/models/tiny/calibrate", json={"dataset": "site", "min_sensitivity": 0.9})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["kind"] == "calibrate" and r.headers["location"] == f"/train/{job['id']}"
        assert job["request"]["dataset_counts"] == {"NORMAL": 24, "PNEUMONIA": 24}
        assert not any(k.endswith("_dir") for k in job["request"])  # no server paths
        done = _wait(c, job["id"])
        assert done["state"] == "succeeded", done
        assert done["model"] == f"tiny-cal-{job['id']}" and done["model_version"].startswith("test-1+cal.")
        assert done["promoted"] is False and done["promotion_reason"] == "auto_promote is off"
        assert set(done["metrics"][0]["calibration_out_of_fold"]) == {"auroc", "accuracy", "sensitivity",
                                                                      "specificity", "ece"}
        assert c.get("/train").json()["jobs"][0]["kind"] == "calibrate"

        listed = {m["name"]: m for m in c.get("/models").json()["models"]}
        new = listed[done["model"]]
        assert new["source"] == "trained" and not new["active"] and new["version"] == done["model_version"]
        assert new["card"]["sha256"] == listed["tiny"]["card"]["sha256"]  # same weights
        assert new["card"]["calibration"]["data"] == "dataset site"
        assert new["card"]["calibration"]["min_sensitivity"] == 0.9

        assert c.post(f"/models/{done['model']}/activate").status_code == 200
        after = c.post("/predict?heatmap=none", files={"file": ("a.png", PNG)}).json()
        assert after["model"]["version"] == done["model_version"]
        card = new["card"]
        p_before = before["probabilities"]["PNEUMONIA"]
        # same logits, new calibration: P = sigmoid(logit_diff / T + bias), logit_diff recovered from before (T=1)
        diff = math.log(p_before / (1 - p_before))
        expected = 1 / (1 + math.exp(-(diff / card["temperature"] + card["bias"])))
        assert after["probabilities"]["PNEUMONIA"] == pytest.approx(expected, abs=1e-4)
        assert after["threshold"] == pytest.approx(card["threshold"])


def test_auto_promote_and_an_uploaded_dataset(cal_settings):
    with TestClient(create_app(cal_settings, configure_logs=False)) as c:
        d = c.post("/datasets", files={"file": ("d.zip", make_zip(dataset_entries(22)))})
        assert d.status_code in (200, 201), d.text
        r = c.post("/models/tiny/calibrate", json={"dataset": d.json()["id"], "auto_promote": True,
                                                   "method": "temperature"})
        assert r.status_code == 202, r.text
        done = _wait(c, r.json()["id"])
        assert done["state"] == "succeeded", done
        reason = done["promotion_reason"]
        assert reason.startswith(("cross-fitted sensitivity", "cross-fitted ECE"))
        active = wait_for(lambda: c.get("/readyz").json(), lambda ready: not done["promoted"] or
                          ready["model"]["version"] == done["model_version"], timeout=30,
                          what="the promoted version to serve", interval=0.1)
        assert (active["model"]["version"] == done["model_version"]) == done["promoted"]


@pytest.mark.parametrize("name,body,status,detail", [
    ("nope", {"dataset": "site"}, 404, "no model named 'nope'"),
    ("tiny", {"dataset": "one-class"}, 422, "has only NORMAL images; calibration needs both NORMAL and PNEUMONIA"),
    ("tiny", {"dataset": "small"}, 422, "too small to calibrate on: needs at least 20 images per class, has "
                                        "{'NORMAL': 8, 'PNEUMONIA': 8}"),
    ("tiny", {"dataset": "empty"}, 422, "contains no images"),
    ("tiny", {"dataset": "nope"}, 404, "does not exist under the data root"),
    ("tiny", {"dataset": "../etc"}, 400, "without '..'"),
    ("tiny", {"dataset": "site", "min_sensitivity": 1.5}, 422, "invalid request: body.min_sensitivity"),
    ("tiny", {"dataset": "site", "method": "isotonic"}, 422, "invalid request: body.method"),
    ("tiny", {"dataset": "site", "surprise": 1}, 422, "invalid request: body.surprise"),
    ("tiny", {}, 422, "invalid request: body.dataset"),
])
def test_bad_calibration_requests_are_refused_before_queuing(cal_settings, name, body, status, detail):
    with TestClient(create_app(cal_settings, configure_logs=False)) as c:
        r = c.post(f"/models/{name}/calibrate", json=body)
        assert r.status_code == status, r.text
        assert detail in r.json()["detail"]
        assert str(cal_settings.data_root) not in r.text  # never a server path
        assert c.get("/train").json()["total"] == 0


def test_reader_feedback_becomes_a_calibration_set(settings):
    """Screen, let readers label, build a dataset from their verdicts, calibrate on it: the loop a site runs."""
    s = settings.model_copy(update={"keep_inputs_days": 30, "calibration_min_per_class": 20})
    with TestClient(create_app(s, configure_logs=False)) as c:
        for i in range(45):
            png = encode(chest_like(96, 96, seed=100 + i, opacity=1.0 if i % 2 else 0.0))
            assert c.post("/predict?heatmap=none", files={"file": (f"{i}.png", png)}).status_code == 200
        seqs = [r["seq"] for r in c.get("/audit", params={"kind": "predict", "limit": 100}).json()["records"]]
        assert len(seqs) == 45
        r = c.post("/datasets/from-feedback", json={})
        assert r.status_code == 422 and "needs at least 20 images per class" in r.json()["detail"]
        for i, seq in enumerate(seqs[:44]):
            label = "PNEUMONIA" if i % 2 else "NORMAL"
            assert c.post("/feedback", json={"record": seq, "label": label, "reader": "dr-a"}).status_code == 201
        # two readers disagree on the last one: left out
        c.post("/feedback", json={"record": seqs[44], "label": "NORMAL", "reader": "dr-a"})
        c.post("/feedback", json={"record": seqs[44], "label": "PNEUMONIA", "reader": "dr-b"})
        r = c.post("/datasets/from-feedback", json={"model": "tiny"})
        assert r.status_code == 201, r.text
        ds = r.json()
        assert ds["counts"] == {"train": {"NORMAL": 22, "PNEUMONIA": 22}}
        assert ds["source"] | {"verdicts": 0} == {"kind": "feedback", "model": "tiny", "verdicts": 0, "conflicting": 1,
                                                  "not_kept": 0, "duplicates": 0}
        assert c.post("/datasets/from-feedback", json={"reader": "dr-b"}).status_code == 422  # one case only
        job = c.post("/models/tiny/calibrate", json={"dataset": ds["id"]}).json()
        done = _wait(c, job["id"])
        assert done["state"] == "succeeded", done
        card = {m["name"]: m for m in c.get("/models").json()["models"]}[done["model"]]["card"]
        assert card["calibration"]["counts"] == {"NORMAL": 22, "PNEUMONIA": 22}
    kept = list((s.state_dir / "inputs").glob("*/*.png"))
    assert len(kept) == 45 and all(oct(p.stat().st_mode & 0o777) == "0o600" for p in kept)


def test_feedback_datasets_need_kept_inputs(client):
    r = client.post("/datasets/from-feedback", json={})
    assert r.status_code == 409 and "CXR_KEEP_INPUTS_DAYS" in r.json()["detail"]
