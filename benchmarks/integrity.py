"""Input-integrity benchmark: share accepted per image category, and what the check costs.

  .venv/bin/python benchmarks/integrity.py [--requests 200]

Prints ONE JSON line per category: the 369 pediatric test radiographs as JPEG (as shipped), PNG and
16-bit DICOM (MONOCHROME1 and MONOCHROME2), the adult frontal films and each non-chest category of
../shared/data/ood, and synthetic noise, blank, gradient, text and pattern images. Every image goes
through what /predict runs (decode_image, then the DICOM header rules and the pixel guard); a file
that does not decode counts as refused (the service answers 422 too). Then one "latency" line: the
guard's own time per image, and /predict p50 for one real 224-px JPEG, one client, from two real
servers started here, one with CXR_INTEGRITY=on and one with off.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.timing import median_ms  # noqa: E402
from models.errors import CXRError  # noqa: E402
from models.imaging import decode_image  # noqa: E402
from models.integrity.check import check_image  # noqa: E402
from app.core.config import Settings  # noqa: E402
from models.integrity.guard import load_guard  # noqa: E402
from models.integrity.synthetic import KINDS, synthetic_image  # noqa: E402
from tests.live_server import BENCH_ENV, start_server, wait_ready  # noqa: E402
from tests.synth import DATA_ROOT, dicom_bytes, encode  # noqa: E402

OOD = DATA_ROOT.parent / "ood"
SHOULD_ACCEPT = {"pediatric_test_jpeg", "pediatric_test_png", "pediatric_test_dicom16_mono2",
                 "pediatric_test_dicom16_mono1", "frontal_chest_adult"}


def line(category: str, blobs: list[bytes], guard) -> dict[str, object]:  # noqa: ANN001
    accepted, reasons = 0, {}
    for data in blobs:
        try:
            result = check_image(decode_image(data), guard)
        except CXRError:
            reasons["unreadable (422)"] = reasons.get("unreadable (422)", 0) + 1
            continue
        if result.accepted:
            accepted += 1
        else:
            reasons[result.code] = reasons.get(result.code, 0) + 1
    n = len(blobs)
    want = "accepted" if category in SHOULD_ACCEPT else "refused"
    share = accepted / n if want == "accepted" else 1 - accepted / n
    out: dict[str, object] = {"category": category, "n": n, "accepted": accepted, "goal": want,
                              f"{want}_share": round(share, 4), "refusals": reasons}
    held_out = guard.card.metrics.get(category)
    if held_out:  # this category was in the guard's fitting data: its honest figure is the held-out one
        out["in_fitting_data"] = True
        out["pixel_check_leave_one_source_out"] = {"n": held_out["n"], f"{want}_share": round(
            held_out["accepted"] if want == "accepted" else 1 - held_out["accepted"], 4)}
    return out


def pediatric_forms() -> dict[str, list[bytes]]:
    files = sorted((DATA_ROOT / "test").glob("*/*.jpeg"))
    forms: dict[str, list[bytes]] = {k: [] for k in ("jpeg", "png", "dicom16_mono2", "dicom16_mono1")}
    for path in files:
        raw = path.read_bytes()
        px = decode_image(raw).pixels
        wide = px.astype(np.uint16) * 257
        forms["jpeg"].append(raw)
        forms["png"].append(encode(px))
        forms["dicom16_mono2"].append(dicom_bytes(wide, bits=16, modality="DX", sop_class="1.2.840.10008.5.1.4.1.1.1.1"))
        forms["dicom16_mono1"].append(dicom_bytes(65535 - wide, bits=16, photometric="MONOCHROME1"))
    return forms


def p50_ms(url: str, body: bytes, n: int) -> float:
    times = []
    with httpx.Client(timeout=60) as c:
        for i in range(n + 5):
            t = time.perf_counter()
            r = c.post(f"{url}/predict", params={"heatmap": "overlay"}, content=body, headers={"content-type": "image/jpeg"})
            if i >= 5:
                times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
    return round(statistics.median(times), 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200, help="/predict requests per server for the p50")
    args = ap.parse_args()
    if not (DATA_ROOT / "test").is_dir() or not OOD.is_dir():
        print(json.dumps({"skipped": f"{DATA_ROOT.parent} (chest_xray/test and ood/) is not available"}))
        return
    guard = load_guard(Settings().integrity_guard_dir).with_onnx(threads=1)
    for form, blobs in pediatric_forms().items():
        print(json.dumps(line(f"pediatric_test_{form}", blobs, guard)), flush=True)
    for folder in sorted(p for p in OOD.iterdir() if p.is_dir()):
        blobs = [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()]
        print(json.dumps(line(folder.name, blobs, guard)), flush=True)
    rng = np.random.default_rng(20261202)  # not the fitting seed
    for kind in KINDS:
        blobs = [encode(synthetic_image(kind, rng)) for _ in range(100)]
        print(json.dumps(line(f"synthetic_{kind}", blobs, guard)), flush=True)

    probe = sorted((DATA_ROOT / "test" / "NORMAL").glob("*.jpeg"))[0].read_bytes()
    pixels = decode_image(probe).pixels
    timing: dict[str, object] = {"category": "latency", "guard_ms_per_image": median_ms(lambda: guard.score(pixels), 200)}
    servers = {}
    try:
        for integrity in ("off", "on"):
            servers[integrity] = start_server(BENCH_ENV | {"CXR_INTEGRITY": integrity,
                                               "CXR_STATE_DIR": f"/tmp/cxr-bench-{integrity}"}, capture=False)
            wait_ready(*servers[integrity])
        # alternate rounds between the two servers so drift on a shared machine hits both alike
        rounds: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(4):
            for integrity, (_, url) in servers.items():
                rounds[integrity].append(p50_ms(url, probe, args.requests // 4))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    for integrity, values in rounds.items():
        timing[f"predict_p50_ms_integrity_{integrity}"] = round(statistics.median(values), 2)
        timing[f"predict_p50_ms_integrity_{integrity}_rounds"] = values
    timing["added_share_of_p50"] = round(
        timing["predict_p50_ms_integrity_on"] / timing["predict_p50_ms_integrity_off"] - 1, 4)  # type: ignore[operator]
    print(json.dumps(timing))


if __name__ == "__main__":
    main()
