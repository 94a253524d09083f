"""Soak: mixed traffic from 32 clients against a real server while a fine-tuning job runs. ONE JSON line.

  .venv/bin/python benchmarks/soak.py --minutes 30 --plot docs/soak_rss.png   # the real soak
  .venv/bin/python benchmarks/soak.py --minutes 1                             # CI-size

Traffic: valid PNG, JPEG and 16-bit DICOM uploads, plus 10 % bad inputs (truncated, text,
no pixel data) whose 4xx are expected. Reports requests, responses by status, unexpected
errors (5xx, failed connections, or a 4xx for a valid image), p50/p99 of valid requests, and
the RSS of the server (and, apart, of its training worker) every 30 s from the end of the
warm-up: the whole series, the steady state (median from minute 10), growth from minute 10 to
the end, and the peak. ``--plot`` draws the series as a small PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.predict import rss_mb  # noqa: E402
from tests.live_server import BENCH_ENV, start_server, wait_ready  # noqa: E402
from tests.synth import dicom_bytes, encode, radiograph, write_dataset  # noqa: E402


def inputs() -> tuple[list[tuple[bytes, str]], list[tuple[bytes, str]]]:
    img = radiograph(512, 3)
    good = [(encode(img), "image/png"), (encode(img, "JPEG"), "image/jpeg"),
            (dicom_bytes(img.astype(np.uint16) * 16, bits=12), "application/dicom")]
    bad = [(encode(img)[:500], "image/png"), (b"not an image" * 10, "image/png"),
           (dicom_bytes(img, with_pixels=False), "application/dicom")]
    return good, bad


async def traffic(url: str, seconds: float, clients: int) -> dict:
    good, bad = inputs()
    statuses: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    rng = random.Random(0)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as c:
        async def client() -> None:
            while time.monotonic() < deadline:
                is_bad = rng.random() < 0.1
                body, ctype = rng.choice(bad if is_bad else good)
                t = time.perf_counter()
                try:
                    r = await c.post(f"{url}/predict", content=body, headers={"content-type": ctype})
                except httpx.HTTPError as exc:
                    unexpected[type(exc).__name__] += 1
                    continue
                statuses[str(r.status_code)] += 1
                if r.status_code >= 500 or (not is_bad and r.status_code != 200) or (is_bad and r.status_code < 400):
                    unexpected[str(r.status_code)] += 1
                if not is_bad:
                    latencies.append((time.perf_counter() - t) * 1000)

        await asyncio.gather(*[client() for _ in range(clients)])
    q = np.percentile(latencies, [50, 99]) if latencies else [float("nan")] * 2
    return {"requests": sum(statuses.values()), "by_status": dict(statuses), "unexpected_errors": dict(unexpected),
            "p50_ms": round(float(q[0]), 1), "p99_ms": round(float(q[1]), 1)}


def children_rss_mb(pid: int) -> float:
    """RSS of the server's child processes (the training worker), summed."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                total += rss_mb(int(child))
            except (OSError, ValueError):
                pass  # it just ended
    return round(total, 1)


class RssSeries(threading.Thread):
    """(seconds since start, server MB, worker MB) every ``every`` seconds until stopped."""

    def __init__(self, pid: int, every: float = 30.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.rows: list[tuple[float, float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while True:
            self.rows.append((round(time.monotonic() - t0, 1), rss_mb(self.pid), children_rss_mb(self.pid)))
            if self.stop.wait(self.every):
                return

    def summary(self) -> dict:
        return summarize(self.rows, self.every)


def summarize(rows: list[tuple[float, float, float]], every: float = 30.0) -> dict:
    """Steady state and growth of the server's RSS from minute 10 on: the median, the least-squares trend
    over the window (MB from its start to its end; single samples swing +-60 MB as glibc trims), and
    the medians of its first and last five minutes."""
    window = [r for r in rows if r[0] >= 600] or list(rows)
    t = np.array([r[0] for r in window]) / 60
    mb = np.array([r[1] for r in window])
    trend = float(np.polyfit(t, mb, 1)[0] * (t[-1] - t[0])) if len(window) > 2 else None
    first, last = mb[t <= t[0] + 5], mb[t >= t[-1] - 5]
    return {"every_s": every, "series_s_server_worker": rows,
            "server_steady_median_from_minute_10": round(float(np.median(mb)), 1),
            "server_growth_trend_minute_10_to_end": None if trend is None else round(trend, 1),
            "server_median_first_5_min_of_window": round(float(np.median(first)), 1),
            "server_median_last_5_min_of_window": round(float(np.median(last)), 1),
            "server_peak": max(r[1] for r in rows), "worker_peak": max(r[2] for r in rows),
            "worker_median": round(float(np.median([r[2] for r in rows if r[2] > 0] or [0])), 1)}


def plot(rows: list[tuple[float, float, float]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r[0] / 60 for r in rows]
    fig, ax = plt.subplots(figsize=(6, 2.6), dpi=100)
    ax.plot(minutes, [r[1] for r in rows], marker=".", label="server (cxr serve)")
    ax.plot(minutes, [r[2] for r in rows], marker=".", label="training worker")
    ax.axhline(1024, color="grey", linestyle="--", linewidth=0.8, label="server target (1 GB)")
    ax.set_xlabel("minutes after warm-up")
    ax.set_ylabel("RSS (MB)")
    ax.set_ylim(0, max(1100, max(max(r[1], r[2]) for r in rows) * 1.1))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--plot", type=Path, default=None, help="write the RSS series as a PNG here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root / "data" / "site", per_class=150, size=256, splits=("train",))
        proc, url = start_server(BENCH_ENV | {"CXR_STATE_DIR": str(root / "state"), "CXR_DATA_ROOT": str(root / "data"),
                                  "CXR_QUEUE_SIZE": "256"}, capture=False)
        try:
            wait_ready(proc, url)
            asyncio.run(traffic(url, 20, args.clients))  # warm-up at full concurrency: buffers, arenas, threads
            job = httpx.post(f"{url}/train", json={"dataset": "site/train", "epochs": 100, "batch_size": 8}).json()
            series = RssSeries(proc.pid)
            series.start()
            result = asyncio.run(traffic(url, args.minutes * 60, args.clients))
            series.stop.set()
            series.join()
            job_state = httpx.get(f"{url}/train/{job['id']}").json()
            httpx.delete(f"{url}/train/{job['id']}")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    rss = series.summary()
    if args.plot is not None:
        plot(series.rows, args.plot, f"benchmarks/soak.py: {args.minutes:g} min, {args.clients} clients, "
             f"{result['requests']:,} requests, training job running")
    print(json.dumps({"minutes": args.minutes, "clients": args.clients, **result,
                      "training_job": {"state_during": job_state["state"], "epochs_done": len(job_state["metrics"])},
                      "rss_mb": rss}))


if __name__ == "__main__":
    main()
