"""The GPU check, run ON the device machine as one prepared script (it also dry-runs on a CPU).

  python3 scripts/gpu/check.py --out "$OUT"          # there (CXR_DEVICE=auto finds the GPU)
  .venv/bin/python scripts/gpu/check.py --out /tmp/gpu-dry --device cpu --train-device cpu   # here

Needs ``.gpu/`` from scripts/gpu/reference.py. Writes ``gpu_check.json`` under --out:
1. ``cxr serve`` with CXR_DEVICE=auto: /readyz must name the device; /predict on the reference
   radiographs must give the CPU reference's probabilities within 1e-3, and the serving model's
   class maps (loaded in this process on the same device) must match the CPU's within 1e-3;
2. benchmarks/predict.py there (1 and 16 clients; 224 px and 1024 px with the overlay), with the
   time split into decode, integrity, preprocess, infer (forward on the device) and explain;
3. a fine-tuning job through POST /train with CXR_TRAIN_DEVICE (AMP on CUDA) while /predict keeps
   answering: its images/s, next to the CPU's (cpu.json) when it was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
GPU = ROOT / ".gpu"

from tests.live_server import start_server, wait_ready  # noqa: E402


def check_predictions(url: str, device: str) -> dict[str, object]:
    import torch

    from app.core.config import Settings
    from app.inference.catalog import ModelRegistry, catalog_of
    from models.device import select_device
    from models.imaging import decode_image

    ref = np.load(GPU / "reference.npz")
    served, diffs, timings = [], [], []
    with httpx.Client(timeout=120) as c:
        for name, p_ref in zip(ref["names"], ref["probabilities"], strict=True):
            r = c.post(f"{url}/predict", params={"heatmap": "none"}, content=(GPU / "images" / str(name)).read_bytes(),
                       headers={"content-type": "image/jpeg"})
            r.raise_for_status()
            j = r.json()
            served.append(j["probabilities"]["PNEUMONIA"])
            diffs.append(abs(j["probabilities"]["PNEUMONIA"] - float(p_ref[1])))
            timings.append(j["timing_ms"])
    registry = ModelRegistry(catalog_of(Settings()), str(select_device(device)), backend="torch")
    model = registry.activate(None)
    cam_diff = 0.0
    for name, cam_ref in zip(ref["names"], ref["cams"], strict=True):
        x = model.card.input.to_array(decode_image((GPU / "images" / str(name)).read_bytes()).pixels)[None]
        _, cams = model.run(x)
        scale = max(float(np.abs(cam_ref).max()), 1e-6)
        cam_diff = max(cam_diff, float(np.abs(cams[0] - cam_ref).max()) / scale)
    del torch
    return {"images": len(served), "max_abs_diff_probability": max(diffs), "max_rel_diff_cam": cam_diff,
            "within_1e-3": max(diffs) <= 1e-3 and cam_diff <= 1e-3, "device_in_process": str(model.device),
            "timing_ms_last": timings[-1]}


def run_benchmark(device: str) -> dict[str, object]:
    env = {**os.environ, "CXR_DEVICE": device}
    out = subprocess.run([sys.executable, "benchmarks/predict.py", "--requests", "40", "--soak", "200"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=900)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": out.stderr[-2000:]}


def fine_tune(url: str) -> dict[str, object]:
    probe = (GPU / "images" / sorted(os.listdir(GPU / "images"))[0]).read_bytes()
    answered = failed = 0
    with httpx.Client(timeout=120) as c:
        r = c.post(f"{url}/train", json={"dataset": "site", "epochs": 2, "batch_size": 32, "val_fraction": 0.2})
        r.raise_for_status()
        job_id = r.json()["id"]
        t0 = time.monotonic()
        while (job := c.get(f"{url}/train/{job_id}").json())["state"] in ("queued", "running"):
            ok = c.post(f"{url}/predict", params={"heatmap": "none"}, content=probe,
                        headers={"content-type": "image/jpeg"}).status_code == 200
            answered, failed = answered + ok, failed + (not ok)
            if time.monotonic() - t0 > 480:
                break
    return {"state": job["state"], "error": job["error"], "images_per_s": [m.get("images_per_s") for m in job["metrics"]],
            "device": job["request"].get("device"), "predict_answered_during": answered, "predict_failed_during": failed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--train-device", default="cuda")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        import torch

        result["torch"] = torch.__version__
        result["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    proc, url = start_server({"CXR_DEVICE": args.device, "CXR_AUTH": "off", "CXR_RATE_LIMIT_PER_MIN": "0",
                              "CXR_LOG_LEVEL": "WARNING", "CXR_STATE_DIR": "/tmp/cxr-gpu-state",
                              "CXR_DATA_ROOT": str(GPU / "data"), "CXR_TRAIN_DEVICE": args.train_device,
                              "CXR_MIN_IMAGES_PER_CLASS": "10", "CXR_TRAIN_THREADS": "4"}, capture=False)
    try:
        wait_ready(proc, url, timeout=300)
        ready = httpx.get(f"{url}/readyz").json()
        result["readyz"] = ready
        result["device_ok"] = ready.get("device", "").startswith("cuda") if args.device == "auto" else True
        result["predictions"] = check_predictions(url, args.device)
        result["fine_tune"] = fine_tune(url)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    result["benchmark"] = run_benchmark(args.device)
    result["cpu_reference"] = json.loads((GPU / "cpu.json").read_text())
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("readyz", "device_ok", "predictions", "fine_tune")}))


if __name__ == "__main__":
    main()
