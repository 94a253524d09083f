"""The audit trail in the shared database, on both backends (SQLite, a real PostgreSQL from Debian's
packages): the guards refuse changes, retention still verifies, two processes build one chain, a server's
own audit file is copied in once, and `cxr audit verify` checks a database URL read-only."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.audit.record import AuditKind, AuditOutcome
from app.audit.store import AuditStore
from app.audit.verify import readonly_engine
from app.db.engine import make_engine
from tests.postgres import fresh_database, migrated, pg_server  # noqa: F401 (pg_server: a fixture)
from tests.test_audit import APPENDER, _fill, verify_chain as _verify

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return migrated(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    return migrated(fresh_database(request.getfixturevalue("pg_server")))


@pytest.fixture()
def store(db_url: str) -> Iterator[AuditStore]:
    s = AuditStore(make_engine(db_url))
    yield s
    s.engine.dispose()


@pytest.mark.parametrize("sql", ["UPDATE audit SET outcome = 'error' WHERE seq = 2", "DELETE FROM audit WHERE seq = 2",
                                 "DELETE FROM audit"])
def test_the_trail_refuses_changes(store, db_url, sql):
    _fill(store, 3)
    with pytest.raises(DBAPIError, match="append-only"):
        with store.engine.begin() as conn:
            conn.execute(text(sql))
    assert _verify(db_url).records == 3


def test_postgresql_refuses_truncate_and_a_read_only_verify_cannot_write(pg_server):
    url = migrated(fresh_database(pg_server))
    store = AuditStore(make_engine(url))
    _fill(store, 2)
    with pytest.raises(DBAPIError, match="append-only"):
        with store.engine.begin() as conn:
            conn.execute(text("TRUNCATE audit"))
    ro = readonly_engine(url)
    with pytest.raises(DBAPIError, match="read-only transaction"):
        with ro.begin() as conn:
            conn.execute(text("INSERT INTO feedback VALUES (1, 'r', 'NORMAL', NULL, 't', 1)"))
    ro.dispose()
    store.engine.dispose()


def test_retention_in_one_transaction_and_what_remains_verifies(store, db_url):
    _fill(store, 5, time="2020-01-01T00:00:00.000Z")
    _fill(store, 3)
    record = store.prune("2021-01-01T00:00:00.000Z")
    assert record is not None and record.seq == 9 and record.extra["removed"] == 5
    assert store.prune("2021-01-01T00:00:00.000Z") is None
    report = _verify(db_url)
    assert report.ok and (report.records, report.first_seq, report.last_seq) == (4, 6, 9)
    with pytest.raises(DBAPIError, match="append-only"):  # the guard is back after the sweep
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM audit WHERE seq = 9"))


def test_feedback_upsert_on_both_backends(store):
    _fill(store, 1)
    assert store.save_feedback(1, "dr-a", "NORMAL", None, 2) is False
    assert store.save_feedback(1, "dr-a", "PNEUMONIA", "see prior", 3) is True
    assert [c[:3] for c in store.feedback_cases("2000", None)] == [(1, "dr-a", "PNEUMONIA")]


def test_two_processes_build_one_chain(db_url):
    AuditStore(make_engine(db_url)).engine.dispose()  # the schema, as `cxr db upgrade` or a server's start makes it
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, db_url, "150"], cwd=ROOT) for _ in range(3)]
    assert [p.wait(180) for p in procs] == [0, 0, 0]
    report = _verify(db_url)
    assert report.ok and report.records == 450 and report.last_seq == 450


def _legacy_file(path: Path, n: int) -> str:
    """A server's own audit.sqlite3 from before the shared database, with ``n`` records and one verdict."""
    store = AuditStore(make_engine(f"sqlite:///{path}"))
    _fill(store, n)
    store.save_feedback(1, "dr-b", "NORMAL", "c", 2)
    store.engine.dispose()
    return _verify(str(path)).head_hash or ""


def test_a_servers_own_audit_file_is_copied_in_once_and_still_verifies(tmp_path, db_url):
    legacy = tmp_path / "state" / "audit.sqlite3"
    legacy.parent.mkdir()
    head = _legacy_file(legacy, 4)
    store = AuditStore(make_engine(db_url), legacy=legacy)
    assert not legacy.exists() and legacy.with_name("audit.sqlite3.adopted").is_file()
    report = _verify(db_url)
    assert report.ok and report.records == 4 and report.head_hash == head
    assert store.append({"kind": AuditKind.predict, "outcome": AuditOutcome.screened}).prev_hash == head
    assert [c[:3] for c in store.feedback_cases("2000", None)] == [(1, "dr-b", "NORMAL")]
    # a second server's file cannot be joined to a chain that already has records: it stays as it is
    other = tmp_path / "other" / "audit.sqlite3"
    other.parent.mkdir()
    _legacy_file(other, 2)
    AuditStore(store.engine, legacy=other)
    assert other.is_file() and _verify(db_url).records == 5
    store.engine.dispose()


def test_cxr_audit_verify_reads_a_database_url(pg_server):
    url = migrated(fresh_database(pg_server))
    store = AuditStore(make_engine(url))
    _fill(store, 5)
    store.engine.dispose()

    def cxr(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app.cli", "audit", "verify", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    ok = cxr("--db", url)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) | {"head_hash": None} == {"ok": True, "records": 5, "first_seq": 1, "last_seq": 5,
                                                           "head_hash": None, "breaks": []}
    gone = cxr("--db", url.rsplit("/", 1)[0] + "/no_such_db")  # a database that is not there: a reason, exit 2
    assert gone.returncode == 2 and "cannot read postgresql" in gone.stderr and "no_such_db" in gone.stderr
