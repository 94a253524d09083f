"""What each result object adds per image: TID 1500 SR, Parametric Map, Secondary Capture, FHIR Bundle.

  .venv/bin/python benchmarks/dicom_outputs.py [--sizes 1024,2048] [--repeats 5]

In-process, shipped default model, one real radiograph from ../shared/data resized to each size (a
synthetic one without it), stored as a CR. For each object: the median time to build and encode it
(Part 10 bytes, or the Bundle's JSON) from one inference, and its size; beside them the median time
of the inference itself (decode, integrity, preprocess, forward, Grad-CAM). Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from app.core.config import Settings  # noqa: E402
from app.dicom.measurement_report import build_report  # noqa: E402
from app.dicom.parametric_map import build_parametric_map  # noqa: E402
from app.dicom.secondary_capture import build_secondary_capture  # noqa: E402
from app.fhir.bundle import ImagingRef, bundle_json, result_bundle  # noqa: E402
from app.inference.render import cam_at, compose  # noqa: E402
from app.main import create_app  # noqa: E402
from app.pacs.outputs import finding_of, to_part10  # noqa: E402
from tests.synth import DATA_ROOT, chest_like, dicom_bytes  # noqa: E402

PATIENT = {"PatientName": "Bench^Mark", "PatientID": "B-1", "StudyDate": "20260101", "StudyTime": "120000",
           "StudyID": "1", "AccessionNumber": "A1"}


def radiograph(size: int) -> bytes:
    folder = DATA_ROOT / "test" / "PNEUMONIA"
    if folder.is_dir():
        pixels = np.asarray(Image.open(sorted(folder.iterdir())[0]).convert("L").resize((size, size)))
    else:
        pixels = chest_like(size, size, seed=1)
    return dicom_bytes(pixels, patient=PATIENT)


def median_ms(fn, repeats: int) -> tuple[float, object]:  # noqa: ANN001
    out, times = None, []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 1), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    report: dict[str, object] = {"benchmark": "dicom_outputs", "repeats": args.repeats, "sizes": {}}
    with tempfile.TemporaryDirectory() as state:
        settings = Settings(state_dir=Path(state), auth="off", rate_limit_per_min=0, log_json=False, audit="off")
        with TestClient(create_app(settings, configure_logs=False)) as client:
            predictor = client.app.state.services.predictor
            for size in (int(s) for s in args.sizes.split(",")):
                data = radiograph(size)
                client.portal.call(predictor.infer, data)  # warm-up
                infer_ms, inf = median_ms(lambda: client.portal.call(predictor.infer, data), args.repeats)
                source, finding, cam = inf.decoded.dataset, finding_of(inf), inf.cam("PNEUMONIA")
                grid = (int(source.Columns), int(source.Rows))
                builders = {
                    "sr": lambda: to_part10(build_report(source, finding)),
                    "pm": lambda: to_part10(build_parametric_map(source, cam_at(cam, grid), finding)),
                    "sc": lambda: to_part10(build_secondary_capture(
                        source, compose(inf.decoded.pixels, cam, kind="overlay", alpha=0.5), finding)),
                    "fhir": lambda: bundle_json(result_bundle(finding, ImagingRef.of(source))),
                }
                row: dict[str, object] = {"inference_ms": infer_ms}
                for name, build in builders.items():
                    build()  # warm-up
                    ms, blob = median_ms(build, args.repeats)
                    row[name] = {"ms": ms, "bytes": len(blob), "ratio_to_inference": round(ms / infer_ms, 2)}
                report["sizes"][str(size)] = row  # type: ignore[index]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
