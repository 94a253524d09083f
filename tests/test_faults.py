"""Faults: corrupt versions, crashes during writes and activations, a full disk, SIGTERM with requests in flight."""

import errno
import shutil
import threading

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.training.spec import JobSpec
from app.training.store import JobState, JobStore
from tests.live_server import start_server, wait_ready
from tests.waiting import wait_for
from tests.synth import chest_like, encode, make_model_dir, write_dataset


def _corrupt(folder):
    w = folder / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-8] + b"corrupt!")


def test_activating_a_corrupt_version_is_refused_and_the_old_one_keeps_serving(settings):
    make_model_dir(settings.state_dir / "models" / "site-v2", version="v2")
    _corrupt(settings.state_dir / "models" / "site-v2")
    with TestClient(create_app(settings, configure_logs=False)) as c:
        r = c.post("/models/site-v2/activate")
        assert r.status_code == 422 and "is corrupt: sha256" in r.json()["detail"]
        assert c.get("/readyz").json()["model"]["name"] == "tiny"
        assert c.post("/predict", files={"file": ("a.png", encode(chest_like(80, 80)))}).status_code == 200


def test_restart_after_the_active_version_was_damaged_falls_back_to_the_default(settings, caplog):
    make_model_dir(settings.state_dir / "models" / "site-v2", version="v2")
    with TestClient(create_app(settings, configure_logs=False)) as c:
        assert c.post("/models/site-v2/activate").status_code == 200
    _corrupt(settings.state_dir / "models" / "site-v2")
    with TestClient(create_app(settings, configure_logs=False)) as c:
        assert c.get("/readyz").json()["model"]["name"] == "tiny"
    assert "falling back to the default" in caplog.text


def test_a_crash_while_publishing_leaves_nothing_half_written_listed(settings):
    models = settings.state_dir / "models"
    (settings.state_dir / "jobs" / "abc" / "publish").mkdir(parents=True)  # staging of a killed worker
    (settings.state_dir / "jobs" / "abc" / "publish" / "model.safetensors").write_bytes(b"partial")
    (models / "no-card").mkdir(parents=True)  # a folder without its card is not a version
    (models / "no-card" / "model.safetensors").write_bytes(b"partial")
    with TestClient(create_app(settings, configure_logs=False)) as c:
        assert [m["name"] for m in c.get("/models").json()["models"]] == ["tiny"]
        assert c.post("/models/no-card/activate").status_code == 404


def test_a_crash_during_activation_keeps_the_previous_active_model(settings, monkeypatch):
    from app.inference import serving as registry_module

    make_model_dir(settings.state_dir / "models" / "site-v2", version="v2")
    with TestClient(create_app(settings, configure_logs=False)) as c:
        def crash_during_warmup(self, *a, **k):
            raise RuntimeError("simulated crash during warm-up")

        monkeypatch.setattr(registry_module.ServingModel, "warmup", crash_during_warmup)
        with pytest.raises(RuntimeError):
            c.app.state.services.registry.activate("site-v2")
        monkeypatch.undo()
        assert c.get("/readyz").json()["model"]["name"] == "tiny"
    with TestClient(create_app(settings, configure_logs=False)) as c:  # and after a restart
        assert c.get("/readyz").json()["model"]["name"] == "tiny"


def test_disk_full_while_saving_a_version_fails_the_job_cleanly(settings, tmp_path, monkeypatch):
    import app.training.worker as worker
    from models import weights

    data = write_dataset(tmp_path / "data", per_class=6, size=64, splits=("train",))
    store = JobStore.open(f"sqlite:///{settings.state_dir / 'jobs.sqlite3'}")
    job = store.create(JobSpec(dataset="train", base_model="tiny", dataset_counts={"NORMAL": 6, "PNEUMONIA": 6},
                               dataset_dir=str(data / "train"), base_model_dir=str(settings.weights_dir / "tiny"),
                               epochs=1, batch_size=4, learning_rate=1e-3, val_fraction=0.3).model_dump())
    store.transition(job["id"], (JobState.queued,), JobState.running)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(weights, "save_file", full_disk)
    assert worker.run_job(store, job["id"], settings.state_dir) == 1
    done = store.get(job["id"])
    assert done["state"] == "failed" and "No space left on device" in done["error"]
    assert done["model_version"] is None
    assert not (settings.state_dir / "models").exists() or not any((settings.state_dir / "models").iterdir())
    store.close()


def test_a_job_request_the_worker_cannot_read_fails_the_job_with_a_reason(settings):
    import app.training.worker as worker

    store = JobStore.open(f"sqlite:///{settings.state_dir / 'jobs.sqlite3'}")
    job = store.create({"dataset": "site1"})  # what an older server stored: no resolved folders
    store.transition(job["id"], (JobState.queued,), JobState.running)
    assert worker.run_job(store, job["id"], settings.state_dir) == 1
    done = store.get(job["id"])
    assert done["state"] == "failed" and done["error"].startswith("invalid job request:")
    store.close()


@pytest.mark.slow
def test_sigterm_lets_in_flight_requests_finish(tiny_weights, tmp_path):
    proc, url = start_server({"CXR_WEIGHTS_DIR": str(tiny_weights), "CXR_INTEGRITY": "off", "CXR_STATE_DIR": str(tmp_path / "s"),
                              "CXR_AUTH": "off"})
    wait_ready(proc, url)
    big = encode(chest_like(3000, 3000))  # decode + overlay take a while
    results = []

    def call():
        results.append(httpx.post(f"{url}/predict", content=big, headers={"content-type": "image/png"}, timeout=60))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    # in flight: the server has decoded all three (their overlays of 3000 x 3000 px are still to draw)
    wait_for(lambda: httpx.get(f"{url}/metrics").text, lambda m: 'cxr_stage_duration_seconds_count{stage="decode"} 3.0' in m,
             what="three decoded requests")
    proc.terminate()
    for t in threads:
        t.join(60)
    proc.communicate(timeout=60)
    assert [r.status_code for r in results] == [200, 200, 200]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/healthz", timeout=2)
    shutil.rmtree(tmp_path / "s", ignore_errors=True)


@pytest.mark.slow
def test_kill_9_during_activation_leaves_a_complete_verified_model(tiny_weights, tmp_path):
    import os
    import signal

    state = tmp_path / "state"
    make_model_dir(state / "models" / "site-v2", version="v2")
    env = {"CXR_WEIGHTS_DIR": str(tiny_weights), "CXR_STATE_DIR": str(state), "CXR_AUTH": "off", "CXR_INTEGRITY": "off"}
    # killed as the request is sent, and once the swap is visible (readyz names the new version)
    for moment in ("sent", "swapped"):
        proc, url = start_server(env)
        wait_ready(proc, url)

        def activate():
            try:
                httpx.post(f"{url}/models/site-v2/activate", timeout=30)
            except httpx.HTTPError:
                pass  # the server is killed under this request: that is the point

        t = threading.Thread(target=activate, daemon=True)
        t.start()
        if moment == "swapped":
            wait_for(lambda: httpx.get(f"{url}/readyz").json()["model"]["name"], lambda name: name == "site-v2",
                     what="the swap")
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        proc, url = start_server(env)  # the restart verifies whatever is active before it is ready
        wait_ready(proc, url)
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["status"] == "ready" and ready["model"]["name"] in ("tiny", "site-v2")
        proc.terminate()
        proc.communicate(timeout=30)
