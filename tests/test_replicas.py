"""Two `cxr serve` replicas and separate `cxr worker` processes on one PostgreSQL (Debian's, on loopback):
an activation through one replica is served by the other within 5 s; a model whose files do not verify
is refused and nothing changes; a job queued through one replica is visible and cancellable through the
other and runs once on one of two workers; a worker killed with -9 mid-job leaves it interrupted, and a
restarted worker resumes it to the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.db.engine import make_engine
from app.db.migrate import upgrade
from tests.live_server import ROOT, start_server, wait_ready
from tests.postgres import fresh_database, postgres_server, server_binaries
from tests.synth import make_model_dir, write_dataset
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    if server_binaries() is None:
        pytest.skip("PostgreSQL's server is not installed (scripts/install_postgres.sh installs Debian's postgresql "
                    "as root)")
    root = tmp_path_factory.mktemp("replicas")
    weights = root / "weights"
    make_model_dir(weights / "tiny", image_size=64)
    make_model_dir(weights / "tiny2", image_size=64, seed=1, version="test-2")
    broken = make_model_dir(weights / "broken", image_size=64, seed=2)
    (broken / "model.safetensors").write_bytes(b"not the weights the card names")
    (weights / "manifest.json").write_text('{"default": "tiny"}')
    write_dataset(root / "data" / "site1", per_class=20, size=64, splits=("train",))
    with postgres_server() as server:
        url = fresh_database(server)
        engine = make_engine(url)
        upgrade(engine)  # the operator's `cxr db upgrade`
        engine.dispose()
        common = {"CXR_DATABASE_URL": url, "CXR_WEIGHTS_DIR": str(weights), "CXR_INTEGRITY": "off",
                  "CXR_AUTH": "off", "CXR_RATE_LIMIT_PER_MIN": "0", "CXR_LOG_JSON": "false",
                  "CXR_DATA_ROOT": str(root / "data"), "CXR_MIN_IMAGES_PER_CLASS": "20", "CXR_WORKERS": "external",
                  "CXR_TRAIN_THREADS": "1",
                  "CXR_ONNX_CACHE": str(root / "onnx")}  # on the storage every replica mounts: exported once
        servers = {}
        for name in ("a", "b"):
            servers[name] = start_server(common | {"CXR_STATE_DIR": str(root / f"state-{name}")})
        try:
            for proc, base in servers.values():
                wait_ready(proc, base)
            yield {"common": common, "root": root, "a": servers["a"][1], "b": servers["b"][1]}
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)


def served(base: str) -> str:
    return httpx.get(f"{base}/readyz", timeout=5).json()["model"]["name"]


def test_activation_through_one_replica_is_served_by_the_other(cluster):
    a, b = cluster["a"], cluster["b"]
    assert served(a) == served(b) == "tiny"
    r = httpx.post(f"{a}/models/broken/activate", timeout=60)  # files that do not verify: refused, nothing moves
    assert r.status_code == 422 and "sha256" in r.json()["detail"]
    assert served(a) == served(b) == "tiny"
    r = httpx.post(f"{a}/models/tiny2/activate", timeout=60)
    assert r.status_code == 200 and r.json()["model"]["version"] == "test-2"
    t0 = time.monotonic()  # a serves it from here on
    wait_for(lambda: served(b), lambda name: name == "tiny2", timeout=5, what="replica b to serve tiny2", interval=0.1)
    assert time.monotonic() - t0 <= 5
    assert httpx.get(f"{b}/readyz").json()["model"]["version"] == "test-2"
    r = httpx.post(f"{b}/models/tiny/activate", timeout=60)  # and back, through the other one
    assert r.status_code == 200
    wait_for(lambda: served(a), lambda name: name == "tiny", timeout=5, what="replica a to serve tiny", interval=0.1)


def _worker(cluster: dict, name: str) -> tuple[subprocess.Popen, Path]:
    log = cluster["root"] / f"worker-{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXR_")}
    env.update(cluster["common"] | {"CXR_STATE_DIR": str(cluster["root"] / "state-workers"), "CXR_WORKER_NAME": name,
                                    "CXR_HEARTBEAT_TIMEOUT_S": "3"})
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    return proc, log


def _job(base: str, job_id: str) -> dict:
    return httpx.get(f"{base}/train/{job_id}", timeout=5).json()


def test_jobs_are_shared_run_once_and_survive_a_killed_worker(cluster):
    a, b = cluster["a"], cluster["b"]
    body = {"dataset": "site1", "epochs": 1, "batch_size": 8, "val_fraction": 0.3}
    queued = httpx.post(f"{a}/train", json=body).json()  # no worker yet: it stays queued
    assert _job(b, queued["id"])["state"] == "queued"
    assert httpx.delete(f"{b}/train/{queued['id']}").json()["state"] == "cancelled"
    assert _job(a, queued["id"])["state"] == "cancelled"

    one = httpx.post(f"{b}/train", json=body).json()
    workers = [_worker(cluster, "w1"), _worker(cluster, "w2")]
    try:
        done = wait_for(lambda: _job(a, one["id"]), lambda j: j["state"] in ("succeeded", "failed"), timeout=180,
                        what="the job to end", interval=0.2)
        assert done["state"] == "succeeded", done
        started = [log.read_text().count(f"job {one['id']} started") for _, log in workers]
        assert sorted(started) == [0, 1]  # claimed by exactly one of the two

        long = httpx.post(f"{a}/train", json=body | {"epochs": 60}).json()
        wait_for(lambda: _job(b, long["id"]), lambda j: (j["progress"].get("epoch") or 0) >= 2, timeout=180,
                 what="the long job to be training", interval=0.2)
        runner = next(i for i, (_, log) in enumerate(workers) if f"job {long['id']} started" in log.read_text())
        proc, _ = workers[runner]
        os.kill(proc.pid, signal.SIGKILL)  # the worker dies; its training child dies with it
        proc.wait(timeout=10)
        for i, (other, _) in enumerate(workers):
            if i != runner:
                other.terminate()
                other.wait(timeout=60)
        # nobody reports for it any more: interrupted after the heartbeat timeout (3 s) by the next runner
        workers.append(_worker(cluster, "w3"))
        gone = wait_for(lambda: _job(a, long["id"]), lambda j: j["state"] == "interrupted", timeout=60,
                        what="the orphaned job to be interrupted", interval=0.2)
        assert "resume" in gone["error"]
        assert httpx.post(f"{b}/train/{long['id']}/resume").status_code == 202
        wait_for(lambda: _job(a, long["id"]), lambda j: j["state"] == "running" and (j["progress"].get("epoch") or 0) >= 3,
                 timeout=180, what="the resumed job to go on from its checkpoint", interval=0.2)
        assert httpx.delete(f"{a}/train/{long['id']}").json()["state"] == "running"  # cancel requested
        wait_for(lambda: _job(b, long["id"]), lambda j: j["state"] == "cancelled", timeout=120,
                 what="the resumed job to stop", interval=0.2)
    finally:
        for proc, _ in workers:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
