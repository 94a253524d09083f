"""Audit-trail benchmark: what a record costs a request, and how a large trail answers.

  .venv/bin/python benchmarks/audit.py [--records 1000000] [--requests 200]

Prints ONE JSON line:
- ``append``: AuditStore.append (validate, chain, insert, WAL) p50/p99 in ms over 5,000 records, and
  SHA-256 of a 1 MB upload (the input hash a record carries);
- ``predict``: /predict p50 for one real 224-px radiograph from two real servers started here, one with
  CXR_AUDIT=on and one with off, requests alternated between them;
- ``trail``: a generated trail of ``--records`` records (chained as the store chains them, 1 in 200 a
  refusal, 3 model versions, random input hashes), then GET /audit page times (100 records) for
  filters on outcome, model, input hash and a one-hour time window, through the real route (TestClient),
  median of 20 after warm-up, and `cxr audit verify` over the whole trail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.audit.record import GENESIS, AuditKind, AuditOutcome, canonical  # noqa: E402
from app.audit.store import AuditStore  # noqa: E402
from app.audit.verify import readonly_engine, verify_chain  # noqa: E402
from app.db.engine import DEFAULT_FILE, make_engine  # noqa: E402
from benchmarks.timing import median_ms  # noqa: E402
from tests.live_server import start_server, wait_ready  # noqa: E402
from tests.synth import encode, radiograph  # noqa: E402


def append_cost(folder: Path) -> dict[str, float]:
    store = AuditStore(make_engine(f"sqlite:///{folder / 'append.sqlite3'}"))
    times = []
    for i in range(5000):
        t = time.perf_counter()
        store.append({"kind": AuditKind.predict, "outcome": AuditOutcome.screened, "status": 200, "route": "/predict",
                      "request_id": f"{i:032x}", "caller": "key:1a2b3c4d/predict", "client": "10.0.0.7",
                      "latency_ms": 31.4, "input": {"sha256": "ab" * 32, "format": "dicom", "bytes": 1_048_576},
                      "model": {"name": "efficientnet_lite0_soup", "version": "1.1.0", "sha256": "cd" * 32},
                      "integrity": {"accepted": True, "code": "accepted", "score": 0.99},
                      "p_pneumonia": 0.7312, "label": "PNEUMONIA", "threshold": 0.45})
        times.append((time.perf_counter() - t) * 1000)
    store.engine.dispose()
    blob = os.urandom(1_048_576)
    return {"append_p50_ms": round(statistics.median(times), 4),
            "append_p99_ms": round(float(np.percentile(times, 99)), 4),
            "sha256_1mb_ms": median_ms(lambda: hashlib.sha256(blob).hexdigest(), reps=50)}


def predict_on_off(requests: int) -> dict[str, float]:
    body = encode(radiograph(224, 0), "JPEG", quality=90)
    servers = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for audit in ("on", "off"):
                servers[audit] = start_server({"CXR_AUTH": "off", "CXR_RATE_LIMIT_PER_MIN": "0", "CXR_AUDIT": audit,
                                               "CXR_STATE_DIR": f"{tmp}/{audit}", "CXR_THREADS": "1"})
            for proc, url in servers.values():
                wait_ready(proc, url)
            times: dict[str, list[float]] = {"on": [], "off": []}
            with httpx.Client(timeout=30) as client:
                for i in range(requests + 10):
                    for audit, (_, url) in servers.items():
                        t = time.perf_counter()
                        r = client.post(f"{url}/predict?heatmap=none", files={"file": ("a.jpg", body)})
                        r.raise_for_status()
                        if i >= 10:
                            times[audit].append((time.perf_counter() - t) * 1000)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(30)
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    return {"p50_ms_audit_on": round(on, 2), "p50_ms_audit_off": round(off, 2), "added_ms": round(on - off, 2)}


def generate(path: Path, n: int) -> None:
    """``n`` records chained exactly as AuditStore.append chains them (canonical JSON, SHA-256), bulk-inserted."""
    rng = np.random.default_rng(0)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    models = [("efficientnet_lite0_soup", "1.0.0"), ("efficientnet_lite0_soup", "1.1.0"), ("resnet18", "1.0.1")]
    AuditStore(make_engine(f"sqlite:///{path}")).engine.dispose()  # creates the schema and triggers
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    prev, rows = GENESIS, []
    for seq in range(1, n + 1):
        name, version = models[seq * 7 % 3]
        refused = seq % 200 == 0
        when = (start + dt.timedelta(seconds=seq * 30)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = {"seq": seq, "time": when, "kind": "predict", "outcome": "not_evaluated" if refused else "screened",
                "status": 422 if refused else 200, "route": "/predict", "caller": "key:1a2b3c4d/predict",
                "input": {"sha256": rng.bytes(32).hex(), "format": "png", "bytes": 200_000},
                "model": {"name": name, "version": version}, "latency_ms": 30.0, "prev_hash": prev}
        if not refused:
            body.update(p_pneumonia=round(float(rng.random()), 4), label="NORMAL", threshold=0.45)
        text = canonical(body)
        digest = hashlib.sha256(text.encode()).hexdigest()
        rows.append((seq, when, "predict", body["outcome"], f"{name}@{version}", body["input"]["sha256"], text, digest))
        prev = digest
        if len(rows) == 50_000:
            db.execute("BEGIN")
            db.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)", rows)
            db.execute("COMMIT")
            rows = []
    if rows:
        db.execute("BEGIN")
        db.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)", rows)
        db.execute("COMMIT")
    db.close()


def trail_queries(folder: Path, n: int) -> dict[str, object]:
    from fastapi.testclient import TestClient

    from app.core.config import Settings
    from app.main import create_app

    state = folder / "state"
    state.mkdir()
    t0 = time.perf_counter()
    generate(state / DEFAULT_FILE, n)  # the trail lives in the service's database (SQLite by default)
    generated_s = time.perf_counter() - t0
    db = sqlite3.connect(state / DEFAULT_FILE)
    some_hash = db.execute("SELECT input_sha256 FROM audit WHERE seq = ?", (n // 2,)).fetchone()[0]
    db.close()
    settings = Settings(state_dir=state, auth="off", rate_limit_per_min=0, log_json=False)
    queries = {"outcome=not_evaluated": {"outcome": "not_evaluated"},
               "model=resnet18@1.0.1": {"model": "resnet18@1.0.1"},
               "model=efficientnet_lite0_soup": {"model": "efficientnet_lite0_soup"},
               "input_sha256": {"input_sha256": some_hash},
               "one hour window": {"since": "2026-06-01T00:00:00Z", "until": "2026-06-01T01:00:00Z"},
               "late cursor, no filter": {"cursor": n - 150}}
    out: dict[str, object] = {"records": n, "generated_s": round(generated_s, 1),
                              "file_mb": round((state / DEFAULT_FILE).stat().st_size / 1e6, 1)}
    with TestClient(create_app(settings, configure_logs=False)) as c:
        for label, params in queries.items():
            def get() -> None:
                r = c.get("/audit", params={**params, "limit": 100})
                r.raise_for_status()
            out[f"page_ms {label}"] = median_ms(get, reps=20, warmup=3)
    t0 = time.perf_counter()
    report = verify_chain(readonly_engine(state / DEFAULT_FILE))
    out["verify_s"] = round(time.perf_counter() - t0, 1)
    out["verify_ok"] = report.ok and report.records == n + 0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = {"benchmark": "audit", "append": append_cost(Path(tmp)),
                  "predict": predict_on_off(args.requests), "trail": trail_queries(Path(tmp), args.records)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
