"""A calibration job in the worker process: refit a model's operating point on a site's images
(models.site_calibration) and publish the new version under CXR_STATE_DIR/models.

Promotion follows the fine-tunes' rule of thumb: a new version serves automatically only if it is no
worse than what serves now, judged on the same images; here by the cross-fitted figures against the
current operating point's figures on the calibration images (which did not fit it).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from app.training.spec import CalibrationSpec
from app.training.store import JobState, JobStore, now
from models.card import ModelCard
from models.errors import CXRError
from models.integrity.check import screener
from models.site_calibration import site_calibrate

log = logging.getLogger("app.training.worker")

MIN_ACCEPTED_SHARE = 0.95  # the integrity check must accept this share of the site's images (as for fine-tunes)


def calibration_promotion(card: ModelCard) -> tuple[bool, str]:
    """Promote when the cross-fitted sensitivity reaches the smaller of the target and the current operating
    point's sensitivity on these images, and the cross-fitted ECE is no worse than the current one's."""
    c = card.calibration
    if c is None:
        return False, "not a calibrated version"
    seen = sum(c.counts.values()) + c.refused
    if seen and c.refused / seen > 1 - MIN_ACCEPTED_SHARE:
        return False, (f"the integrity check refused {c.refused} of {seen} calibration images (more than "
                       f"{1 - MIN_ACCEPTED_SHARE:.0%}): images like these would be refused at this site")
    before = c.previous.get("figures_on_these_images", {})
    sens, ece = c.out_of_fold["sensitivity"].value, c.out_of_fold["ece"].value
    need = min(c.min_sensitivity, float(before.get("sensitivity", 1.0)))
    if sens < need:
        return False, f"cross-fitted sensitivity {sens:.4f} is below {need:.4f}"
    if ece > float(before.get("ece", 1.0)):
        return False, f"cross-fitted ECE {ece:.4f} is worse than the current operating point's {before['ece']:.4f}"
    return True, (f"cross-fitted sensitivity {sens:.4f} >= {need:.4f}, ECE {ece:.4f} <= current "
                  f"{float(before.get('ece', 1.0)):.4f}")


def run_calibration(store: JobStore, job_id: str, spec: CalibrationSpec, state_dir: Path) -> int:
    out = state_dir / "models" / spec.output_name(job_id)
    shutil.rmtree(out, ignore_errors=True)  # this job's own folder, left by a run that died after publishing
    guard = Path(spec.integrity_guard_dir) if spec.integrity_guard_dir else None
    try:
        card = site_calibrate(
            Path(spec.model_dir), Path(spec.dataset_dir), out, command=f"POST /models/{spec.model}/calibrate job {job_id}",
            data_label=f"dataset {spec.dataset}", min_sensitivity=spec.min_sensitivity, method=spec.method,
            min_per_class=spec.min_per_class, screen=screener(guard),
            on_progress=lambda event: store.update(job_id, progress=event))
    except CXRError as exc:
        store.fail(job_id, exc.detail)
        return 1
    except Exception as exc:  # anything else: recorded, never lost
        log.exception("job %s failed", job_id)
        store.fail(job_id, f"{type(exc).__name__}: {exc}")
        return 1
    promote, reason = calibration_promotion(card) if spec.auto_promote else (False, "auto_promote is off")
    assert card.calibration is not None
    store.transition(job_id, (JobState.running,), JobState.succeeded, finished_at=now(), model=out.name,
                     model_version=card.version, promoted=int(promote), promotion_reason=reason, pid=None,
                     metrics=[{"calibration_out_of_fold": {k: v.model_dump() for k, v in
                                                           card.calibration.out_of_fold.items()}}],
                     progress={"stage": "done", "done": True})
    log.info("job %s: calibrated %s -> %s (%s)", job_id, spec.model, out.name, reason)
    return 0
