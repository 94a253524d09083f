"""A job in its own process (fine-tunes here; calibrations in app/training/calibration_job.py): ``python -m app.training.worker --job ID``
with the database's URL in $CXR_JOB_DATABASE_URL (or ``--db URL``).

It reuses the training code of `cxr train` (models.package.train_and_package), reports progress
and per-epoch metrics into the job database, stops between steps when the job is cancelled, and publishes
the new version atomically: written to a temporary folder, renamed into ``models/`` only when
complete. Promotion (swapping the serving model) is the server's business, not the worker's.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.training.calibration_job import run_calibration
from app.training.spec import CalibrationSpec, load_spec
from app.training.store import DATABASE_ENV, JobState, JobStore, now
from models.config import TrainConfig
from models.errors import CXRError
from models.package import PREDICTIONS_FILE, train_and_package
from models.train import TrainingCancelled
from models.card import CARD_FILE, read_card
from models.card_markdown import MARKDOWN_FILE

log = logging.getLogger("app.training.worker")


MIN_INTEGRITY_ACCEPTED = 0.95


def promotion_decision(card: Any) -> tuple[bool, str]:
    """Promote only if validation AUROC and sensitivity at the threshold do not drop, and the integrity
    check accepts the version's own validation images (else the site's images would be refused)."""
    checked = (getattr(card, "integrity", None) or {}).get("accepted")
    if checked is not None and checked < MIN_INTEGRITY_ACCEPTED:
        return False, (f"the integrity check accepts only {checked:.1%} of this version's validation images "
                       f"(needs {MIN_INTEGRITY_ACCEPTED:.0%}): images like these would be refused; refit the guard "
                       "with them (cxr integrity fit)")
    new, base = card.metrics.get("val"), (card.base_metrics or {}).get("val")
    if new is None or base is None:
        return False, "no base-model metrics on the same validation split"
    if new.auroc < base.auroc:
        return False, f"validation AUROC {new.auroc:.4f} is below the base model's {base.auroc:.4f}"
    if new.sensitivity < base.sensitivity:
        return False, f"sensitivity {new.sensitivity:.4f} is below the base model's {base.sensitivity:.4f}"
    return True, f"validation AUROC {new.auroc:.4f} >= base {base.auroc:.4f}, sensitivity kept"


def _check_integrity(cfg: TrainConfig, card: Any, guard_dir: Path, out: Path) -> Any:
    """The guard that serves in front of every version, run over this version's validation images;
    the result goes into the new card (and its Markdown) before the version is published."""
    from models.card import write_card
    from models.card_markdown import write_markdown
    from models.integrity.check import check_version_images
    from models.integrity.guard import load_guard
    from models.package import split_samples

    result = check_version_images([s.path for s in split_samples(cfg)["val"]], load_guard(guard_dir))
    log.info("integrity check of the new version's validation images: %s of %s accepted", result["accepted"],
             result["n"])
    card = card.model_copy(update={"integrity": result})
    write_card(out, card)
    write_markdown(out, card)
    return card


def run_job(store: JobStore, job_id: str, state_dir: Path) -> int:
    job = store.get(job_id)
    if job is None:
        log.error("job %s does not exist", job_id)
        return 2
    out = state_dir / "jobs" / job_id / "out"
    try:
        spec = load_spec(job["request"])
        if isinstance(spec, CalibrationSpec):
            return run_calibration(store, job_id, spec, state_dir)
        cfg = spec.train_config(read_card(Path(spec.base_model_dir)), out, job_id=job_id,
                                resume=bool(job.get("resume")))
    except (ValidationError, CXRError) as exc:  # a request from an older server, or a base model gone since
        store.fail(job_id, exc.detail if isinstance(exc, CXRError) else f"invalid job request: {str(exc)[:300]}")
        return 1
    last_write = 0.0
    last_event: dict[str, Any] = {}
    metrics: list[dict[str, Any]] = list(job["metrics"]) if cfg.resume else []

    def on_progress(event: dict[str, Any]) -> None:
        nonlocal last_write, last_event
        if "epoch_done" in event:
            metrics.append(event["epoch_done"])
            store.update(job_id, metrics=metrics)
            return
        last_event = event
        if time.monotonic() - last_write > 1.0:
            store.update(job_id, progress=event)
            last_write = time.monotonic()

    try:
        card = train_and_package(cfg, command=f"POST /train job {job_id}", on_progress=on_progress,
                                 should_stop=lambda: store.cancel_requested(job_id), compare_with=Path(spec.base_model_dir))
        if spec.integrity_guard_dir:
            card = _check_integrity(cfg, card, Path(spec.integrity_guard_dir), out)
        final = state_dir / "models" / card.name
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = out.with_name("publish")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for name in (card.weights_file, CARD_FILE, MARKDOWN_FILE, PREDICTIONS_FILE):
            if (out / name).exists():
                shutil.copy2(out / name, staging / name)
        os.replace(staging, final)  # atomic: a half-written version is never visible
        shutil.rmtree(out, ignore_errors=True)  # checkpoints and scratch (job.log stays), gone before "succeeded"
        promote, reason = promotion_decision(card) if spec.auto_promote else (False, "auto_promote is off")
        store.transition(job_id, (JobState.running,), JobState.succeeded, finished_at=now(), model=card.name,
                         model_version=card.version,
                         promoted=int(promote), promotion_reason=reason, pid=None,
                         progress={**last_event, "epoch": card.training.epochs_run, "eta_s": 0.0, "done": True})
        return 0
    except TrainingCancelled:
        store.transition(job_id, (JobState.running,), JobState.cancelled, finished_at=now(), pid=None)
        return 0
    except CXRError as exc:
        store.fail(job_id, exc.detail)
        return 1
    except MemoryError:
        store.fail(job_id, "out of memory")
        return 1
    except Exception as exc:  # anything else: recorded, never lost
        log.exception("job %s failed", job_id)
        store.fail(job_id, f"{type(exc).__name__}: {exc}")
        return 1


def yield_cpu(nice: int) -> None:
    """Lower this process's priority so training yields the CPU to inference. The worker runs in its
    own session (so a cancel can kill its whole group), and with the kernel's autogroup scheduling
    (on by default in most distributions) a new session is a new scheduling group that competes with
    the server's as an equal, whatever the process's nice value: so the group's nice is set too."""
    os.nice(nice)
    try:
        Path("/proc/self/autogroup").write_text(f"{nice}\n")
    except OSError:  # no autogroup (kernel option off, or not Linux): the process nice value is enough
        pass


def die_with_parent() -> None:
    """Linux: the kernel kills this process when its runner dies, even by kill -9 (a job is never trained on
    by an orphan that nobody watches; its runner's successor marks it interrupted, and it resumes from its
    last epoch checkpoint)."""
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux/glibc: the heartbeat timeout still catches the runner's death
        return
    if os.getppid() != parent:  # the runner died before the call took effect (the runner may be PID 1: compare)
        os._exit(3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.training.worker")
    ap.add_argument("--db", default=None, help="the job database's URL (default: $CXR_JOB_DATABASE_URL, which "
                    "keeps a password out of the process list)")
    ap.add_argument("--job", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--nice", type=int, default=19)
    args = ap.parse_args(argv)
    die_with_parent()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.nice:
        yield_cpu(args.nice)
    url = args.db or os.environ.get(DATABASE_ENV)
    if not url:
        ap.error(f"--db or {DATABASE_ENV} is required")
    store = JobStore.open(url)
    try:
        return run_job(store, args.job, Path(args.state_dir))
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
