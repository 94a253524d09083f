"""The audit store: SQLite (WAL), append-only, each record chained to the one before.

UPDATE and DELETE are refused by triggers; the only removal is retention (``prune``), which deletes
a prefix of the chain and appends a ``retention`` record naming the last removed record's hash, so
what remains still verifies. Each append reads the chain's head and inserts in one write transaction
(serialised by SQLite, across processes too), so a crash loses at most the record being written.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.audit.record import GENESIS, AuditKind, AuditOutcome, AuditRecord, audit_time, canonical
from app.core.sqlite import open_wal

_GUARDS = """
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    model TEXT,
    input_sha256 TEXT,
    body TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);
CREATE INDEX IF NOT EXISTS audit_outcome ON audit (outcome, seq);
CREATE INDEX IF NOT EXISTS audit_model ON audit (model, seq);
CREATE INDEX IF NOT EXISTS audit_input ON audit (input_sha256, seq);
CREATE TABLE IF NOT EXISTS feedback (
    record_seq INTEGER NOT NULL,
    reader TEXT NOT NULL,
    label TEXT NOT NULL,
    comment TEXT,
    time TEXT NOT NULL,
    audit_seq INTEGER NOT NULL,
    PRIMARY KEY (record_seq, reader)
);
""" + _GUARDS


@dataclass(frozen=True)
class AuditFilter:
    since: str | None = None  # ISO time, inclusive
    until: str | None = None  # ISO time, exclusive
    model: str | None = None  # name or name@version
    outcome: AuditOutcome | None = None
    input_sha256: str | None = None
    kind: AuditKind | None = None


def _record(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(**json.loads(row["body"]), hash=row["hash"])


class AuditStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = open_wal(self.path, SCHEMA)

    def close(self) -> None:
        self._db.close()

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest record: write it down elsewhere to detect a rewritten chain."""
        with self._lock:
            last = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(last["seq"]), str(last["hash"])) if last else (0, GENESIS)

    def append(self, fields: dict[str, Any]) -> AuditRecord:
        """Chain and store one record (``fields``: AuditRecord fields other than seq, prev_hash, hash).
        The head is read inside the write transaction, so several processes sharing the file still
        build one chain."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                last = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (int(last["seq"]), str(last["hash"])) if last else (0, GENESIS)
                body = {k: v for k, v in fields.items() if v is not None}
                body.setdefault("time", audit_time())
                body.update(seq=seq + 1, prev_hash=prev)
                record = AuditRecord(**body, hash="0" * 64)  # validates before anything is written
                text = canonical(record.model_dump(mode="json", exclude={"hash"}, exclude_none=True))
                digest = _sha256(text)
                model = f"{record.model.name}@{record.model.version}" if record.model else None
                self._db.execute(
                    "INSERT INTO audit (seq, time, kind, outcome, model, input_sha256, body, hash) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (record.seq, record.time, record.kind.value, record.outcome.value, model,
                     record.input.sha256 if record.input else None, text, digest))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return record.model_copy(update={"hash": digest})

    def get(self, seq: int) -> AuditRecord | None:
        with self._lock:
            row = self._db.execute("SELECT body, hash FROM audit WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else _record(row)

    def latest_screening(self, input_sha256: str) -> AuditRecord | None:
        """The newest screened record of these input bytes."""
        with self._lock:
            row = self._db.execute("SELECT body, hash FROM audit WHERE input_sha256 = ? AND outcome = 'screened' "
                                   "ORDER BY seq DESC LIMIT 1", (input_sha256,)).fetchone()
        return None if row is None else _record(row)

    def save_feedback(self, record_seq: int, reader: str, label: str, comment: str | None, audit_seq: int) -> bool:
        """The reader's current verdict on a record (a later one replaces it); True when it replaced one."""
        with self._lock:
            replaced = self._db.execute("SELECT 1 FROM feedback WHERE record_seq = ? AND reader = ?",
                                        (record_seq, reader)).fetchone() is not None
            self._db.execute("INSERT OR REPLACE INTO feedback VALUES (?, ?, ?, ?, ?, ?)",
                             (record_seq, reader, label, comment, audit_time(), audit_seq))
        return replaced

    def feedback_cases(self, since: str | None, until: str | None, *, model: str | None = None
                       ) -> list[tuple[int, str, str, str | None, str | None]]:
        """(record_seq, reader, label, input_sha256, model name@version) of the current verdicts on records
        in [since, until), of ``model`` (name or name@version) when given."""
        where, args = ["a.time >= ?", "a.time < ?"], [since or "", until or "9999"]
        if model:
            clause, more = _model_clause(model, column="a.model")
            where.append(clause)
            args += more
        with self._lock:
            rows = self._db.execute(
                "SELECT f.record_seq, f.reader, f.label, a.input_sha256, a.model FROM feedback f JOIN audit a "
                f"ON a.seq = f.record_seq WHERE {' AND '.join(where)} ORDER BY f.record_seq", args).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2]), r[3], r[4]) for r in rows]

    def page(self, flt: AuditFilter, *, after: int = 0, limit: int = 100) -> list[AuditRecord]:
        """Records matching ``flt`` with seq > ``after``, oldest first (cursor pagination by seq)."""
        where, args = ["seq > ?"], [after]
        if flt.since:
            where.append("time >= ?")
            args.append(flt.since)
        if flt.until:
            where.append("time < ?")
            args.append(flt.until)
        if flt.model:
            clause, more = _model_clause(flt.model)
            where.append(clause)
            args += more
        if flt.outcome:
            where.append("outcome = ?")
            args.append(flt.outcome.value)
        if flt.kind:
            where.append("kind = ?")
            args.append(flt.kind.value)
        if flt.input_sha256:
            where.append("input_sha256 = ?")
            args.append(flt.input_sha256)
        # the limit is written into the SQL (an int): bound as a parameter, SQLite plans for an unknown
        # limit and walks the whole table in seq order instead of using the filter's index
        sql = f"SELECT body, hash FROM audit WHERE {' AND '.join(where)} ORDER BY seq LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_record(r) for r in rows]

    def iterate(self, flt: AuditFilter, *, chunk: int = 1000) -> Iterator[AuditRecord]:
        after = 0
        while True:
            rows = self.page(flt, after=after, limit=chunk)
            if not rows:
                return
            yield from rows
            after = rows[-1].seq

    def prune(self, cutoff: str) -> AuditRecord | None:
        """Remove every record older than ``cutoff`` (ISO UTC) except the newest, then append a
        ``retention`` record saying what went and which hash the remaining chain continues from."""
        with self._lock:
            newest = self._db.execute("SELECT MAX(seq) FROM audit").fetchone()[0] or 0
            row = self._db.execute("SELECT seq, hash FROM audit WHERE time < ? AND seq < ? ORDER BY seq DESC LIMIT 1",
                                   (cutoff, newest)).fetchone()
            if row is None:
                return None
            through, anchor = int(row["seq"]), str(row["hash"])
            first = self._db.execute("SELECT MIN(seq) FROM audit").fetchone()[0]
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DROP TRIGGER audit_no_delete")
                removed = self._db.execute("DELETE FROM audit WHERE seq <= ?", (through,)).rowcount
                self._db.execute("CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
                                 "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.append({"kind": AuditKind.retention, "outcome": AuditOutcome.pruned,
                            "detail": f"records {first}..{through} older than {cutoff} removed by the retention policy",
                            "extra": {"removed_from": first, "removed_through": through, "removed": removed,
                                      "anchor_hash": anchor}})


def _model_clause(model: str, *, column: str = "model") -> tuple[str, list[str]]:
    """SQL matching a model given as name@version, or as a name (every version of it)."""
    prefix = model.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "@%"
    return f"({column} = ? OR {column} LIKE ? ESCAPE '\\')", [model, prefix]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
