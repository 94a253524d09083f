"""The audit trail: hash chain, append-only store, tamper detection, retention, what /predict records, the
listing and export, and a writer killed mid-write."""

from __future__ import annotations

import hashlib
import io
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient

from app.audit.record import AuditKind, AuditOutcome
from app.audit.store import AuditFilter, AuditStore
from app.audit.verify import readonly_engine, verify_chain as verify_engine
from app.db.engine import make_engine
from app.core.config import Settings
from app.main import create_app
from tests.synth import chest_like, dicom_bytes, encode
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
PNG = encode(chest_like(120, 100, seed=5))


def open_store(path: Path) -> AuditStore:
    """The trail in a SQLite database file (the default backend; PostgreSQL: tests/test_audit_database.py)."""
    return AuditStore(make_engine(f"sqlite:///{path}"))


def verify_chain(path: Path):  # type: ignore[no-untyped-def]
    engine = readonly_engine(path)
    try:
        return verify_engine(engine)
    finally:
        engine.dispose()


def _fill(store: AuditStore, n: int, *, time: str | None = None) -> None:
    for i in range(n):
        store.append({"kind": AuditKind.predict, "outcome": AuditOutcome.screened, "status": 200,
                      "p_pneumonia": i / 10, **({"time": time} if time else {})})


def _tamper(path: Path, sql: str, *args: object) -> None:
    """What someone with write access to the file could do: drop the guards, then change rows."""
    db = sqlite3.connect(path)
    db.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
    db.execute(sql, args)
    db.commit()
    db.close()


@pytest.fixture()
def trail(tmp_path: Path) -> Path:
    store = open_store(tmp_path / "db.sqlite3")
    _fill(store, 6)
    store.engine.dispose()
    return tmp_path / "db.sqlite3"


def test_an_intact_chain_verifies_and_reopening_continues_it(trail):
    report = verify_chain(trail)
    assert report.ok and report.records == 6 and (report.first_seq, report.last_seq) == (1, 6)
    store = open_store(trail)
    assert store.head == (6, report.head_hash)
    record = store.append({"kind": AuditKind.predict, "outcome": AuditOutcome.rejected, "status": 415})
    assert record.seq == 7 and record.prev_hash == report.head_hash
    store.engine.dispose()
    assert verify_chain(trail).ok


def test_the_store_refuses_updates_and_deletes(trail):
    db = sqlite3.connect(trail)
    for sql in ("UPDATE audit SET outcome = 'error' WHERE seq = 2", "DELETE FROM audit WHERE seq = 2"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(sql)
    db.close()


@pytest.mark.parametrize("tamper,seq,problem", [
    (lambda p: _tamper(p, "UPDATE audit SET body = replace(body, '\"p_pneumonia\":0.3', '\"p_pneumonia\":0.9') "
                          "WHERE seq = 4"), 4, "the record was modified"),
    (lambda p: _tamper(p, "UPDATE audit SET outcome = 'rejected' WHERE seq = 2"), 2, "indexed columns were modified"),
    (lambda p: _tamper(p, "DELETE FROM audit WHERE seq = 3"), 4, "records 3..3 are missing"),
    (lambda p: _tamper(p, "DELETE FROM audit WHERE seq <= 2"), 3, "records 1..2 are missing and no retention record"),
], ids=["modified", "column", "deleted", "prefix-deleted"])
def test_tampering_is_found_where_it_happened(trail, tamper, seq, problem):
    tamper(trail)
    report = verify_chain(trail)
    assert not report.ok and report.breaks[0].seq == seq and problem in report.breaks[0].problem


def test_a_reordered_or_rehashed_record_breaks_the_chain_after_it(trail):
    db = sqlite3.connect(trail)
    rows = {seq: (body, digest) for seq, body, digest in db.execute("SELECT seq, body, hash FROM audit")}
    db.close()
    # move record 3's content to seq 4 (and fix its seq, time column and hash so the row itself looks consistent;
    # records 3 and 4 may have been written in different milliseconds)
    body3 = json.loads(rows[3][0]) | {"seq": 4}
    text = json.dumps(body3, sort_keys=True, separators=(",", ":"))
    _tamper(trail, "UPDATE audit SET body = ?, hash = ?, time = ? WHERE seq = 4", text,
            hashlib.sha256(text.encode()).hexdigest(), body3["time"])
    report = verify_chain(trail)
    assert [b.seq for b in report.breaks[:2]] == [4, 5]
    assert all("does not continue the chain" in b.problem for b in report.breaks[:2])


def test_retention_removes_a_prefix_and_what_remains_still_verifies(tmp_path):
    store = open_store(tmp_path / "a.sqlite3")
    _fill(store, 5, time="2020-01-01T00:00:00.000Z")
    _fill(store, 3)
    record = store.prune("2021-01-01T00:00:00.000Z")
    assert record is not None and record.kind is AuditKind.retention and record.seq == 9
    assert record.extra == {"removed_from": 1, "removed_through": 5, "removed": 5, "anchor_hash": record.extra["anchor_hash"]}
    assert store.prune("2021-01-01T00:00:00.000Z") is None  # nothing left to remove
    store.engine.dispose()
    report = verify_chain(tmp_path / "a.sqlite3")
    assert report.ok and report.records == 4 and report.first_seq == 6


def test_cxr_audit_verify_exit_codes(trail):
    def cxr(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app.cli", "audit", "verify", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    ok = cxr("--db", str(trail))
    assert ok.returncode == 0 and json.loads(ok.stdout)["records"] == 6
    _tamper(trail, "DELETE FROM audit WHERE seq = 5")
    broken = cxr("--db", str(trail))
    assert broken.returncode == 1 and json.loads(broken.stdout)["breaks"][0] == {
        "seq": 6, "problem": "records 5..5 are missing"}
    missing = cxr("--db", str(trail.with_name("nope.sqlite3")))
    assert missing.returncode == 2 and "no audit trail at" in missing.stderr


APPENDER = ("import sys\nfrom app.audit.record import AuditKind, AuditOutcome\nfrom app.audit.store import AuditStore\n"
            "from app.db.engine import make_engine\ns = AuditStore(make_engine(sys.argv[1]))\n"
            "for _ in range(int(sys.argv[2])):\n    s.append({'kind': AuditKind.predict, 'outcome': AuditOutcome.screened})\n")
_WRITER = """
import sys
from app.audit.record import AuditKind, AuditOutcome
from app.audit.store import AuditStore
from app.db.engine import make_engine
store = AuditStore(make_engine(sys.argv[1]))
while True:
    store.append({"kind": AuditKind.predict, "outcome": AuditOutcome.screened, "detail": "x" * 2000})
"""


def test_a_writer_killed_mid_write_leaves_a_verifiable_chain(tmp_path):
    path = tmp_path / "db.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, f"sqlite:///{path}"], cwd=ROOT)
    try:
        def count() -> int:
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                    return db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
            except sqlite3.Error:
                return 0
        wait_for(count, lambda n: n >= 300, timeout=60, what="the writer to append 300 records", interval=0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    report = verify_chain(path)
    assert report.ok and report.records >= 300
    store = open_store(path)  # and the next writer continues the chain
    store.append({"kind": AuditKind.predict, "outcome": AuditOutcome.screened})
    store.engine.dispose()
    assert verify_chain(path).ok


# -- what the service records --------------------------------------------------------------------------

def _records(c: TestClient, **params: object) -> list[dict]:
    r = c.get("/audit", params=params)
    assert r.status_code == 200, r.text
    return r.json()["records"]


def test_every_predict_outcome_is_recorded(client):
    assert client.post("/predict", files={"file": ("a.png", PNG)}).status_code == 200
    assert client.post("/predict", files={"file": ("a.txt", b"hello")}).status_code == 415
    dcm = dicom_bytes(chest_like(128, 128, seed=2))
    assert client.post("/predict?output=dicom", content=dcm, headers={"content-type": "application/dicom"}).status_code == 200
    rows = _records(client)
    assert [(r["kind"], r["outcome"], r["status"]) for r in rows] == [
        ("predict", "screened", 200), ("predict", "rejected", 415), ("predict", "screened", 200)]
    ok, bad, dicom = rows
    assert ok["input"] == {"sha256": hashlib.sha256(PNG).hexdigest(), "format": "png", "bytes": len(PNG)}
    assert ok["model"]["name"] == "tiny" and len(ok["model"]["sha256"]) == 64
    assert 0 <= ok["p_pneumonia"] <= 1 and ok["label"] in ("NORMAL", "PNEUMONIA") and ok["threshold"] == 0.5
    assert ok["caller"] == "anonymous" and ok["route"] == "/predict" and ok["latency_ms"] > 0
    assert len(ok["request_id"]) == 32 and ok["client"] == "testclient"
    assert "unsupported image type" in bad["detail"] and bad["model"] is None
    uid = str(pydicom.dcmread(io.BytesIO(dcm)).SOPInstanceUID)
    assert len(dicom["instance"]) == 64 and uid not in json.dumps(rows)  # salted hash, never the UID
    # filters and cursor pagination
    assert [r["seq"] for r in _records(client, outcome="rejected")] == [bad["seq"]]
    assert [r["seq"] for r in _records(client, input_sha256=ok["input"]["sha256"])] == [ok["seq"]]
    assert len(_records(client, model="tiny")) == 2 and len(_records(client, model="tiny@test-1")) == 2
    assert _records(client, model="other") == []
    page = client.get("/audit", params={"limit": 2}).json()
    assert page["next_cursor"] == rows[1]["seq"] and page["head"]["seq"] == rows[-1]["seq"]
    assert [r["seq"] for r in _records(client, cursor=page["next_cursor"])] == [rows[2]["seq"]]
    assert _records(client, since="2999-01-01T00:00:00Z") == []
    assert client.get("/audit", params={"input_sha256": "xyz"}).status_code == 422


def test_export_streams_records_that_verify(client):
    for _ in range(3):
        client.post("/predict", files={"file": ("a.png", PNG)})
    lines = client.get("/audit/export").text.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == [1, 2, 3]
    for prev, rec in zip(records, records[1:]):
        assert rec["prev_hash"] == prev["hash"]
    body = {k: v for k, v in records[1].items() if k != "hash"}
    assert hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest() == records[1]["hash"]
    csv_text = client.get("/audit/export", params={"format": "csv"}).text
    assert csv_text.splitlines()[0].startswith("seq,time,kind,outcome") and len(csv_text.splitlines()) == 4


def test_callers_are_named_by_key_id_and_role_and_refusals_are_recorded(settings):
    from tests.test_integrity_api import GUARD

    s = settings.model_copy(update={"auth": "on", "api_keys": "p-key-0123456789abcdef:predict,a-key-0123456789abcdef:admin",
                                    "integrity": "on", "integrity_guard": GUARD})
    with TestClient(create_app(s, configure_logs=False)) as c:
        noise = encode(np.random.default_rng(0).integers(0, 255, (256, 256), dtype=np.uint8))
        r = c.post("/predict", files={"file": ("n.png", noise)}, headers={"X-API-Key": "p-key-0123456789abcdef"})
        assert r.status_code == 422
        assert c.post("/predict", files={"file": ("n.png", noise)}).status_code == 401
        assert c.get("/audit", headers={"X-API-Key": "p-key-0123456789abcdef"}).status_code == 403
        rows = c.get("/audit", headers={"X-API-Key": "a-key-0123456789abcdef"}).json()["records"]
    refused, unauthorised = rows
    key_id = hashlib.sha256(b"p-key-0123456789abcdef").hexdigest()[:8]
    assert refused["caller"] == f"key:{key_id}/predict" and refused["outcome"] == "not_evaluated"
    assert refused["integrity"]["accepted"] is False and refused["integrity"]["code"] == "not_frontal_chest"
    assert "does not look like a frontal chest radiograph" in refused["detail"] and refused["p_pneumonia"] is None
    assert unauthorised["outcome"] == "rejected" and unauthorised["status"] == 401 and unauthorised["caller"] is None


def test_audit_off_records_nothing_and_says_so(settings):
    with TestClient(create_app(settings.model_copy(update={"audit": "off"}), configure_logs=False)) as c:
        assert c.post("/predict", files={"file": ("a.png", PNG)}).status_code == 200
        r = c.get("/audit")
        assert r.status_code == 409 and "CXR_AUDIT=off" in r.json()["detail"]
    with sqlite3.connect(settings.state_dir / "jobs.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 0


def test_the_store_filter_by_kind(tmp_path):
    store = open_store(tmp_path / "a.sqlite3")
    _fill(store, 2)
    store.append({"kind": AuditKind.delivery, "outcome": AuditOutcome.delivered, "result_id": "0123456789abcdef"})
    assert [r.seq for r in store.page(AuditFilter(kind=AuditKind.delivery))] == [3]
    store.engine.dispose()


def test_default_settings_keep_the_trail():
    s = Settings()
    assert s.audit == "on" and s.audit_retention_days is None


def test_feedback_replaces_a_readers_verdict_and_the_trail_keeps_both(client):
    assert client.post("/predict", files={"file": ("a.png", PNG)}).status_code == 200
    assert client.post("/predict", files={"file": ("a.txt", b"hello")}).status_code == 415
    screened, rejected = _records(client)
    first = client.post("/feedback", json={"record": screened["seq"], "label": "PNEUMONIA", "reader": "dr-a",
                                           "comment": "left lower lobe, see Smith"})
    assert first.status_code == 201, first.text
    assert first.json() | {"audit_seq": 0} == {"record": screened["seq"], "reader": "dr-a", "label": "PNEUMONIA",
                                               "model_label": screened["label"], "replaced": False, "audit_seq": 0,
                                               "agrees": screened["label"] == "PNEUMONIA"}
    again = client.post("/feedback", json={"record": screened["seq"], "label": "NORMAL", "reader": "dr-a"})
    assert again.status_code == 200 and again.json()["replaced"] is True
    by_hash = client.post("/feedback", json={"input_sha256": screened["input"]["sha256"], "label": "NORMAL"})
    assert by_hash.status_code == 201 and by_hash.json()["reader"] == "anonymous"
    verdicts = _records(client, kind="feedback")
    assert [(v["label"], v["extra"]["reader"]) for v in verdicts] == [
        ("PNEUMONIA", "dr-a"), ("NORMAL", "dr-a"), ("NORMAL", "anonymous")]
    assert verdicts[0]["extra"]["comment_sha256"] == hashlib.sha256(b"left lower lobe, see Smith").hexdigest()
    assert "Smith" not in client.get("/audit/export").text  # the comment is not in the trail
    store = client.app.state.services.audit.store
    assert sorted(case[:3] for case in store.feedback_cases("2000-01-01", None)) == [
        (screened["seq"], "anonymous", "NORMAL"), (screened["seq"], "dr-a", "NORMAL")]


@pytest.mark.parametrize("body,status,detail", [
    ({"record": 999, "label": "NORMAL"}, 404, "no audit record 999"),
    ({"input_sha256": "0" * 64, "label": "NORMAL"}, 404, "no screened image with input sha256"),
    ({"record": 2, "label": "NORMAL"}, 422, "is a predict record with outcome rejected, not a screened image"),
    ({"record": 1, "label": "maybe"}, 422, "invalid request: body.label"),
    ({"label": "NORMAL"}, 422, "give exactly one of record or input_sha256"),
    ({"record": 1, "input_sha256": "0" * 64, "label": "NORMAL"}, 422, "give exactly one of record or input_sha256"),
    ({"record": 1, "label": "NORMAL", "reader": "x" * 65}, 422, "invalid request: body.reader"),
])
def test_bad_feedback_is_refused_with_a_reason(client, body, status, detail):
    client.post("/predict", files={"file": ("a.png", PNG)})
    client.post("/predict", files={"file": ("a.txt", b"hello")})
    r = client.post("/feedback", json=body)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]
    assert _records(client, kind="feedback") == []


def test_two_processes_appending_to_one_file_build_one_chain(tmp_path):
    path = tmp_path / "db.sqlite3"
    open_store(path).engine.dispose()  # the schema first, as a server's start makes it
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, f"sqlite:///{path}", "200"], cwd=ROOT) for _ in range(2)]
    assert [p.wait(120) for p in procs] == [0, 0]
    report = verify_chain(path)
    assert report.ok and report.records == 400 and report.last_seq == 400


def test_feedback_on_a_record_number_beyond_any_trail_is_a_422_not_a_500(client):
    r = client.post("/feedback", json={"record": 77434296279746199552, "label": "NORMAL"})
    assert r.status_code == 422 and "body.record" in r.json()["detail"]  # found by the schema fuzzer
