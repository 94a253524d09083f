"""GET /monitoring: volume, refusals, positive rate, PSI against the card's reference, feedback figures, drift."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from app.audit.monitoring import MIN_CASES, monitor, parse_window
from app.audit.record import AuditKind, AuditOutcome
from app.audit.store import AuditStore
from app.db.engine import make_engine
from app.errors import BadRequest
from models.card import ScoreReference
from models.metrics import population_stability_index, wilson_interval
from tests.synth import chest_like, encode, make_model_dir

NOW = dt.datetime(2026, 6, 10, 12, 0, tzinfo=dt.timezone.utc)
REFERENCE = ScoreReference(data="site set", n=100, bin_edges=[i / 10 for i in range(11)],
                           fractions=[0.3, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.1, 0.2], positive_rate=0.4,
                           expected_positive_rate=(0.2667, 0.6))


def _screen(store: AuditStore, p: float, *, version: str = "1.1.0", hours_ago: float = 1.0) -> int:
    when = (NOW - dt.timedelta(hours=hours_ago)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return store.append({"kind": AuditKind.predict, "outcome": AuditOutcome.screened, "time": when,
                         "model": {"name": "m", "version": version}, "p_pneumonia": p, "threshold": 0.5,
                         "label": "PNEUMONIA" if p >= 0.5 else "NORMAL"}).seq


def _refuse(store: AuditStore, code: str, *, version: str = "1.1.0") -> None:
    when = (NOW - dt.timedelta(hours=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    store.append({"kind": AuditKind.predict, "outcome": AuditOutcome.not_evaluated, "time": when,
                  "model": {"name": "m", "version": version}, "integrity": {"accepted": False, "code": code}})


@pytest.fixture()
def store(tmp_path):
    s = AuditStore(make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    yield s
    s.engine.dispose()


def _card(tmp_path, reference=REFERENCE):
    card = make_model_dir(tmp_path / "m", image_size=64)
    from models.card import read_card

    return {"m@1.1.0": read_card(card).model_copy(update={"version": "1.1.0", "reference": reference})}


def test_scores_like_the_reference_are_not_drift(store, tmp_path):
    rng = np.random.default_rng(0)
    bins = rng.choice(10, size=200, p=REFERENCE.fractions)
    for b in bins:
        _screen(store, (b + rng.random()) / 10)
    _refuse(store, "not_frontal_chest")
    _refuse(store, "lateral_view")
    _screen(store, 0.9, hours_ago=24 * 8)  # outside the 7-day window
    report = monitor(store, _card(tmp_path), "7d", now=NOW)
    (v,) = report.versions
    assert (v.model, v.version, v.volume, v.screened) == ("m", "1.1.0", 202, 200)
    assert v.refusals == {"not_frontal_chest": 1, "lateral_view": 1} and v.refusal_rate == round(2 / 202, 4)
    assert v.psi is not None and v.psi < 0.1 and not v.drift and v.reasons == []
    assert sum(v.histogram) == pytest.approx(1.0, abs=1e-3)
    assert v.feedback.cases == 0 and v.feedback.agreement.value is None


def test_shifted_scores_raise_drift_with_the_reason(store, tmp_path):
    for i in range(MIN_CASES + 10):
        _screen(store, 0.55 + 0.4 * (i % 10) / 10)  # everything called PNEUMONIA, scores piled up high
    (v,) = monitor(store, _card(tmp_path), "24h", now=NOW).versions
    assert v.drift and v.positive_rate == 1.0
    assert any(r.startswith("PSI ") and "> 0.2" in r for r in v.reasons)
    assert any("positive rate 1.000 outside the expected band 0.267-0.600" in r for r in v.reasons)


def test_too_few_cases_or_no_reference_are_reported_not_judged(store, tmp_path):
    for _ in range(5):
        _screen(store, 0.99)
    (v,) = monitor(store, _card(tmp_path), "7d", now=NOW).versions
    assert not v.drift and "5 screened images (< 50)" in v.reasons[0] and v.psi is not None
    (w,) = monitor(store, _card(tmp_path, reference=None), "7d", now=NOW).versions
    assert not w.drift and w.psi is None and "no reference distribution in the card" in w.reasons[0]


def test_feedback_figures_use_the_readers_label_as_truth(store, tmp_path):
    seqs = [_screen(store, p) for p in (0.9, 0.8, 0.2, 0.1, 0.7)]
    truth = ["PNEUMONIA", "NORMAL", "NORMAL", "PNEUMONIA", "PNEUMONIA"]
    for seq, label in zip(seqs, truth):
        store.save_feedback(seq, "dr-a", label, None, audit_seq=seq)
    (v,) = monitor(store, _card(tmp_path), "7d", now=NOW).versions
    f = v.feedback
    assert f.cases == 5 and f.agreement.value == 0.6 and f.agreement.ci95 == tuple(
        round(x, 4) for x in wilson_interval(3, 5))
    assert (f.sensitivity.value, f.sensitivity.n) == (round(2 / 3, 4), 3)
    assert (f.specificity.value, f.specificity.n) == (0.5, 2) and f.ece is not None


@pytest.mark.parametrize("text", ["7", "0d", "3w", "9999d", "1d; drop"])
def test_bad_windows_are_refused(text):
    with pytest.raises(BadRequest):
        parse_window(text)


def test_psi_and_wilson_reference_values():
    assert population_stability_index([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert population_stability_index([0.5, 0.5], [0.9, 0.1]) == pytest.approx(
        0.4 * np.log(0.9 / 0.5) - 0.4 * np.log(0.1 / 0.5))
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)  # the textbook 95 % Wilson interval for 8/10


def test_monitoring_endpoint_and_gauges(client):
    png = encode(chest_like(90, 90, seed=1))
    for _ in range(3):
        assert client.post("/predict", files={"file": ("a.png", png)}).status_code == 200
    seq = client.get("/audit").json()["records"][0]["seq"]
    client.post("/feedback", json={"record": seq, "label": "PNEUMONIA"})
    r = client.get("/monitoring", params={"window": "1h"})
    assert r.status_code == 200, r.text
    (v,) = r.json()["versions"]
    assert (v["model"], v["volume"], v["screened"], v["feedback"]["cases"]) == ("tiny", 3, 3, 1)
    assert v["psi"] is None and not v["drift"]  # the test model's card has no reference distribution
    metrics = client.get("/metrics").text
    assert 'cxr_monitor_positive_rate{model="tiny",version="test-1"}' in metrics
    assert 'cxr_monitor_drift{model="tiny",version="test-1"} 0.0' in metrics
    bad = client.get("/monitoring", params={"window": "forever"})
    assert bad.status_code == 400 and "must be a number and a unit" in bad.json()["detail"]
