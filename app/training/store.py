"""SQLite (WAL) job store: the single source of truth for fine-tuning jobs, shared by the server and workers."""

from __future__ import annotations

import datetime as dt
import json
from enum import Enum
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

from app.core.sqlite import open_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    request TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    model TEXT,
    model_version TEXT,
    promoted INTEGER,
    promotion_reason TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    resume INTEGER NOT NULL DEFAULT 0,
    pid INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
"""


class JobState(str, Enum):
    """queued -> running -> succeeded | failed | cancelled; running -> interrupted (server died) -> queued."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"


class JobKind(str, Enum):
    """What a job does: fine-tune (POST /train) or refit the operating point (POST /models/{name}/calibrate)."""

    train = "train"
    calibrate = "calibrate"


ACTIVE_STATES = (JobState.queued, JobState.running)  # they count against CXR_TRAIN_QUEUE_SIZE
_JSON_FIELDS = ("request", "progress", "metrics")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class JobStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = open_wal(self.path, SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)").fetchall()}
        if "model" not in columns:  # a job table from before the model name had its own column
            self._db.execute("ALTER TABLE jobs ADD COLUMN model TEXT")

    def close(self) -> None:
        self._db.close()

    def _row(self, row: sqlite3.Row | None) -> dict[str, Any] | None:
        if row is None:
            return None
        job = dict(row)
        for key in _JSON_FIELDS:
            job[key] = json.loads(job[key]) if job[key] else ({} if key != "metrics" else [])
        job["promoted"] = None if job["promoted"] is None else bool(job["promoted"])
        return job

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        job_id = uuid.uuid4().hex[:12]
        with self._lock:
            self._db.execute("INSERT INTO jobs (id, state, created_at, request) VALUES (?, 'queued', ?, ?)",
                             (job_id, now(), json.dumps(request)))
        return self.get(job_id)  # type: ignore[return-value]

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._row(self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def list(self, *, limit: int = 20, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
                                    (limit, offset)).fetchall()
            total = self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        return [self._row(r) for r in rows], int(total)  # type: ignore[misc]

    def update(self, job_id: str, **fields: Any) -> None:
        if not fields:
            return
        for key in _JSON_FIELDS:
            if key in fields:
                fields[key] = json.dumps(fields[key])
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*fields.values(), job_id))

    def transition(self, job_id: str, from_states: tuple[JobState, ...], to_state: JobState, **fields: Any) -> bool:
        """Atomically move a job between states; False when it was in none of ``from_states``."""
        for key in _JSON_FIELDS:
            if key in fields:
                fields[key] = json.dumps(fields[key])
        sets = ", ".join(["state = ?", *(f"{k} = ?" for k in fields)])
        marks = ", ".join("?" for _ in from_states)
        with self._lock:
            cur = self._db.execute(f"UPDATE jobs SET {sets} WHERE id = ? AND state IN ({marks})",
                                   (to_state.value, *fields.values(), job_id, *(s.value for s in from_states)))
        return cur.rowcount == 1

    def fail(self, job_id: str, error: str) -> bool:
        """A running job ends failed with ``error`` (what GET /train/{id} shows)."""
        return self.transition(job_id, (JobState.running,), JobState.failed, finished_at=now(), error=error[:500],
                               pid=None)

    def count_active(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM jobs WHERE state IN (?, ?)", [s.value for s in ACTIVE_STATES]).fetchone()[0])

    def next_queued(self) -> dict[str, Any] | None:
        with self._lock:
            return self._row(self._db.execute(
                "SELECT * FROM jobs WHERE state = 'queued' ORDER BY created_at, rowid LIMIT 1").fetchone())

    def cancel_requested(self, job_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def mark_interrupted(self) -> list[str]:
        """At server start: jobs left 'running' by a dead server become 'interrupted' (resumable)."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE state = 'running'").fetchall()]
            self._db.execute("UPDATE jobs SET state = 'interrupted', pid = NULL, error = "
                             "'the server stopped while this job was running; POST /train/{id}/resume continues it' "
                             "WHERE state = 'running'")
        return ids
