"""Drift and performance monitoring from the audit trail (GET /monitoring, Prometheus gauges).

Per model version over a time window: volume, refusals by reason, positive rate, the histogram of
P(PNEUMONIA) and its population stability index (PSI) against the card's reference distribution, and,
on the cases readers gave feedback on, agreement, sensitivity and specificity (95 % Wilson intervals)
and ECE, the reader's label taken as the truth. ``drift`` is raised with its reason when PSI > 0.2
(at least MIN_CASES screened) or the positive rate leaves the card's expected band.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections import Counter, defaultdict
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.audit.record import AuditKind, AuditOutcome, audit_time
from app.audit.store import AuditFilter, AuditStore
from app.errors import BadRequest
from models.card import ModelCard
from models.metrics import expected_calibration_error, population_stability_index, score_fractions, wilson_interval

log = logging.getLogger(__name__)
PSI_DRIFT = 0.2
MIN_CASES = 50  # fewer screened images than this: PSI and the positive rate are reported, not judged
_WINDOW = re.compile(r"^(\d{1,4})([mhd])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400}


def parse_window(text: str) -> dt.timedelta:
    m = _WINDOW.match(text)
    if not m or int(m.group(1)) == 0:
        raise BadRequest(f"window {text!r} must be a number and a unit, m, h or d (e.g. 30m, 24h, 7d)")
    span = dt.timedelta(seconds=int(m.group(1)) * _UNIT_S[m.group(2)])
    if span > dt.timedelta(days=366):
        raise BadRequest("window must be at most 366d")
    return span


class Proportion(BaseModel):
    value: float | None
    ci95: tuple[float, float] | None
    n: int


class FeedbackFigures(BaseModel):
    cases: int = Field(description="verdicts on screened images of this version in the window")
    agreement: Proportion
    sensitivity: Proportion = Field(description="model PNEUMONIA among cases the reader called PNEUMONIA")
    specificity: Proportion
    ece: float | None


class VersionMonitoring(BaseModel):
    model: str
    version: str
    volume: int = Field(description="images screened or refused")
    screened: int
    refusals: dict[str, int] = Field(description="integrity refusal reason -> images")
    refusal_rate: float | None
    positive_rate: float | None
    expected_positive_rate: tuple[float, float] | None
    histogram: list[float] = Field(description="share of screened images per 0.1-wide bin of P(PNEUMONIA)")
    psi: float | None = Field(description="population stability index against the card's reference")
    feedback: FeedbackFigures
    drift: bool
    reasons: list[str]


class MonitoringReport(BaseModel):
    window: str
    since: str
    until: str
    versions: list[VersionMonitoring]


def _proportion(hits: int, n: int) -> Proportion:
    if n == 0:
        return Proportion(value=None, ci95=None, n=0)
    lo, hi = wilson_interval(hits, n)
    return Proportion(value=round(hits / n, 4), ci95=(round(lo, 4), round(hi, 4)), n=n)


def _feedback(cases: list[tuple[str, float, str]]) -> FeedbackFigures:
    """``cases``: (model label, P(PNEUMONIA), reader label)."""
    agree = sum(m == r for m, _, r in cases)
    pos = [(m, r) for m, _, r in cases if r == "PNEUMONIA"]
    neg = [(m, r) for m, _, r in cases if r == "NORMAL"]
    ece = (round(expected_calibration_error(np.array([r == "PNEUMONIA" for _, _, r in cases], dtype=int),
                                            np.array([p for _, p, _ in cases])), 4) if cases else None)
    return FeedbackFigures(cases=len(cases), agreement=_proportion(agree, len(cases)),
                           sensitivity=_proportion(sum(m == "PNEUMONIA" for m, _ in pos), len(pos)),
                           specificity=_proportion(sum(m == "NORMAL" for m, _ in neg), len(neg)), ece=ece)


class _Seen(NamedTuple):
    """What monitoring needs of one record: the window's records are read 1,000 at a time and only
    these stay (keeping the records themselves held ~100 MB per 65,000 and grew the heap in steps)."""

    outcome: AuditOutcome
    code: str | None
    p_pneumonia: float | None
    label: str | None
    seq: int


def monitor(store: AuditStore, cards: dict[str, ModelCard], window: str, *,
            now: dt.datetime | None = None) -> MonitoringReport:
    until = now or dt.datetime.now(dt.timezone.utc)
    since = until - parse_window(window)
    since_s, until_s = audit_time(since), audit_time(until)
    groups: dict[str, list[_Seen]] = defaultdict(list)
    for record in store.iterate(AuditFilter(since=since_s, until=until_s)):
        if record.kind in (AuditKind.predict, AuditKind.stow_instance) and record.model is not None and \
                record.outcome in (AuditOutcome.screened, AuditOutcome.not_evaluated):
            groups[f"{record.model.name}@{record.model.version}"].append(_Seen(
                record.outcome, record.integrity.code if record.integrity else None, record.p_pneumonia,
                record.label, record.seq))
    verdicts: dict[int, list[str]] = defaultdict(list)
    for seq, _, label, _, _ in store.feedback_cases(since_s, until_s):
        verdicts[seq].append(label)
    versions = []
    for ref, records in sorted(groups.items()):
        name, version = ref.split("@", 1)
        screened = [r for r in records if r.outcome is AuditOutcome.screened and r.p_pneumonia is not None]
        refusals = Counter(r.code or "unknown" for r in records if r.outcome is AuditOutcome.not_evaluated)
        p = np.array([r.p_pneumonia for r in screened], dtype=np.float64)
        histogram = score_fractions(p)
        positive = round(float(np.mean([r.label == "PNEUMONIA" for r in screened])), 4) if screened else None
        card = cards.get(ref)
        reference = card.reference if card is not None else None
        psi = round(population_stability_index(reference.fractions, histogram), 4) if reference and screened else None
        reasons = []
        if reference is None:
            reasons.append("no reference distribution in the card (site calibration writes one): PSI not computed")
        elif len(screened) < MIN_CASES:
            reasons.append(f"{len(screened)} screened images (< {MIN_CASES}): not enough to judge drift")
        else:
            if psi is not None and psi > PSI_DRIFT:
                reasons.append(f"PSI {psi:.3f} > {PSI_DRIFT} against the card's reference ({reference.data})")
            lo, hi = reference.expected_positive_rate
            if positive is not None and not lo <= positive <= hi:
                reasons.append(f"positive rate {positive:.3f} outside the expected band {lo:.3f}-{hi:.3f}")
        cases = [(r.label, r.p_pneumonia, label) for r in screened for label in verdicts.get(r.seq, [])]
        drift = reference is not None and len(screened) >= MIN_CASES and bool(reasons)
        versions.append(VersionMonitoring(
            model=name, version=version, volume=len(records), screened=len(screened), refusals=dict(refusals),
            refusal_rate=round(sum(refusals.values()) / len(records), 4), positive_rate=positive,
            expected_positive_rate=reference.expected_positive_rate if reference else None, histogram=histogram,
            psi=psi, feedback=_feedback(cases), drift=drift, reasons=reasons))
    return MonitoringReport(window=window, since=since_s, until=until_s, versions=versions)


def publish(report: MonitoringReport, metrics: Any) -> None:
    """The report's figures as Prometheus gauges (cxr_monitor_*), one series per model version."""
    for v in report.versions:
        labels = (v.model, v.version)
        metrics.monitor_positive_rate.labels(*labels).set(v.positive_rate if v.positive_rate is not None else float("nan"))
        metrics.monitor_refusal_rate.labels(*labels).set(v.refusal_rate if v.refusal_rate is not None else float("nan"))
        metrics.monitor_psi.labels(*labels).set(v.psi if v.psi is not None else float("nan"))
        metrics.monitor_drift.labels(*labels).set(1.0 if v.drift else 0.0)


def cards_by_ref(entries: list[Any]) -> dict[str, ModelCard]:
    """name@version -> card, from the model catalog's entries."""
    return {f"{e.card.name}@{e.card.version}": e.card for e in entries}


def refresh(store: AuditStore, entries: Any, metrics: Any, window: str = "7d") -> MonitoringReport:
    """The report for ``window`` over the models ``entries()`` lists, published as gauges (blocking)."""
    report = monitor(store, cards_by_ref(entries()), window)
    publish(report, metrics)
    return report


async def refresh_loop(store: AuditStore, entries: Any, metrics: Any, *, window: str = "7d",
                       every_s: float = 600.0) -> None:
    """Keep the cxr_monitor_* gauges current between GET /monitoring calls (every ``every_s``)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await run_in_threadpool(refresh, store, entries, metrics, window)
        except Exception:
            log.exception("monitoring: gauge refresh failed")
