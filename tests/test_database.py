"""The job database on both backends: SQLite (the default) and a real PostgreSQL (Debian's, started
here on loopback): migrations, the schema check at start, the store's contract, one winner among
concurrent claims, and a fine-tune that runs end to end with its jobs in PostgreSQL."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import inspect, text

from app.cli import main as cli_main
from app.core.errors import ConfigurationError
from app.db.engine import make_engine
from app.db.migrate import current, ensure_schema, head, upgrade
from app.main import create_app
from app.db.active import ActivePointer
from app.training.store import JobState, JobStore, now
from tests.postgres import fresh_database, migrated, pg_server  # noqa: F401 (pg_server: a fixture)
from tests.synth import write_dataset
from tests.waiting import wait_for

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    return fresh_database(request.getfixturevalue("pg_server"))


def test_migrations_create_the_schema(db_url):
    engine = make_engine(db_url)
    assert current(engine) is None
    assert upgrade(engine) == head() == ensure_schema(engine)
    assert {c["name"] for c in inspect(engine).get_columns("jobs")} >= {"id", "state", "request", "model", "pid",
                                                                        "worker", "heartbeat_at"}
    assert inspect(engine).has_table("active_model") and inspect(engine).has_table("results")
    engine.dispose()


def test_a_newer_schema_is_refused_and_left_untouched(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ConfigurationError, match="newer than this release knows"):
        JobStore(engine)
    assert current(engine) == "9999"
    engine.dispose()


def test_postgresql_is_migrated_by_the_operator_not_by_a_starting_replica(pg_server, settings, monkeypatch, capsys,
                                                                          caplog):
    url = fresh_database(pg_server)
    engine = make_engine(url)
    with pytest.raises(ConfigurationError, match="run `cxr db upgrade`"):
        ensure_schema(engine)
    s = settings.model_copy(update={"database_url": SecretStr(url)})
    with pytest.raises(BaseException):  # the server refuses to start, and says why
        with TestClient(create_app(s, configure_logs=False)):
            pass
    assert "cannot start" in caplog.text and "run `cxr db upgrade`" in caplog.text
    monkeypatch.setenv("CXR_DATABASE_URL", url)
    assert cli_main(["db", "upgrade"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["revision"] == out["head"] == head() and out["before"] is None and "cxr@127.0.0.1" in out["database"]
    assert ensure_schema(engine) == head()
    engine.dispose()


def test_cxr_db_says_why_it_cannot_reach_the_database(monkeypatch, capsys):
    monkeypatch.setenv("CXR_DATABASE_URL", "postgresql://cxr:secret@127.0.0.1:1/nowhere")
    assert cli_main(["db", "current"]) == 2
    err = capsys.readouterr().err
    assert "cxr db: error" in err and "127.0.0.1" in err and "secret" not in err


def test_a_job_file_from_before_migrations_is_adopted_with_its_jobs(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as db:  # the table as the first releases wrote it: no model column
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, created_at TEXT NOT NULL, "
                   "started_at TEXT, finished_at TEXT, request TEXT NOT NULL, progress TEXT NOT NULL DEFAULT '{}', "
                   "metrics TEXT NOT NULL DEFAULT '[]', error TEXT, model_version TEXT, promoted INTEGER, "
                   "promotion_reason TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0, "
                   "resume INTEGER NOT NULL DEFAULT 0, pid INTEGER)")
        db.execute("INSERT INTO jobs (id, state, created_at, request) VALUES "
                   "('old1', 'succeeded', '2026-11-01T00:00:00+00:00', '{\"dataset\": \"site1\"}')")
    store = JobStore.open(f"sqlite:///{path}")
    job = store.get("old1")
    assert job["state"] == "succeeded" and job["request"] == {"dataset": "site1"} and job["model"] is None
    assert current(store.engine) == head()
    store.close()


def test_the_store_contract(db_url):
    store = JobStore.open(migrated(db_url))
    a = store.create({"dataset": "a"})
    b = store.create({"dataset": "b"})
    assert a["state"] == "queued" and a["progress"] == {} and a["metrics"] == [] and a["promoted"] is None
    rows, total = store.list(limit=10)
    assert total == 2 and [r["id"] for r in rows] == [b["id"], a["id"]]  # newest first
    assert store.next_queued()["id"] == a["id"] and store.count_active() == 2
    assert store.transition(a["id"], (JobState.queued,), JobState.running, started_at="t", pid=4242)
    assert not store.transition(a["id"], (JobState.queued,), JobState.running)  # no longer queued
    store.update(a["id"], progress={"epoch": 1, "loss": 0.5}, metrics=[{"epoch": 1}], cancel_requested=1)
    got = store.get(a["id"])
    assert got["progress"] == {"epoch": 1, "loss": 0.5} and got["metrics"] == [{"epoch": 1}] and got["pid"] == 4242
    assert store.cancel_requested(a["id"]) and not store.cancel_requested(b["id"])
    assert store.mark_interrupted() == [a["id"]]
    assert store.get(a["id"])["state"] == "interrupted" and "resume" in store.get(a["id"])["error"]
    assert store.fail(b["id"], "x" * 900) is False  # not running: unchanged
    assert store.get("nope") is None and store.count_active() == 1
    store.close()


def test_only_one_of_many_concurrent_claims_wins(db_url):
    store = JobStore.open(migrated(db_url))
    job = store.create({"dataset": "a"})
    start = threading.Barrier(8)
    wins: list[bool] = []

    def claim() -> None:
        start.wait()
        wins.append(store.transition(job["id"], (JobState.queued,), JobState.running))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]
    store.close()


@pytest.mark.slow
def test_a_fine_tune_runs_with_its_job_in_postgresql(pg_server, settings, tmp_path):
    url = migrated(fresh_database(pg_server))
    write_dataset(tmp_path / "data" / "site1", per_class=20, size=64, splits=("train",))
    s = settings.model_copy(update={"database_url": SecretStr(url), "data_root": tmp_path / "data", "min_images_per_class": 20,
                                    "train_threads": 1})
    with TestClient(create_app(s, configure_logs=False)) as c:
        r = c.post("/train", json={"dataset": "site1", "epochs": 1, "batch_size": 8, "val_fraction": 0.3})
        assert r.status_code == 202, r.text
        done = wait_for(lambda: c.get(f"/train/{r.json()['id']}").json(),
                        lambda j: j["state"] in ("succeeded", "failed"), timeout=180, what="the job", interval=0.2)
        assert done["state"] == "succeeded", done
        assert done["progress"]["done"] and done["metrics"][0]["epoch"] == 1
    assert not (settings.state_dir / "jobs.sqlite3").exists()  # nothing went to the SQLite default
    store = JobStore.open(url)
    assert store.get(done["id"])["model"] == done["model"]
    store.close()


def test_the_active_model_pointer(db_url):
    engine = make_engine(migrated(db_url))
    pointer = ActivePointer(engine)
    assert pointer.get() is None
    pointer.set("tiny", "1", "a" * 64, updated_by="server a")
    pointer.set("tiny2", "2", "b" * 64, updated_by="worker w1")
    got = pointer.get()
    assert (got.name, got.version, got.sha256, got.updated_by) == ("tiny2", "2", "b" * 64, "worker w1")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM active_model")).scalar_one() == 1
    engine.dispose()


def test_jobs_of_a_silent_runner_are_interrupted_and_only_theirs(db_url):
    store = JobStore.open(migrated(db_url))
    silent, alive, mine = (store.create({"dataset": d}) for d in ("a", "b", "c"))
    store.transition(silent["id"], (JobState.queued,), JobState.running, worker="w1",
                     heartbeat_at="2020-01-01T00:00:00+00:00")
    store.transition(alive["id"], (JobState.queued,), JobState.running, worker="w2", heartbeat_at=now())
    store.transition(mine["id"], (JobState.queued,), JobState.running, worker="w3", heartbeat_at=now())
    assert store.interrupt_stale(30) == [silent["id"]]
    assert store.mark_interrupted("w3") == [mine["id"]]  # a restarted w3 takes back only its own
    assert [store.get(j["id"])["state"] for j in (silent, alive, mine)] == ["interrupted", "running", "interrupted"]
    store.close()


def test_a_servers_own_results_file_is_copied_into_the_database_once(tmp_path, db_url):
    from app.dicom.multipart import Part
    from app.pacs.results import LEGACY_FILE, ResultStore

    root = tmp_path / "dicom"
    root.mkdir()
    with sqlite3.connect(root / LEGACY_FILE) as db:  # the table as a server kept it before the shared database
        db.execute("CREATE TABLE results (id TEXT PRIMARY KEY, study_uid TEXT NOT NULL, source_sop_class_uid TEXT "
                   "NOT NULL, source_sop_instance_uid TEXT NOT NULL, state TEXT NOT NULL, error TEXT, prediction TEXT, "
                   "probability REAL, threshold REAL, model TEXT, sc_sop_instance_uid TEXT, sr_sop_instance_uid TEXT, "
                   "delivery TEXT NOT NULL DEFAULT 'not_configured', attempts INTEGER NOT NULL DEFAULT 0, "
                   "next_attempt_at REAL, delivery_error TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
                   "delivered_at REAL, pm_sop_instance_uid TEXT, priority TEXT)")
        db.execute("INSERT INTO results (id, study_uid, source_sop_class_uid, source_sop_instance_uid, state, "
                   "prediction, probability, delivery, created_at, updated_at) VALUES ('r1', '1.2.3', '1.2.840', "
                   "'1.2.3.4', 'done', 'NORMAL', 0.1, 'delivered', 1.0, 2.0)")
    engine = make_engine(migrated(db_url))
    store = ResultStore(root, engine, owner="r")
    row = store.get("r1")
    assert row["state"] == "done" and row["probability"] == 0.1 and row["fhir_delivery"] == "not_configured"
    assert not (root / LEGACY_FILE).exists() and (root / (LEGACY_FILE + ".adopted")).exists()
    rid = store.add("1.2.9", "1.2.840", "1.2.9.1", Part(body=io.BytesIO(b"x")))
    assert store.claim(rid) and not store.claim(rid) and store.get(rid)["owner"] == "r"
    store.close()
    engine.dispose()
