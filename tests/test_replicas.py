"""The failover test: two `cxr serve` replicas behind nginx (Debian's), separate `cxr worker` processes, one
PostgreSQL (Debian's) and one shared state folder, all on loopback. (c) An activation through one replica is
served by the other within 5 s; a model whose files do not verify is refused and nothing changes. (a) 50
STOW-RS instances sent through nginx reach both replicas and are each screened once and delivered to the
PACS once. (b) A job queued through one replica is visible and cancellable through the other and runs once
on one of two workers; (e) a worker killed with -9 mid-job leaves it interrupted, and a restarted worker
resumes it. (d) Replica A killed with -9 under /predict load through nginx: traffic moves to B, the only
failed requests are the ones in flight on A (counted), and every STOW-RS instance A had accepted is
screened and delivered by B."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pydicom
import pytest

from app.dicom.multipart import encode_related

from tests.live_server import ROOT, service_env, start_server, wait_ready
from tests.nginx import available as nginx_available, balancer, upstream_log
from tests.postgres import fresh_database, migrated, pg_server  # noqa: F401 (pg_server: a fixture)
from tests.synth import chest_like, dicom_bytes, encode, make_model_dir, write_dataset
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pg_server: str) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("replicas")
    weights = root / "weights"
    make_model_dir(weights / "tiny", image_size=64)
    make_model_dir(weights / "tiny2", image_size=64, seed=1, version="test-2")
    broken = make_model_dir(weights / "broken", image_size=64, seed=2)
    (broken / "model.safetensors").write_bytes(b"not the weights the card names")
    (weights / "manifest.json").write_text('{"default": "tiny"}')
    write_dataset(root / "data" / "site1", per_class=20, size=64, splits=("train",))
    url = migrated(fresh_database(pg_server))  # the operator's `cxr db upgrade`
    common = {"CXR_DATABASE_URL": url, "CXR_WEIGHTS_DIR": str(weights), "CXR_INTEGRITY": "off",
              "CXR_AUTH": "off", "CXR_RATE_LIMIT_PER_MIN": "0", "CXR_LOG_JSON": "false",
              "CXR_DATA_ROOT": str(root / "data"), "CXR_MIN_IMAGES_PER_CLASS": "20", "CXR_WORKERS": "external",
              "CXR_TRAIN_THREADS": "1",
              "CXR_ONNX_CACHE": str(root / "onnx")}  # on the storage every replica mounts: exported once
    common["CXR_STATE_DIR"] = str(root / "state")  # what every replica and worker mounts
    common["CXR_DICOM_CLAIM_TIMEOUT_S"] = "3"
    pacs = Pacs()
    common["CXR_PACS_STOW_URL"] = pacs.url
    # not captured: nobody reads a replica's log while it serves, and a full pipe would stop it
    servers = {name: start_server(common | {"CXR_WORKER_NAME": f"replica-{name}"}, capture=False)
               for name in ("a", "b")}
    try:
        for proc, base in servers.values():
            wait_ready(proc, base)
        cluster = {"common": common, "root": root, "a": servers["a"][1], "b": servers["b"][1], "pacs": pacs,
                   "procs": {k: v[0] for k, v in servers.items()}, "lb": None, "lb_log": None}
        if not nginx_available():
            yield cluster
        else:
            with balancer([servers["a"][1], servers["b"][1]]) as (lb, lb_log):
                yield cluster | {"lb": lb, "lb_log": lb_log}
    finally:
        for proc, _ in servers.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        pacs.close()


class Pacs:
    """A PACS's STOW-RS endpoint, enough to count what arrives: every POST answered 200, its SOP Instance UIDs kept."""

    def __init__(self) -> None:
        received: list[list[str]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ctype = self.headers["Content-Type"]
                boundary = ctype.split("boundary=")[1].strip('"').encode()
                uids = [pydicom.dcmread(io.BytesIO(part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]),
                                        stop_before_pixels=True).SOPInstanceUID
                        for part in body.split(b"--" + boundary)[1:-1]]
                received.append(uids)
                self.send_response(200)
                self.send_header("Content-Type", "application/dicom+json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/dicom-web/studies"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()


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


def _stow(base: str, n: int, study: str) -> list[str]:
    """n instances of one study in one STOW-RS request; their SOP Instance UIDs."""
    instances = [dicom_bytes(chest_like(96, 96, seed=i), patient={"PatientID": study}) for i in range(n)]
    body, ctype = encode_related(instances)
    r = httpx.post(f"{base}/dicomweb/studies", content=body, headers={"Content-Type": ctype}, timeout=60)
    assert r.status_code == 202, r.text
    return [pydicom.dcmread(io.BytesIO(x)).SOPInstanceUID for x in instances]


def _all_results(base: str) -> list[dict]:
    return httpx.get(f"{base}/dicomweb/results", params={"limit": 1000}, timeout=10).json()["results"]


def _settled(rows: list[dict], n: int) -> bool:
    return len(rows) >= n and all(r["state"] == "done" and r["delivery"] == "delivered" for r in rows)


def _lb(cluster: dict) -> str:
    if cluster["lb"] is None:
        pytest.skip("nginx is not installed (scripts/install_nginx.sh installs Debian's nginx as root)")
    return cluster["lb"]


def _address(base: str) -> str:
    return base.split("://", 1)[1]


def test_stow_through_nginx_is_screened_and_delivered_once(cluster):
    a, b, pacs, lb = cluster["a"], cluster["b"], cluster["pacs"], _lb(cluster)
    before = len(pacs.received)
    sources = []
    for i in range(10):  # 50 instances, 5 per request, balanced by nginx
        sources += _stow(lb, 5, f"S{i}")
    answered = {r.upstream for r in upstream_log(cluster["lb_log"])
                if (r.method, r.path, r.status) == ("POST", "/dicomweb/studies", 202)}
    assert answered == {_address(a), _address(b)}  # both replicas took some
    rows = wait_for(lambda: _all_results(a), lambda rs: _settled(rs, 50), timeout=180,
                    what="50 results done and delivered", interval=0.5)
    assert sorted(r["source_sop_instance_uid"] for r in rows) == sorted(sources)
    assert {r["id"] for r in _all_results(b)} == {r["id"] for r in rows}  # one store, seen from both
    sent = [uid for delivery in pacs.received[before:] for uid in delivery]
    produced = [r[k] for r in rows for k in ("structured_report_sop_instance_uid",
                                                "parametric_map_sop_instance_uid", "secondary_capture_sop_instance_uid")]
    assert sorted(sent) == sorted(produced)  # each result's objects exactly once


def _worker(cluster: dict, name: str) -> tuple[subprocess.Popen, Path]:
    log = cluster["root"] / f"worker-{name}.log"
    env = service_env(cluster["common"] | {"CXR_WORKER_NAME": name, "CXR_HEARTBEAT_TIMEOUT_S": "3"})
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


def test_a_replica_killed_under_load_fails_only_its_requests_in_flight(cluster, record_property):
    a, b, pacs, lb = cluster["a"], cluster["b"], cluster["pacs"], _lb(cluster)
    sources = _stow(a, 20, "KILL")  # accepted by A (202); screening them takes A a while
    png = encode(chest_like(64, 64, seed=3))
    outcomes: list[tuple[float, int | str]] = []  # (when it ended, status or transport error)
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                try:
                    status: int | str = c.post(f"{lb}/predict", files={"file": ("x.png", png)}).status_code
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                outcomes.append((time.monotonic(), status))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for t in clients:
        t.start()
    try:
        def predicts_by_upstream() -> set[str]:
            return {r.upstream for r in upstream_log(cluster["lb_log"]) if (r.path, r.status) == ("/predict", 200)}
        wait_for(predicts_by_upstream, lambda ups: ups >= {_address(a), _address(b)}, timeout=60,
                 what="/predict load answered by both replicas", interval=0.1)
        killed_at = time.monotonic()
        os.kill(cluster["procs"]["a"].pid, signal.SIGKILL)
        cluster["procs"]["a"].wait(timeout=10)
        dead = time.time() + 0.002  # A is reaped: nothing begun later can reach it (nginx logs in ms)
        wait_for(lambda: sum(1 for t, s in outcomes if t > killed_at and s == 200), lambda n: n >= 60, timeout=120,
                 what="60 answers after the kill", interval=0.1)
    finally:
        stop.set()
        for t in clients:
            t.join(timeout=60)
    failed = [s for _, s in outcomes if s != 200]
    logged = [r for r in upstream_log(cluster["lb_log"]) if r.path == "/predict"]
    lost = [r for r in logged if r.status != 200 or not r.complete]
    later = [r for r in logged if r.started > dead]
    report = {"requests": len(outcomes), "failed": len(failed), "failed_statuses": sorted(map(str, set(failed))),
              "clients": len(clients), "failed_in_flight_on_a": sum(r.upstream == _address(a) for r in lost),
              "begun_after_a_died": len(later), "of_which_answered_by_b": sum(r.upstream.endswith(_address(b)) and
                                                                           r.status == 200 and r.complete
                                                                           for r in later)}
    record_property("failover", report)
    print("failover:", report)
    # the only failures: requests A was answering when it died (begun before the kill, each client has one at a
    # time): 502 from nginx when A had not started its answer, the connection cut when it had (nginx cannot
    # take back the status it passed on). Every request begun after the kill went to B (or tried A, was
    # refused, and went on to B) and succeeded.
    assert len(failed) == len(lost) <= len(clients), report
    assert set(failed) <= {502, "RemoteProtocolError", "ReadError"}, report
    assert all(r.upstream == _address(a) and r.started <= dead for r in lost), lost
    assert len(later) >= 50 and report["of_which_answered_by_b"] == len(later), report

    def mine() -> list[dict]:
        return [r for r in _all_results(b) if r["source_sop_instance_uid"] in sources]

    rows = wait_for(mine, lambda rs: _settled(rs, 20), timeout=180, what="replica b to finish what a accepted",
                    interval=0.5)
    assert len(rows) == 20
    sent = {uid for delivery in pacs.received for uid in delivery}
    assert all(r["structured_report_sop_instance_uid"] in sent for r in rows)
