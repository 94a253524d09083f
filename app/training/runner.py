"""Runs queued fine-tuning jobs one at a time, each in its own worker process (app/training/worker.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool

from app.core.config import Settings
from app.core.aio import cancel_and_wait
from app.errors import BadRequest, JobNotFound, TrainQueueFull
from app.training.datasets.store import DatasetStore
from app.training.store import ACTIVE_STATES, DATABASE_ENV, JobState, JobStore, now

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_S = 5.0  # how often (at most) a running job's runner writes its heartbeat; a third of the timeout if shorter


def runner_name(settings: Settings) -> str:
    """How this process's job runner appears in the job table (CXR_WORKER_NAME, else the host name)."""
    return settings.worker_name or socket.gethostname()


class Promoter(Protocol):
    """Makes a finished fine-tune the active model: the server's registry (load, verify, swap, name it in the
    database) or, in a separate worker, app.training.standalone.PointerPromoter (verify, name it)."""

    def activate(self, name: str) -> object: ...


class JobRunner:
    def __init__(self, settings: Settings, store: JobStore, registry: Promoter,
                 datasets: DatasetStore | None = None, *, embedded: bool = True) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.embedded = embedded  # the server's own runner (the only one) or a `cxr worker`
        self.datasets = datasets
        self._next_expiry = 0.0
        self._proc: asyncio.subprocess.Process | None = None
        self._job_id: str | None = None
        self._cancel_seen: float | None = None
        self._task: asyncio.Task | None = None
        self.name = runner_name(settings)
        self._beat = 0.0

    # -- API used by the routes -------------------------------------------------------------
    def submit(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.store.count_active() >= self.settings.train_queue_size:
            raise TrainQueueFull(f"{self.settings.train_queue_size} training jobs are already queued or running; retry later")
        return self.store.create(request)

    def get(self, job_id: str) -> dict[str, Any]:
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFound(f"no training job {job_id!r}")
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id)
        if job["state"] == JobState.queued and self.store.transition(job_id, (JobState.queued,), JobState.cancelled,
                                                                     finished_at=now()):
            return self.get(job_id)
        if job["state"] == JobState.running:
            self.store.update(job_id, cancel_requested=1)
            return self.get(job_id)
        raise BadRequest(f"job {job_id} is {job['state']}; only queued or running jobs can be cancelled")

    def resume(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id)
        if self.store.count_active() >= self.settings.train_queue_size:
            raise TrainQueueFull("the training queue is full; retry later")
        if not self.store.transition(job_id, (JobState.interrupted,), JobState.queued, resume=1, error=None, cancel_requested=0):
            raise BadRequest(f"job {job_id} is {job['state']}; only interrupted jobs can be resumed")
        return self.get(job_id)

    # -- the loop ---------------------------------------------------------------------------
    def start(self) -> None:
        """Run queued jobs from now on. What this runner's name was running died with its previous process (an
        embedded runner also takes back jobs from before runners had names); other runners' jobs are theirs until
        their heartbeat goes stale."""
        interrupted = self.store.mark_interrupted(self.name, unowned=self.embedded)
        if interrupted:
            log.warning("marked %d job(s) interrupted after a restart: %s", len(interrupted), ", ".join(interrupted))
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="cxr-jobs")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()  # the job is marked interrupted at the next start
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except asyncio.TimeoutError:
                self._proc.kill()

    async def _loop(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job runner tick failed")
            await asyncio.sleep(0.5)

    def _expire_datasets(self) -> None:
        """Uploaded datasets past CXR_DATASET_RETENTION_DAYS go, unless a queued or running job needs them."""
        if self.datasets is None or not self.settings.dataset_retention_days or time.monotonic() < self._next_expiry:
            return
        self._next_expiry = time.monotonic() + 3600
        rows, _ = self.store.list(limit=1000)
        in_use = {Path(r["request"].get("dataset_dir", "")).name for r in rows if r["state"] in ACTIVE_STATES}
        in_use |= {r["request"].get("dataset", "") for r in rows if r["state"] in ACTIVE_STATES}
        gone = self.datasets.expire(self.settings.dataset_retention_days, in_use)
        if gone:
            log.info("deleted %d dataset(s) past the retention period", len(gone))

    async def _tick(self) -> None:
        self._expire_datasets()
        # at least three heartbeats per timeout: a live runner's job never looks stale to the others
        if time.monotonic() - self._beat > min(HEARTBEAT_S, self.settings.heartbeat_timeout_s / 3):
            self._beat = time.monotonic()
            if self._job_id is not None:
                self.store.update(self._job_id, heartbeat_at=now())
            stale = self.store.interrupt_stale(self.settings.heartbeat_timeout_s)
            if stale:
                log.warning("job(s) %s: their runner stopped reporting for %.0f s; marked interrupted (resumable)",
                            ", ".join(stale), self.settings.heartbeat_timeout_s)
        if self._proc is None:
            job = self.store.next_queued()
            if job is not None:
                await self._launch(job)
            return
        job_id = self._job_id
        assert job_id is not None
        if self._proc.returncode is None:
            if self.store.cancel_requested(job_id):
                self._cancel_seen = self._cancel_seen or time.monotonic()
                if time.monotonic() - self._cancel_seen > self.settings.cancel_grace_s:
                    self._proc.kill()  # it did not stop between steps in time
            return
        code = self._proc.returncode
        self._proc, self._job_id, self._cancel_seen = None, None, None
        job = self.store.get(job_id)
        if job is None:
            return
        if job["state"] == JobState.running:  # the worker died without recording an outcome
            reason = "cancelled" if job["cancel_requested"] else f"worker exited with code {code}"
            state = JobState.cancelled if job["cancel_requested"] else JobState.failed
            self.store.transition(job_id, (JobState.running,), state, finished_at=now(),
                                  error=None if state is JobState.cancelled else reason,
                                  pid=None)
            log.warning("job %s: %s", job_id, reason)
        elif job["state"] == JobState.succeeded and job["promoted"]:
            try:
                await run_in_threadpool(self.registry.activate, job["model"])
            except Exception as exc:
                self.store.update(job_id, promoted=0, promotion_reason=f"activation failed: {exc}")
                log.error("job %s: promotion of %s failed: %s", job_id, job["model"], exc)

    async def _launch(self, job: dict[str, Any]) -> None:
        if not self.store.transition(job["id"], (JobState.queued,), JobState.running, started_at=now(), cancel_requested=0,
                                     worker=self.name, heartbeat_at=now()):
            return  # another runner claimed it first
        state = self.settings.state_dir
        log_dir = state / "jobs" / job["id"]
        log_dir.mkdir(parents=True, exist_ok=True)
        threads = str(self.settings.train_threads)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, DATABASE_ENV: self.store.url}
        if self.settings.malloc_arena_max:  # the worker's allocator, as the server's (app/core/allocator.py)
            env.setdefault("MALLOC_ARENA_MAX", str(self.settings.malloc_arena_max))
        with open(log_dir / "job.log", "ab") as logf:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app.training.worker", "--job", job["id"],
                "--state-dir", str(state), "--nice", str(self.settings.train_nice), cwd=str(ROOT), env=env,
                stdout=logf, stderr=logf,
                start_new_session=True,
            )
        self._job_id = job["id"]
        self.store.update(job["id"], pid=self._proc.pid)
        log.info("job %s started (pid %d)", job["id"], self._proc.pid)

    def kill_worker(self) -> None:
        """Tests and faults: kill -9 the running worker."""
        if self._proc is not None and self._proc.returncode is None:
            os.kill(self._proc.pid, signal.SIGKILL)
