"""POST /train end to end: a worker process fine-tunes the tiny model; versions, activation, cancel, restart."""

import time

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.training.store import JobState, JobStore
from tests.synth import chest_like, encode, write_dataset
from tests.waiting import wait_for


@pytest.fixture()
def train_settings(settings, tmp_path):
    root = tmp_path / "data"
    write_dataset(root / "site1", per_class=20, size=64, splits=("train",))
    one = root / "one-class" / "NORMAL"
    one.mkdir(parents=True)
    for i in range(25):
        (one / f"IM-{i:04d}-0001.png").write_bytes(encode(chest_like(64, 64, seed=i)))
    return settings.model_copy(update={"data_root": root, "min_images_per_class": 20, "train_threads": 1})


def _wait(client, job_id, states=("succeeded", "failed", "cancelled"), timeout=180):
    return wait_for(lambda: client.get(f"/train/{job_id}").json(), lambda job: job["state"] in states,
                    timeout=timeout, what=f"job {job_id} to be {'/'.join(states)}", interval=0.2)


@pytest.mark.slow
def test_train_then_activate_then_predict_with_the_new_version(train_settings):
    with TestClient(create_app(train_settings, configure_logs=False)) as c:
        r = c.post("/train", json={"dataset": "site1", "epochs": 1, "batch_size": 8, "val_fraction": 0.3})
        assert r.status_code == 202, r.text
        job = r.json()
        assert r.headers["location"] == f"/train/{job['id']}" and job["state"] in ("queued", "running")
        assert job["request"]["dataset_counts"] == {"NORMAL": 20, "PNEUMONIA": 20}
        # inference keeps answering while the job runs
        for _ in range(3):
            assert c.post("/predict?heatmap=none", files={"file": ("a.png", encode(chest_like(100, 100)))}).status_code == 200
        done = _wait(c, job["id"])
        assert done["state"] == "succeeded", done
        assert done["model"].startswith("tiny-ft-") and len(done["metrics"]) == 1
        assert {"train_loss", "val_loss", "val_auroc"} <= set(done["metrics"][0])
        assert done["promoted"] is False and done["promotion_reason"] == "auto_promote is off"
        listed = {m["name"]: m for m in c.get("/models").json()["models"]}
        new = listed[done["model"]]
        assert done["model_version"] == new["version"]  # the version /predict reports once it serves
        assert new["source"] == "trained" and not new["active"]
        assert new["card"]["base_metrics"]["val"]["n"] == new["card"]["metrics"]["val"]["n"]
        assert job["request"]["device"] == "cpu" and new["card"]["training"]["config"]["device"] == "cpu"
        assert "under the 'standard' augmentation" in new["card"]["operating_point"]
        published = train_settings.state_dir / "models" / done["model"]
        assert (published / "MODEL_CARD.md").read_text().startswith(f"# Model card: {done['model']} ")
        assert c.get("/train").json()["jobs"][0]["id"] == job["id"]

        r = c.post(f"/models/{done['model']}/activate")
        assert r.status_code == 200, r.text
        pred = c.post("/predict", files={"file": ("a.png", encode(chest_like(100, 100)))}).json()
        assert pred["model"]["name"] == done["model"] and pred["model"]["version"] == done["model_version"]
        assert c.post("/models/tiny/activate").status_code == 200  # rollback
    # the active version survives a restart
    with TestClient(create_app(train_settings.model_copy(update={"model": None}), configure_logs=False)) as c:
        assert c.get("/readyz").json()["model"]["name"] == "tiny"


@pytest.mark.parametrize("body,status,detail", [
    ({"dataset": "../etc", "epochs": 1}, 400, "without '..'"),
    ({"dataset": "/etc", "epochs": 1}, 400, "must be relative"),
    ({"dataset": "nope", "epochs": 1}, 404, "does not exist under the data root"),
    ({"dataset": "one-class", "epochs": 1}, 422, "missing the class folder(s): PNEUMONIA"),
    ({"dataset": "site1", "epochs": 0}, 422, "invalid request: body.epochs"),
    ({"dataset": "site1", "learning_rate": 2}, 422, "invalid request: body.learning_rate"),
    ({"dataset": "site1", "batch_size": 1000}, 422, "invalid request: body.batch_size"),
    ({"dataset": "site1", "base_model": "nope"}, 404, "no model named 'nope'"),
    ({"dataset": "site1", "surprise": 1}, 422, "invalid request: body.surprise"),
])
def test_bad_train_requests(train_settings, body, status, detail):
    with TestClient(create_app(train_settings, configure_logs=False)) as c:
        r = c.post("/train", json=body)
        assert r.status_code == status, r.text
        assert detail in r.json()["detail"]
        assert c.get("/train").json()["total"] == 0  # nothing was queued
        assert c.get("/train/doesnotexist").status_code == 404


def test_small_dataset_is_refused(train_settings):
    with TestClient(create_app(train_settings.model_copy(update={"min_images_per_class": 50}), configure_logs=False)) as c:
        r = c.post("/train", json={"dataset": "site1"})
        assert r.status_code == 422 and "at least 50 images per class" in r.json()["detail"]


def test_queue_full_cancel_and_restart_resume(train_settings):
    s = train_settings.model_copy(update={"train_queue_size": 2})
    state = s.state_dir
    store = JobStore.open(f"sqlite:///{state / 'jobs.sqlite3'}")
    ghost = store.create({"dataset": "site1"})
    store.transition(ghost["id"], (JobState.queued,), JobState.running)  # a job the previous server left running
    store.close()
    app = create_app(s, configure_logs=False)
    with TestClient(app) as c:
        j = c.get(f"/train/{ghost['id']}").json()
        assert j["state"] == "interrupted" and "resume" in j["error"]
        app.state.services.jobs._task.cancel()  # hold the queue still for this test
        a = c.post("/train", json={"dataset": "site1", "epochs": 1}).json()
        b = c.post("/train", json={"dataset": "site1", "epochs": 1}).json()
        r = c.post("/train", json={"dataset": "site1", "epochs": 1})
        assert r.status_code == 429 and r.headers["retry-after"] == str(s.retry_after_s)
        assert "already queued or running" in r.json()["detail"]
        assert c.delete(f"/train/{b['id']}").json()["state"] == "cancelled"
        assert c.delete(f"/train/{b['id']}").status_code == 400
        assert c.post(f"/train/{ghost['id']}/resume").json()["state"] == "queued"
        assert c.post(f"/train/{a['id']}/resume").status_code in (400, 429)
        assert c.get("/train?limit=2").json()["total"] == 3


@pytest.mark.slow
def test_killed_worker_fails_the_job_and_spares_the_server(train_settings):
    with TestClient(create_app(train_settings, configure_logs=False)) as c:
        job = c.post("/train", json={"dataset": "site1", "epochs": 30, "batch_size": 4}).json()
        _wait(c, job["id"], states=("running",))
        wait_for(lambda: c.app.state.services.jobs._proc, lambda proc: proc is not None, what="the worker process")
        c.app.state.services.jobs.kill_worker()
        done = _wait(c, job["id"])
        assert done["state"] == "failed" and "worker exited with code -9" in done["error"]
        assert c.get("/readyz").status_code == 200
        assert c.get("/models").json()["active"]["name"] == "tiny"
        assert not [m for m in c.get("/models").json()["models"] if m["source"] == "trained"]


@pytest.mark.slow
def test_cancel_a_running_job_within_seconds(train_settings):
    with TestClient(create_app(train_settings, configure_logs=False)) as c:
        job = c.post("/train", json={"dataset": "site1", "epochs": 50, "batch_size": 2}).json()
        _wait(c, job["id"], states=("running",))
        _wait(c, job["id"], states=("running",))
        wait_for(lambda: c.get(f"/train/{job['id']}").json()["progress"], lambda p: (p.get("step") or 0) >= 1,
                 timeout=120, what="the worker to be inside its first epoch")
        t0 = time.time()
        assert c.delete(f"/train/{job['id']}").status_code == 200
        done = _wait(c, job["id"], timeout=30)
        assert done["state"] == "cancelled" and time.time() - t0 < 15
        assert done["model_version"] is None


def test_promotion_rule():
    from types import SimpleNamespace

    from app.training.worker import promotion_decision
    from models.card import SplitMetrics

    def card(new_auc, new_sens, base_auc, base_sens):
        m = lambda a, s: SplitMetrics(n=10, auroc=a, accuracy=0.9, sensitivity=s, specificity=0.9)  # noqa: E731
        return SimpleNamespace(metrics={"val": m(new_auc, new_sens)}, base_metrics={"val": m(base_auc, base_sens)})

    assert promotion_decision(card(0.95, 0.96, 0.94, 0.96))[0] is True
    ok, reason = promotion_decision(card(0.93, 0.99, 0.94, 0.96))
    assert not ok and "AUROC 0.9300 is below the base model's 0.9400" in reason
    ok, reason = promotion_decision(card(0.95, 0.90, 0.94, 0.96))
    assert not ok and "sensitivity" in reason
    assert promotion_decision(SimpleNamespace(metrics={}, base_metrics=None))[0] is False
    guarded = card(0.95, 0.96, 0.94, 0.96)
    guarded.integrity = {"accepted": 0.5, "n": 10}
    ok, reason = promotion_decision(guarded)
    assert not ok and "accepts only 50.0% of this version's validation images" in reason
    guarded.integrity = {"accepted": 0.96, "n": 10}
    assert promotion_decision(guarded)[0] is True


@pytest.mark.slow
def test_server_restart_mid_job_then_resume_from_the_checkpoint(train_settings):
    s = train_settings.model_copy(update={"cancel_grace_s": 0})
    with TestClient(create_app(s, configure_logs=False)) as c:
        job = c.post("/train", json={"dataset": "site1", "epochs": 4, "batch_size": 2, "val_fraction": 0.3}).json()
        wait_for(lambda: c.get(f"/train/{job['id']}").json()["metrics"], lambda m: len(m) >= 1, timeout=120,
                 what="the first epoch's metrics", interval=0.2)
    # the server stopped (its worker with it) while the job was running
    with TestClient(create_app(s, configure_logs=False)) as c:
        j = c.get(f"/train/{job['id']}").json()
        assert j["state"] == "interrupted", j
        epochs_before = len(j["metrics"])
        assert 1 <= epochs_before < 4
        assert c.post(f"/train/{job['id']}/resume").status_code == 202
        done = _wait(c, job["id"])
        assert done["state"] == "succeeded", done
        assert [m["epoch"] for m in done["metrics"]][:epochs_before] == list(range(1, epochs_before + 1))
        assert done["metrics"][-1]["epoch"] == 4 and len(done["metrics"]) == 4  # continued, not restarted
        log = (s.state_dir / "jobs" / job["id"] / "job.log").read_text()
        assert "resumed from" in log and "epoch 4/4" in log
        assert not (s.state_dir / "jobs" / job["id"] / "out").exists()  # scratch removed once published


@pytest.mark.parametrize("name", ["\\u0000abc", "a\\nb", "\\ud83d", "C:/x", "~root"])
def test_hostile_dataset_names_are_400(train_settings, name):
    with TestClient(create_app(train_settings, configure_logs=False)) as c:  # raw JSON: escapes reach the server
        r = c.post("/train", content=f'{{"dataset": "{name}"}}', headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert c.get("/train").json()["total"] == 0


def test_train_device_setting(monkeypatch):
    from pydantic import ValidationError

    from app.core.config import Settings

    assert Settings().train_device == "cpu"
    monkeypatch.setenv("CXR_TRAIN_DEVICE", "cuda:1")
    assert Settings().train_device == "cuda:1"
    monkeypatch.setenv("CXR_TRAIN_DEVICE", "gpu")
    with pytest.raises(ValidationError, match="train_device"):
        Settings()
