"""Latency/throughput benchmark of /predict. Prints ONE JSON line.

  .venv/bin/python benchmarks/predict.py [--model NAME] [--requests 40] [--soak 2000]

1. In process: eager PyTorch forward-only ms/image at batch 1 (the floor), and forward + CAM
   + overlay rendering (what the service adds). The 1024² PNG overlay's 1-client p50 is also taken in
   turns with the eager forward (``in_turns``), so that the ratio issue #18 sets compares the two in the
   same spells of this noisy machine.
2. Over HTTP against a real uvicorn process on 127.0.0.1: p50/p95/p99 and throughput with 1
   client and 16 concurrent clients for PNG 224x224, JPEG 2048x2048, DICOM 2048x2048 16-bit
   (synthetic, noisy: a worst case for the codecs) and the peers' workload (a real radiograph
   from ../shared/data as a 1024x1024 PNG), heatmap overlay on and off.
3. Server RSS after warm-up and after ``--soak`` more requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.inference.render import render_heatmap  # noqa: E402
from app.core.allocator import tune_malloc  # noqa: E402
from app.inference.serving import OnnxRunner  # noqa: E402
from benchmarks.timing import median_ms  # noqa: E402
from models.gradcam import forward_with_cam  # noqa: E402
from models.onnx_export import export_onnx  # noqa: E402
from models.postprocess import scale_maps  # noqa: E402
from models.device import select_device  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.inference.catalog import catalog_of  # noqa: E402
from models.weights import load_model  # noqa: E402
from tests.live_server import BENCH_ENV, start_server, wait_ready  # noqa: E402
from tests.synth import chest_like, dicom_bytes, encode, radiograph  # noqa: E402


def eager_forward(model_name: str | None) -> tuple[Callable[[], None], Any, torch.Tensor, torch.device]:
    """The floor: one eager forward pass at batch 1 on CXR_DEVICE (default cpu; on CUDA it ends with a
    synchronize); also the loaded model, its input and the device."""
    device = select_device(os.environ.get("CXR_DEVICE", "cpu"))
    loaded = load_model(catalog_of(Settings()).find(model_name).folder, device=device)
    s = loaded.card.input.image_size
    x = loaded.card.input.to_tensor(chest_like(s, s))[None].to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def forward() -> None:
        with torch.inference_mode():
            loaded.model(x)
        sync()

    return forward, loaded, x, device


def in_process(model_name: str | None, reps: int = 30) -> dict[str, float]:
    """Eager forward-only (the floor), and forward + class maps + 1024 px overlay for each backend."""
    forward, loaded, x, device = eager_forward(model_name)
    s = loaded.card.input.image_size
    x_cpu = x.cpu()
    pixels = chest_like(1024, 1024)
    tune_malloc(2)  # the allocator `cxr serve` runs with
    onnx = OnnxRunner(export_onnx(loaded.model.cpu(), s), None)
    x_np = x_cpu.numpy()
    loaded.model.to(device)

    def torch_cam() -> np.ndarray:
        with torch.inference_mode():
            return forward_with_cam(loaded.model, x)[1].cpu().numpy()

    def with_overlay(run_cam) -> None:
        render_heatmap(pixels, scale_maps(run_cam()[:, 1])[0])

    out = {"device": str(device), "torch_forward_ms": median_ms(forward, reps),
           "torch_forward_cam_overlay1024_ms": median_ms(lambda: with_overlay(torch_cam), reps),
           "onnx_forward_cam_ms": median_ms(lambda: onnx(x_np), reps),
           "onnx_forward_cam_overlay1024_ms": median_ms(lambda: with_overlay(lambda: onnx(x_np)[1]), reps)}
    if device.type == "cuda":  # batch sizes up to 32 on the device
        for n in (1, 8, 32):
            xb = x.expand(n, -1, -1, -1).contiguous()
            with torch.inference_mode():
                out[f"torch_forward_cam_batch{n}_ms"] = median_ms(lambda: forward_with_cam(loaded.model, xb)[1].cpu(), reps)
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def timed(url: str, body: bytes, ctype: str, params: str, clients: int, n: int) -> tuple[list[float], int, float]:
    """``n`` POST /predict from ``clients`` concurrent clients: each one's ms, the errors and the wall time (s)."""
    lat: list[float] = []
    errors = 0
    counter = iter(range(n))
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as c:
        async def worker() -> None:
            nonlocal errors
            for _ in counter:
                t = time.perf_counter()
                r = await c.post(f"{url}/predict?{params}", content=body, headers={"content-type": ctype})
                lat.append((time.perf_counter() - t) * 1000)
                errors += r.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(clients)])
        wall = time.perf_counter() - t0
    return lat, errors, wall


async def load(url: str, body: bytes, ctype: str, params: str, clients: int, n: int) -> dict[str, float]:
    lat, errors, wall = await timed(url, body, ctype, params, clients, n)
    q = np.percentile(lat, [50, 95, 99])
    return {"p50_ms": round(q[0], 1), "p95_ms": round(q[1], 1), "p99_ms": round(q[2], 1),
            "req_per_s": round(n / wall, 2), "errors": errors}


def in_turns(forward: Callable[[], None], url: str, body: bytes, ctype: str, rounds: int = 6,
             per_round: int = 12, warmup: int = 3, gap_s: float = 0.5) -> dict[str, float]:
    """Issue #18's two numbers taken in turns, ``rounds`` times: ``per_round`` eager forward passes, then as many
    one-client requests (overlay), so that the machine's slower and faster spells fall on both (measured
    apart, the forward alone moved 16-21 ms between two runs). Each block starts after ``gap_s`` idle and
    ``warmup`` untimed calls: back to back, the forward passes left the cores warm and the requests after
    them ~3 ms faster than after an idle spell. The medians of all times of each."""
    forward_ms: list[float] = []
    http_ms: list[float] = []
    for _ in range(rounds):
        time.sleep(gap_s)
        for i in range(warmup + per_round):
            t = time.perf_counter()
            forward()
            if i >= warmup:
                forward_ms.append((time.perf_counter() - t) * 1000)
        time.sleep(gap_s)
        http_ms += asyncio.run(timed(url, body, ctype, "heatmap=overlay", 1, warmup + per_round))[0][warmup:]
    fwd, p50 = float(np.median(forward_ms)), float(np.median(http_ms))
    return {"torch_forward_ms": round(fwd, 2), "1_client_p50_ms": round(p50, 1), "ratio": round(p50 / fwd, 2)}


def workloads() -> dict[str, tuple[bytes, str]]:
    """Real radiographs (the integrity check refuses synthetic ones), upscaled where large."""
    big = radiograph(2048, 1)
    return {
        "png224": (encode(radiograph(224, 2)), "image/png"),
        "jpeg2048": (encode(big, "JPEG", quality=90), "image/jpeg"),
        "dicom2048_16bit": (dicom_bytes(big.astype(np.uint16) * 16, bits=12), "application/dicom"),
        "png1024_peers": (encode(radiograph(1024)), "image/png"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--requests", type=int, default=40, help="requests per measurement")
    ap.add_argument("--soak", type=int, default=2000, help="requests between the two RSS readings")
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"], help="the server's CXR_BACKEND")
    ap.add_argument("--integrity", default="on", choices=["on", "off"], help="the server's CXR_INTEGRITY")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    result: dict[str, object] = {"model": args.model or "default", "backend": args.backend,
                                 "integrity": args.integrity, "cpu_cores": os.cpu_count(),
                                 "in_process": in_process(args.model)}

    env = BENCH_ENV | {"CXR_BACKEND": args.backend,
           "CXR_INTEGRITY": args.integrity, **({"CXR_MODEL": args.model} if args.model else {})}
    proc, url = start_server(env, capture=False)
    try:
        wait_ready(proc, url)
        http: dict[str, object] = {}
        for name, (body, ctype) in workloads().items():
            for heat in ("overlay", "none"):
                asyncio.run(load(url, body, ctype, f"heatmap={heat}", 1, 3))  # warm-up
                key = f"{name}_heatmap_{heat}"
                http[key] = {"1_client": asyncio.run(load(url, body, ctype, f"heatmap={heat}", 1, args.requests)),
                             "16_clients": asyncio.run(load(url, body, ctype, f"heatmap={heat}", 16, args.requests * 2))}
        result["http"] = http
        body, ctype = workloads()["png1024_peers"]
        result["png1024_overlay_in_turns"] = in_turns(eager_forward(args.model)[0], url, body, ctype)
        rss_warm = rss_mb(proc.pid)
        body, ctype = workloads()["png224"]
        soak = asyncio.run(load(url, body, ctype, "heatmap=overlay", 8, args.soak))
        result["rss_mb"] = {"after_warmup": rss_warm, f"after_{args.soak}_more": rss_mb(proc.pid),
                            "soak_errors": soak["errors"]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    floor = result["in_process"]["torch_forward_ms"]  # type: ignore[index]
    png = http["png224_heatmap_overlay"]  # type: ignore[index]
    peers = http["png1024_peers_heatmap_overlay"]  # type: ignore[index]
    result["ratios"] = {
        "http_png224_overlay_p50_over_forward": round(png["1_client"]["p50_ms"] / floor, 2),
        "png224_16_over_1_client_throughput": round(png["16_clients"]["req_per_s"] / png["1_client"]["req_per_s"], 2),
        "png224_16_clients_p99_over_p50": round(png["16_clients"]["p99_ms"] / png["16_clients"]["p50_ms"], 2),
        "rss_growth_mb": round(result["rss_mb"][f"after_{args.soak}_more"] - result["rss_mb"]["after_warmup"], 1),  # type: ignore[index]
        "peers_png1024_1_client_p50_ms": peers["1_client"]["p50_ms"],
        "png1024_overlay_1_client_p50_over_forward": round(peers["1_client"]["p50_ms"] / floor, 2),
        "png1024_overlay_1_client_p50_over_forward_in_turns": result["png1024_overlay_in_turns"]["ratio"],  # type: ignore[index]
        "peers_png1024_16_clients_req_per_s": peers["16_clients"]["req_per_s"],
        "peers_png1024_16_clients_p99_ms": peers["16_clients"]["p99_ms"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
