"""Fine-tuning jobs beside inference. Prints ONE JSON line.

  .venv/bin/python benchmarks/train_job.py [--per-class 150] [--requests 40]

Against a real server on 127.0.0.1 with the default model: /predict p50 idle and while a
frozen-backbone and a full fine-tuning job run (training runs niced, on CXR_TRAIN_THREADS=1),
each job's images/s, and the time of the activate call (load + verify + warm-up + swap).
The dataset is a per-class sample of ../shared/data/chest_xray/train copied to a temp folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live_server import BENCH_ENV, start_server, wait_ready  # noqa: E402
from tests.synth import DATA_ROOT, encode, radiograph, write_dataset  # noqa: E402


def p50(url: str, body: bytes, n: int) -> float:
    times = []
    with httpx.Client(timeout=60) as c:
        for _ in range(n):
            t = time.perf_counter()
            r = c.post(f"{url}/predict", content=body, headers={"content-type": "image/png"})
            r.raise_for_status()
            times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 1)


def make_dataset(root: Path, per_class: int) -> str:
    target = root / "sample"
    src = DATA_ROOT / "train"
    if src.is_dir():
        for cls in ("NORMAL", "PNEUMONIA"):
            (target / cls).mkdir(parents=True)
            for f in sorted((src / cls).glob("*.jpeg"))[:per_class]:
                shutil.copy(f, target / cls / f.name)
    else:
        write_dataset(root / "synthetic", per_class=per_class, size=224, splits=("train",))
        target = root / "synthetic" / "train"
    return target.name if target.parent == root else "synthetic/train"


def run_job(url: str, body: dict, probe: bytes, n: int) -> dict:
    with httpx.Client(timeout=60) as c:
        job = c.post(f"{url}/train", json=body).json()
        while c.get(f"{url}/train/{job['id']}").json()["state"] == "queued":
            time.sleep(0.2)
        time.sleep(8)  # past process start and decoding, into the epoch
        busy = p50(url, probe, n)
        while (j := c.get(f"{url}/train/{job['id']}").json())["state"] == "running":
            time.sleep(0.5)
    ips = [m["images_per_s"] for m in j["metrics"]] or [None]
    return {"state": j["state"], "p50_ms_while_training": busy, "train_images_per_s": ips[-1],
            "model": j["model"], "error": j["error"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=150)
    ap.add_argument("--requests", type=int, default=40)
    args = ap.parse_args()
    probe = encode(radiograph(224))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = make_dataset(root / "data", args.per_class)
        proc, url = start_server(BENCH_ENV | {"CXR_DATA_ROOT": str(root / "data"), "CXR_STATE_DIR": str(root / "state"),
                                              "CXR_MIN_IMAGES_PER_CLASS": "20"}, capture=False)
        try:
            wait_ready(proc, url)
            p50(url, probe, 5)
            idle = p50(url, probe, args.requests)
            common = {"dataset": dataset, "epochs": 1, "batch_size": 16, "val_fraction": 0.2}
            frozen = run_job(url, common | {"freeze_backbone": True}, probe, args.requests)
            full = run_job(url, common | {"freeze_backbone": False}, probe, args.requests)
            t = time.perf_counter()
            r = httpx.post(f"{url}/models/{full['model']}/activate", timeout=120)
            swap_s = time.perf_counter() - t
            r.raise_for_status()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps({
        "dataset_images": 2 * args.per_class, "predict_p50_ms_idle": idle, "frozen_backbone": frozen,
        "full_finetune": full, "activate_swap_s": round(swap_s, 2),
        "ratios": {"p50_training_over_idle_frozen": round(frozen["p50_ms_while_training"] / idle, 2),
                   "p50_training_over_idle_full": round(full["p50_ms_while_training"] / idle, 2)},
    }))


if __name__ == "__main__":
    main()
