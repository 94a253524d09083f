"""Server memory during one large STOW-RS request, and while its instances are screened. ONE JSON line.

  .venv/bin/python benchmarks/stow_memory.py [--mb 256] [--size 2048]

Sends a study of 16-bit DICOM radiographs (size x size) as ONE multipart/related request of just under
``--mb`` MB (the default CXR_MAX_STOW_BYTES is 256 MiB), streamed by the client, to a real `cxr serve`;
samples the server's RSS every 10 ms from before the request until every result is done. Reports
idle RSS, the peak while the request was being received and answered, the peak while the instances
were screened and their SR/PM/SC built, and whether all were accepted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.dicom.multipart import encode_related  # noqa: E402
from benchmarks.predict import rss_mb  # noqa: E402
from tests.live_server import BENCH_ENV, start_server, wait_ready  # noqa: E402
from tests.synth import dicom_bytes, radiograph  # noqa: E402


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.perf_counter(), rss_mb(self.pid)))
            time.sleep(0.01)

    def peak(self, start: float, end: float) -> float:
        return max(mb for t, mb in self.samples if start <= t <= end)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=256)
    ap.add_argument("--size", type=int, default=2048)
    args = ap.parse_args()
    one = dicom_bytes(radiograph(args.size).astype(np.uint16) * 16, bits=12)
    n = max(1, int(args.mb * 2**20 * 0.995) // (len(one) + 200))
    instances = [one] + [dicom_bytes(radiograph(args.size, i).astype(np.uint16) * 16, bits=12) for i in range(1, n)]
    body, ctype = encode_related(instances)
    del instances

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 1 << 20):
            yield body[i:i + (1 << 20)]

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(BENCH_ENV | {"CXR_STATE_DIR": tmp}, capture=False)
        try:
            wait_ready(proc, url)
            with httpx.Client(base_url=url, timeout=600) as c:
                c.post("/predict?output=dicom", content=one, headers={"Content-Type": "application/dicom"})  # warm
                time.sleep(1.0)  # let the warm-up's buffers settle before the idle reading
                idle = rss_mb(proc.pid)
                sampler = Sampler(proc.pid)
                sampler.start()
                t0 = time.perf_counter()
                r = c.post("/dicomweb/studies", content=chunks(),
                           headers={"Content-Type": ctype, "Content-Length": str(len(body))})
                t_answer = time.perf_counter()
                accepted = len(r.json().get("00081199", {}).get("Value", []))
                while True:
                    rows = c.get("/dicomweb/results", params={"limit": 1000}).json()["results"]
                    if len(rows) >= accepted and all(x["state"] in ("done", "not_evaluated", "failed") for x in rows):
                        break
                    time.sleep(0.1)
                t_done = time.perf_counter()
                sampler.stop.set()
                sampler.join()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    during = sampler.peak(t0, t_answer)
    print(json.dumps({
        "benchmark": "stow_memory", "request_mb": round(len(body) / 2**20, 1), "instances": n,
        "instance_mb": round(len(one) / 2**20, 1), "status": r.status_code, "accepted": accepted,
        "states": {s: sum(x["state"] == s for x in rows) for s in ("done", "not_evaluated", "failed")},
        "rss_mb": {"idle": idle, "peak_during_request": during, "peak_while_screening": sampler.peak(t_answer, t_done)},
        "request_peak_over_idle_mb": round(during - idle, 1),
        "answer_s": round(t_answer - t0, 2), "all_results_s": round(t_done - t0, 1),
    }))


if __name__ == "__main__":
    main()
