"""SQLite (WAL) record of every STOW-RS instance taken in and the results produced for it.

One row per source instance: inference state (queued → processing → done | not_evaluated | failed) and
delivery state to each target, the PACS and the FHIR server (not_configured | pending → delivered |
failed), each with its own attempts and next attempt. Files live beside it: the incoming instance
until it is processed, then the result objects CXR_DICOM_OUTPUTS names (``sr.dcm``, ``pm.dcm``,
``sc.dcm``; only the SR for an image the integrity check refused: state not_evaluated, the reason in
``error``) and the FHIR Bundle (``fhir.json``) when a FHIR server is configured.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO

from app.core.files import write_atomic
from app.core.sqlite import open_wal
from app.dicom.multipart import Part

PRIVATE = 0o600  # instances and results carry patient data


class ResultState(str, Enum):
    queued = "queued"
    processing = "processing"
    done = "done"
    not_evaluated = "not_evaluated"  # the integrity check refused it: the SR alone says so
    failed = "failed"


class DeliveryState(str, Enum):
    not_configured = "not_configured"  # no CXR_PACS_STOW_URL
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class Target(str, Enum):
    pacs = "pacs"
    fhir = "fhir"


@dataclass(frozen=True)
class TargetColumns:
    state: str
    attempts: str
    next_attempt_at: str
    error: str
    delivered_at: str


COLUMNS = {
    Target.pacs: TargetColumns("delivery", "attempts", "next_attempt_at", "delivery_error", "delivered_at"),
    Target.fhir: TargetColumns("fhir_delivery", "fhir_attempts", "fhir_next_attempt_at", "fhir_error",
                               "fhir_delivered_at"),
}
OUTPUT_ORDER = ("sr", "pm", "sc")  # delivery order: the report before the images
FHIR_FILE = "fhir.json"
# columns added after the first release: (name, declaration); added to an older file on open
ADDED_COLUMNS = (
    ("pm_sop_instance_uid", "TEXT"), ("priority", "TEXT"),
    ("fhir_delivery", "TEXT NOT NULL DEFAULT 'not_configured'"), ("fhir_attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("fhir_next_attempt_at", "REAL"), ("fhir_error", "TEXT"), ("fhir_delivered_at", "REAL"),
)

DELIVERABLE = (ResultState.done, ResultState.not_evaluated)  # states with instances to send
_DELIVERABLE_SQL = "(" + ", ".join(f"'{s.value}'" for s in DELIVERABLE) + ")"

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL,
    source_sop_class_uid TEXT NOT NULL,
    source_sop_instance_uid TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    prediction TEXT,
    probability REAL,
    threshold REAL,
    model TEXT,
    sc_sop_instance_uid TEXT,
    sr_sop_instance_uid TEXT,
    delivery TEXT NOT NULL DEFAULT 'not_configured',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    delivery_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS results_study ON results (study_uid);
CREATE INDEX IF NOT EXISTS results_source ON results (source_sop_instance_uid);
CREATE INDEX IF NOT EXISTS results_delivery ON results (delivery, next_attempt_at);
"""


class ResultStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.incoming = self.root / "incoming"
        self.outputs = self.root / "results"
        self.spool = self.root / "spool"  # STOW-RS parts while a request is read (same file system: moved, not copied)
        for folder in (self.incoming, self.outputs, self.spool):
            folder.mkdir(parents=True, exist_ok=True)
        for stale in self.spool.iterdir():  # parts of requests a crash interrupted
            stale.unlink(missing_ok=True)
        self._lock = threading.Lock()
        self._db = open_wal(self.root / "results.sqlite3", SCHEMA)
        have = {r[1] for r in self._db.execute("PRAGMA table_info(results)")}
        for name, declaration in ADDED_COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE results ADD COLUMN {name} {declaration}")

    def close(self) -> None:
        self._db.close()

    # -- files ------------------------------------------------------------------------------
    def incoming_path(self, result_id: str) -> Path:
        return self.incoming / f"{result_id}.dcm"

    def folder(self, result_id: str) -> Path:
        return self.outputs / result_id

    def save_outputs(self, result_id: str, objects: dict[str, bytes], fhir: bytes | None = None) -> None:
        """``objects``: kind (sr, pm, sc) -> Part-10 bytes; ``fhir``: the Bundle, when one is delivered."""
        folder = self.folder(result_id)
        folder.mkdir(parents=True, exist_ok=True)
        for kind, data in objects.items():
            write_atomic(folder / f"{kind}.dcm", data, mode=PRIVATE)
        if fhir is not None:
            write_atomic(folder / FHIR_FILE, fhir, mode=PRIVATE)

    def load_outputs(self, result_id: str) -> list[bytes]:
        """The result's Part-10 objects in delivery order; OSError when there are none on disk."""
        folder = self.folder(result_id)
        found = [folder / f"{kind}.dcm" for kind in OUTPUT_ORDER if (folder / f"{kind}.dcm").is_file()]
        if not found:
            raise FileNotFoundError(f"no result objects for {result_id}")
        return [path.read_bytes() for path in found]

    def load_fhir(self, result_id: str) -> list[bytes]:
        return [(self.folder(result_id) / FHIR_FILE).read_bytes()]

    # -- rows -------------------------------------------------------------------------------
    def spool_file(self) -> tuple[BinaryIO, Path]:
        """A new private file for one STOW-RS part (the caller removes what it does not ``add``)."""
        fd, name = tempfile.mkstemp(dir=self.spool, prefix="part-", suffix=".dcm")
        os.fchmod(fd, PRIVATE)
        return os.fdopen(fd, "w+b"), Path(name)

    def add(self, study_uid: str, sop_class_uid: str, sop_instance_uid: str, source: Part) -> str:
        """Persist an accepted instance (file first, then the row: a crash leaves no row without its file).
        A spooled part is synced and renamed into place; an in-memory one is written."""
        result_id = uuid.uuid4().hex[:16]
        if source.path is not None:
            source.body.flush()
            os.fsync(source.body.fileno())
            os.replace(source.path, self.incoming_path(result_id))
        else:
            write_atomic(self.incoming_path(result_id), source.data, mode=PRIVATE)
        t = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO results (id, study_uid, source_sop_class_uid, source_sop_instance_uid, state, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, ?)",
                (result_id, study_uid, sop_class_uid, sop_instance_uid, t, t))
        return result_id

    def find_source(self, sop_instance_uid: str) -> dict[str, Any] | None:
        """The live (not failed) result of a source instance, if it was received before."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM results WHERE source_sop_instance_uid = ? AND state != 'failed' "
                "ORDER BY created_at DESC LIMIT 1", (sop_instance_uid,)).fetchone()
        return dict(row) if row else None

    def update(self, result_id: str, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            self._db.execute(f"UPDATE results SET {cols} WHERE id = ?", (*fields.values(), result_id))

    def get(self, result_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM results WHERE id = ?", (result_id,)).fetchone()
        return dict(row) if row else None

    def by_study(self, study_uid: str, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM results WHERE study_uid = ? ORDER BY created_at, rowid LIMIT ? OFFSET ?",
                (study_uid, limit, offset)).fetchall()
        return [dict(r) for r in rows]

    def recent(self, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM results ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
                                    (limit, offset)).fetchall()
        return [dict(r) for r in rows]

    def count_waiting(self) -> int:
        with self._lock:
            return int(self._db.execute(
                "SELECT COUNT(*) FROM results WHERE state IN ('queued', 'processing')").fetchone()[0])

    def unfinished(self) -> list[str]:
        """At start: instances a stopped server had accepted but not processed, oldest first."""
        with self._lock:
            self._db.execute("UPDATE results SET state = 'queued' WHERE state = 'processing'")
            return [r[0] for r in self._db.execute(
                "SELECT id FROM results WHERE state = 'queued' ORDER BY created_at, rowid").fetchall()]

    def purge(self, older_than: float) -> int:
        """Delete results (rows and files) created before ``older_than`` (epoch seconds) that need
        nothing more: done or not evaluated and delivered (or with no PACS configured), or failed. Results still
        waiting for inference or delivery are kept whatever their age."""
        with self._lock:
            ids = [r[0] for r in self._db.execute(
                "SELECT id FROM results WHERE created_at < ? AND (state = 'failed' OR (state IN "
                + _DELIVERABLE_SQL + " AND "
                "delivery IN ('delivered', 'not_configured') AND fhir_delivery IN ('delivered', 'not_configured')))",
                (older_than,)).fetchall()]
        for result_id in ids:
            self.incoming_path(result_id).unlink(missing_ok=True)
            folder = self.folder(result_id)
            if folder.is_dir():
                for path in folder.iterdir():
                    path.unlink(missing_ok=True)
                folder.rmdir()
            with self._lock:
                self._db.execute("DELETE FROM results WHERE id = ?", (result_id,))
        return len(ids)

    def due_deliveries(self, now: float, target: Target = Target.pacs, limit: int = 16) -> list[dict[str, Any]]:
        c = COLUMNS[target]
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM results WHERE {c.state} = 'pending' AND state IN " + _DELIVERABLE_SQL + " AND "
                f"({c.next_attempt_at} IS NULL OR {c.next_attempt_at} <= ?) "
                f"ORDER BY {c.next_attempt_at}, created_at LIMIT ?", (now, limit)).fetchall()
        return [dict(r) for r in rows]

    def next_due_at(self, target: Target = Target.pacs) -> float | None:
        c = COLUMNS[target]
        with self._lock:
            row = self._db.execute(f"SELECT MIN(COALESCE({c.next_attempt_at}, 0)) FROM results "
                                   f"WHERE {c.state} = 'pending' AND state IN " + _DELIVERABLE_SQL).fetchone()
        return None if row is None or row[0] is None else float(row[0])
