"""Replicas benchmark: /predict through nginx with 1 and 2 `cxr serve` replicas on one PostgreSQL, and what
PostgreSQL costs a request against SQLite. Prints ONE JSON line.

  .venv/bin/python benchmarks/replicas.py [--seconds 20] [--clients 8] [--requests 150]

Needs Debian's postgresql and nginx (scripts/install_postgres.sh, scripts/install_nginx.sh); both run here
on loopback. Every server serves the shipped default model with the integrity check on and the audit trail
on (one database write per request), the image a real radiograph from ../shared/data as a 512² PNG
(``chest_like`` without the data), heatmap off (the JSON answer a PACS router asks for) and, in the
``*_overlay`` rows, with the Grad-CAM overlay PNG in the answer (what a viewer asks for).

- ``backend_overhead``: two single servers, one on SQLite and one on PostgreSQL, requests alternated
  between them one at a time: p50 of each and the difference (the issue's target: ≤ 2 ms); plus
  AuditStore.append p50 on each backend (the per-request write).
- ``through_nginx``: ``--clients`` concurrent clients for ``--seconds`` through nginx to 1 replica, then to 2
  replicas (each with ``CXR_THREADS`` = cores / replicas, so both set-ups use the same cores): requests/s,
  p50/p95, failures, and requests/s per core (what the README's sizing section divides by).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.audit.record import AuditKind, AuditOutcome  # noqa: E402
from app.audit.store import AuditStore  # noqa: E402
from app.db.engine import make_engine  # noqa: E402
from tests.live_server import BENCH_ENV, start_server, wait_ready  # noqa: E402
from tests.nginx import balancer  # noqa: E402
from tests.postgres import fresh_database, migrated, postgres_server  # noqa: E402
from tests.synth import encode, radiograph  # noqa: E402

CORES = os.cpu_count() or 1


def _servers(envs: list[dict[str, str]]) -> list[tuple[object, str]]:
    started = [start_server(BENCH_ENV | env, capture=False) for env in envs]
    for proc, base in started:
        wait_ready(proc, base, timeout=300)
    return started


def _stop(started: list[tuple[object, str]]) -> None:
    for proc, _ in started:
        proc.terminate()  # type: ignore[attr-defined]
        proc.wait(timeout=60)  # type: ignore[attr-defined]


def append_p50(url: str, n: int = 1000) -> float:
    store = AuditStore(make_engine(url))
    times = []
    for i in range(n):
        t = time.perf_counter()
        store.append({"kind": AuditKind.predict, "outcome": AuditOutcome.screened, "status": 200, "route": "/predict",
                      "request_id": f"{i:032x}", "input": {"sha256": "ab" * 32, "format": "png", "bytes": 200_000},
                      "model": {"name": "m", "version": "1", "sha256": "cd" * 32}, "p_pneumonia": 0.5})
        times.append((time.perf_counter() - t) * 1000)
    store.engine.dispose()
    return round(statistics.median(times), 3)


def backend_overhead(pg_url: str, folder: Path, image: bytes, requests: int) -> dict[str, float]:
    sqlite_state, pg_state = folder / "sqlite", folder / "pg"
    started = _servers([{"CXR_STATE_DIR": str(sqlite_state)},
                        {"CXR_STATE_DIR": str(pg_state), "CXR_DATABASE_URL": pg_url}])
    times: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    try:
        with httpx.Client(timeout=60) as c:
            for i in range(requests + 10):
                for name, (_, base) in zip(("sqlite", "postgresql"), started if i % 2 else started[::-1]):
                    t = time.perf_counter()
                    r = c.post(f"{base}/predict", params={"heatmap": "none"}, files={"file": ("x.png", image)})
                    r.raise_for_status()
                    if i >= 10:  # warm-up
                        times[name].append((time.perf_counter() - t) * 1000)
    finally:
        _stop(started)
    sqlite_p50, pg_p50 = statistics.median(times["sqlite"]), statistics.median(times["postgresql"])
    return {"predict_p50_ms_sqlite": round(sqlite_p50, 2), "predict_p50_ms_postgresql": round(pg_p50, 2),
            "added_ms": round(pg_p50 - sqlite_p50, 2),
            "audit_append_p50_ms_sqlite": append_p50(f"sqlite:///{folder / 'append.sqlite3'}"),
            "audit_append_p50_ms_postgresql": append_p50(pg_url)}


def load(url: str, image: bytes, clients: int, seconds: float, heatmap: str = "none") -> dict[str, float]:
    latencies: list[float] = []
    failures = [0]
    stop = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(timeout=120) as c:
            while time.monotonic() < stop:
                t = time.perf_counter()
                try:
                    ok = c.post(f"{url}/predict", params={"heatmap": heatmap},
                                files={"file": ("x.png", image)}).status_code == 200
                except httpx.TransportError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - t) * 1000)
                else:
                    failures[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rps = len(latencies) / (time.monotonic() - t0)
    return {"requests_per_s": round(rps, 2), "per_core": round(rps / CORES, 2),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p95_ms": round(float(np.percentile(latencies, 95)), 1),
            "failures": failures[0]}


def through_nginx(pg_url: str, folder: Path, image: bytes, clients: int, seconds: float) -> dict[str, object]:
    out: dict[str, object] = {}
    for replicas in (1, 2):
        state = folder / f"state{replicas}"
        env = {"CXR_STATE_DIR": str(state), "CXR_DATABASE_URL": pg_url, "CXR_WORKERS": "external",
               "CXR_THREADS": str(max(1, CORES // replicas))}
        started = _servers([env | {"CXR_WORKER_NAME": f"r{i}"} for i in range(replicas)])
        try:
            with balancer([base for _, base in started]) as (lb, _):
                load(lb, image, clients, 3)  # warm-up
                label = f"{replicas}_replica{'s' if replicas > 1 else ''}"
                out[label] = load(lb, image, clients, seconds)
                out[f"{label}_overlay"] = load(lb, image, clients, seconds, heatmap="overlay")
        finally:
            _stop(started)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=150)
    args = ap.parse_args()
    image = encode(radiograph(512))
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as server:
        folder = Path(tmp)
        result = {"benchmark": "replicas", "cores": CORES,
                  "backend_overhead": backend_overhead(migrated(fresh_database(server)), folder, image, args.requests),
                  "through_nginx": through_nginx(migrated(fresh_database(server)), folder, image, args.clients,
                                                 args.seconds)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
