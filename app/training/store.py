"""The job store: the single source of truth for fine-tuning and calibration jobs, shared by the server
and its workers. SQLAlchemy Core on the shared database (app/db): SQLite by default, PostgreSQL when
CXR_DATABASE_URL names one; every state change is one conditional UPDATE, so two processes never both
move a job."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from enum import Enum
from typing import Any

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.engine import Row

from app.db.engine import make_engine
from app.db.migrate import ensure_schema
from app.db.schema import jobs


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
DATABASE_ENV = "CXR_JOB_DATABASE_URL"  # how a worker process is handed the database (not in argv: a password)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_schema(engine)

    @classmethod
    def open(cls, url: str) -> JobStore:
        return cls(make_engine(url))

    @property
    def url(self) -> str:
        """What a worker process is given to reach the same database (password included: argv of a child)."""
        return self.engine.url.render_as_string(hide_password=False)

    def close(self) -> None:
        self.engine.dispose()

    @staticmethod
    def _row(row: Row | None) -> dict[str, Any] | None:
        if row is None:
            return None
        job = dict(row._mapping)
        for key in _JSON_FIELDS:
            job[key] = json.loads(job[key]) if job[key] else ({} if key != "metrics" else [])
        job["promoted"] = None if job["promoted"] is None else bool(job["promoted"])
        return job

    @staticmethod
    def _encode(fields: dict[str, Any]) -> dict[str, Any]:
        return {k: json.dumps(v) if k in _JSON_FIELDS else v for k, v in fields.items()}

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        job_id = uuid.uuid4().hex[:12]
        with self.engine.begin() as conn:
            conn.execute(jobs.insert().values(id=job_id, state=JobState.queued.value, created_at=now(),
                                              request=json.dumps(request)))
        return self.get(job_id)  # type: ignore[return-value]

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return self._row(conn.execute(select(jobs).where(jobs.c.id == job_id)).first())

    def list(self, *, limit: int = 20, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
                                .limit(limit).offset(offset)).all()
            total = conn.execute(select(func.count()).select_from(jobs)).scalar_one()
        return [self._row(r) for r in rows], int(total)  # type: ignore[misc]

    def update(self, job_id: str, **fields: Any) -> None:
        if not fields:
            return
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(**self._encode(fields)))

    def transition(self, job_id: str, from_states: tuple[JobState, ...], to_state: JobState, **fields: Any) -> bool:
        """Atomically move a job between states; False when it was in none of ``from_states``."""
        values = {"state": to_state.value, **self._encode(fields)}
        with self.engine.begin() as conn:
            cur = conn.execute(jobs.update().where(jobs.c.id == job_id,
                                                   jobs.c.state.in_([s.value for s in from_states])).values(**values))
        return cur.rowcount == 1

    def fail(self, job_id: str, error: str) -> bool:
        """A running job ends failed with ``error`` (what GET /train/{id} shows)."""
        return self.transition(job_id, (JobState.running,), JobState.failed, finished_at=now(), error=error[:500],
                               pid=None)

    def count_active(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(jobs).where(
                jobs.c.state.in_([s.value for s in ACTIVE_STATES]))).scalar_one())

    def next_queued(self) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return self._row(conn.execute(select(jobs).where(jobs.c.state == JobState.queued.value)
                                          .order_by(jobs.c.created_at, jobs.c.id).limit(1)).first())

    def cancel_requested(self, job_id: str) -> bool:
        with self.engine.connect() as conn:
            value = conn.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar_one_or_none()
        return bool(value)

    def mark_interrupted(self, worker: str | None = None, *, unowned: bool = False) -> list[str]:
        """At a runner's start: jobs left 'running' by its dead predecessor become 'interrupted' (resumable):
        all of them (``worker`` None), or those of that runner name (and, with ``unowned``, those no runner
        name claimed: written before runners had names)."""
        where: list[Any] = [jobs.c.state == JobState.running.value]
        if worker is not None:
            where.append(or_(jobs.c.worker == worker, jobs.c.worker.is_(None)) if unowned else jobs.c.worker == worker)
        return self._interrupt(where, "the runner of this job stopped while it ran; POST /train/{id}/resume continues it")

    def interrupt_stale(self, timeout_s: float) -> list[str]:
        """Running jobs whose runner has not written its heartbeat for ``timeout_s`` (it died, or its machine)."""
        cutoff = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=timeout_s)).isoformat(timespec="microseconds")
        return self._interrupt([jobs.c.state == JobState.running.value, jobs.c.heartbeat_at.is_not(None),
                                jobs.c.heartbeat_at < cutoff],
                               f"its runner stopped reporting for {timeout_s:g} s; POST /train/{{id}}/resume continues it")

    def _interrupt(self, where: list[Any], error: str) -> list[str]:
        with self.engine.begin() as conn:
            ids = list(conn.execute(select(jobs.c.id).where(*where)).scalars())
            if ids:
                conn.execute(jobs.update().where(jobs.c.id.in_(ids), jobs.c.state == JobState.running.value).values(
                    state=JobState.interrupted.value, pid=None, error=error))
        return ids
