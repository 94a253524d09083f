"""Soak: mixed traffic from 32 clients against a real server while a fine-tuning job runs. ONE JSON line.

  .venv/bin/python benchmarks/soak.py --minutes 30      # the real soak
  .venv/bin/python benchmarks/soak.py --minutes 1       # CI-size

Traffic: valid PNG, JPEG and 16-bit DICOM uploads, plus 10 % bad inputs (truncated, text,
no pixel data) whose 4xx are expected. Reports requests, responses by status, unexpected
errors (5xx, failed connections, or a 4xx for a valid image), p50/p99 of valid requests and
the server's RSS after warm-up and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.predict import rss_mb  # noqa: E402
from tests.live_server import start_server, wait_ready  # noqa: E402
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=32)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root / "data" / "site", per_class=150, size=256, splits=("train",))
        proc, url = start_server({"CXR_AUTH": "off", "CXR_RATE_LIMIT_PER_MIN": "0", "CXR_LOG_LEVEL": "WARNING",
                                  "CXR_STATE_DIR": str(root / "state"), "CXR_DATA_ROOT": str(root / "data"),
                                  "CXR_QUEUE_SIZE": "256"}, capture=False)
        try:
            wait_ready(proc, url)
            asyncio.run(traffic(url, 20, args.clients))  # warm-up at full concurrency: buffers, arenas, threads
            rss_start = rss_mb(proc.pid)
            job = httpx.post(f"{url}/train", json={"dataset": "site/train", "epochs": 100, "batch_size": 8}).json()
            result = asyncio.run(traffic(url, args.minutes * 60, args.clients))
            job_state = httpx.get(f"{url}/train/{job['id']}").json()
            httpx.delete(f"{url}/train/{job['id']}")
            rss_end = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(json.dumps({"minutes": args.minutes, "clients": args.clients, **result,
                      "training_job": {"state_during": job_state["state"], "epochs_done": len(job_state["metrics"])},
                      "rss_mb": {"after_warmup": rss_start, "end": rss_end, "growth": round(rss_end - rss_start, 1)}}))


if __name__ == "__main__":
    main()
