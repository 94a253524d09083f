"""STOW-RS benchmark: a study of N radiographs pushed in one request. Prints ONE JSON line.

  .venv/bin/python benchmarks/stow.py [--images 16] [--size 2048]

Measures, against a real `cxr serve` on 127.0.0.1 with the shipped default model:
* how long the STOW-RS request holds the connection (it only checks headers and persists);
* how long until every result (SC + SR at full size) exists, and the same images sent one by
  one to /predict?output=dicom for comparison (same work, synchronous);
Delivery to a PACS is not part of it (tests/test_orthanc.py covers it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.dicom.multipart import encode_related  # noqa: E402
from tests.live_server import BENCH_ENV, start_server, wait_ready  # noqa: E402
from tests.synth import dicom_bytes, radiograph  # noqa: E402


def study(n: int, size: int) -> list[bytes]:
    return [dicom_bytes(radiograph(size, i)) for i in range(n)]  # real X-rays where ../shared/data exists


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", type=int, default=2048)
    args = ap.parse_args()
    instances = study(args.images, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(BENCH_ENV | {"CXR_STATE_DIR": tmp}, capture=False)
        try:
            wait_ready(proc, url)
            with httpx.Client(base_url=url, timeout=600) as c:
                c.post("/predict?output=dicom", content=instances[0], headers={"Content-Type": "application/dicom"})
                body, ctype = encode_related(instances)
                t0 = time.perf_counter()
                r = c.post("/dicomweb/studies", content=body, headers={"Content-Type": ctype})
                t_answer = time.perf_counter() - t0
                assert r.status_code == 202, r.text
                while True:
                    rows = c.get("/dicomweb/results", params={"limit": 1000}).json()["results"]
                    if len(rows) == len(instances) and all(x["state"] == "done" for x in rows):
                        break
                    time.sleep(0.05)
                t_done = time.perf_counter() - t0
                t1 = time.perf_counter()
                for data in instances:
                    rr = c.post("/predict?output=dicom", content=data, headers={"Content-Type": "application/dicom"})
                    assert rr.status_code == 200
                t_sync = time.perf_counter() - t1
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps({
        "benchmark": "stow", "images": args.images, "size": args.size, "request_mb": round(len(body) / 1e6, 1),
        "stow_answer_s": round(t_answer, 3), "stow_all_results_s": round(t_done, 2),
        "stow_per_image_ms": round(t_done / args.images * 1000, 1),
        "predict_output_dicom_sequential_s": round(t_sync, 2),
        "sequential_per_image_ms": round(t_sync / args.images * 1000, 1),
    }))


if __name__ == "__main__":
    main()
