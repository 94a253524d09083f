"""The console in a real browser: Debian's headless Chromium driven by Playwright against a real server
(uvicorn, the shipped default model, the integrity check on) reached through a path prefix (/cxr/), as a
reverse proxy would forward it. Screenshots of every screen go to build/test-output/console/."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.browser import CHROMIUM, launch, use_key
from tests.live_server import ROOT, start_server, wait_ready
from tests.synth import DATA_ROOT, dicom_bytes, radiograph

pytestmark = [pytest.mark.slow, pytest.mark.data]
ADMIN, PREDICT = "console-admin-key-0123456789", "console-predict-key-012345678"
SHOTS = ROOT / "build" / "test-output" / "console"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (scripts/install_chromium.sh installs it as root)")
    pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency: pip install -e '.[dev]'")
    if not (DATA_ROOT / "test").is_dir():
        pytest.skip(f"real X-rays not available: {DATA_ROOT} does not exist")
    # the app behind a /cxr/ prefix, as a reverse proxy forwards it; its log is not kept (nobody reads it while
    # it serves, and a full pipe would stop it)
    proc, url = start_server({"CXR_STATE_DIR": str(tmp_path_factory.mktemp("console-state")),
                              "CXR_API_KEYS": f"{ADMIN}:admin,{PREDICT}:predict", "CXR_RATE_LIMIT_PER_MIN": "0",
                              "CXR_MIN_IMAGES_PER_CLASS": "8", "CXR_LOG_JSON": "false", "CXR_TRAIN_THREADS": "1"},
                             capture=False, asgi_app="tests.prefixed_app:app")
    try:
        wait_ready(proc, url, timeout=180)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture()
def page(browser, server: str):  # a fresh context per test: its own sessionStorage
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and "status of 4" not in m.text else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(f"{server}/cxr/")
    yield pg
    context.close()
    assert errors == [], f"the page logged errors: {errors}"  # CSP refusals and script errors included


def serious_violations(pg) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(pg).response["violations"]
    return [f"{v['id']} ({v['impact']}): {v['help']}" for v in found if v["impact"] in ("serious", "critical")]


def test_screen_a_real_radiograph_shows_what_the_api_answers(page, server: str, tmp_path: Path):
    src = sorted((DATA_ROOT / "test" / "PNEUMONIA").glob("*.jpeg"))[3]
    big = tmp_path / "chest-1024.png"  # the target's case: a 1024 x 1024 PNG
    Image.open(src).convert("L").resize((1024, 1024), Image.Resampling.BILINEAR).save(big)
    use_key(page, PREDICT, "predict key")
    page.set_input_files("#screen-file", str(big))
    page.wait_for_selector("#screen-result[data-render-ms]:not([hidden])")
    shown = float(page.get_attribute("#screen-result", "data-probability"))
    api = httpx.post(f"{server}/predict", files={"file": big.read_bytes()}, headers={"X-API-Key": PREDICT}, timeout=60).json()
    assert shown == pytest.approx(api["probabilities"]["PNEUMONIA"], abs=1e-9)
    assert page.text_content("#verdict") == api["prediction"]
    assert f"{api['probabilities']['PNEUMONIA']:.4f}" in page.text_content("#screen-facts")
    assert api["model"]["name"] in page.text_content("#screen-facts")
    assert page.text_content("#integrity").startswith("Accepted")
    assert float(page.get_attribute("#screen-result", "data-render-ms")) > 0  # timed by benchmarks/console.py
    assert serious_violations(page) == []
    page.screenshot(path=str(SHOTS / "screen.png"), full_page=True)
    # the README's picture (docs/console_screen.png is this file): the dataset's radiograph blurred beyond use
    page.eval_on_selector("#xray", "e => { e.style.filter = 'blur(14px)'; }")
    page.screenshot(path=str(SHOTS / "screen-blurred.png"), full_page=True)
    page.eval_on_selector("#xray", "e => { e.style.filter = ''; }")
    # the overlay controls act on the layer, and the download is the picture on screen
    page.focus("#opacity")
    for _ in range(12):  # 100 % -> 40 % in steps of 5, by keyboard
        page.keyboard.press("ArrowLeft")
    assert page.eval_on_selector("#heat", "e => getComputedStyle(e).opacity") == "0.4"
    page.click("label:has(#overlay-on)")
    assert page.is_hidden("#heat")
    page.click("label:has(#overlay-on)")
    with page.expect_download() as dl:
        page.click("#download-overlay")
    rgb = np.asarray(Image.open(dl.value.path()).convert("RGB")).astype(int)
    assert rgb.shape == (1024, 1024, 3)
    assert np.abs(rgb[..., 0] - rgb[..., 2]).max() > 20  # the colour layer is in it, not the grey X-ray alone


def test_a_dicom_gets_its_dicom_results(page, server: str):
    dcm = dicom_bytes(radiograph(512, 1), bits=16)
    use_key(page, PREDICT, "predict key")
    page.set_input_files("#screen-file", files=[{"name": "chest.dcm", "mimeType": "application/dicom", "buffer": dcm}])
    page.wait_for_selector("#screen-result[data-render-ms]:not([hidden])")
    page.click("#download-dicom")
    page.wait_for_selector("#dicom-links a")
    labels = page.locator("#dicom-links a").all_text_contents()
    assert any("Structured Report" in t for t in labels) and any("Parametric Map" in t for t in labels)


def test_errors_show_the_apis_own_words(page, server: str):
    broken = (sorted((DATA_ROOT / "test" / "NORMAL").glob("*.jpeg"))[0]).read_bytes()[:3000]
    detail = httpx.post(f"{server}/predict", files={"file": broken}, headers={"X-API-Key": PREDICT}).json()["detail"]
    use_key(page, PREDICT, "predict key")
    page.set_input_files("#screen-file", files=[{"name": "broken.jpeg", "mimeType": "image/jpeg", "buffer": broken}])
    page.wait_for_selector("#screen-error:not([hidden])")
    assert detail in page.text_content("#screen-error") and "HTTP 422" in page.text_content("#screen-error")
    use_key(page, "not-a-key-0000000000000000", "key refused")
    assert "invalid API key" in page.text_content("#key-state")
    page.set_input_files("#screen-file", files=[{"name": "b.jpeg", "mimeType": "image/jpeg", "buffer": broken}])
    page.wait_for_function("() => document.querySelector('#screen-error').textContent.includes('HTTP 401')")
    assert "invalid API key" in page.text_content("#screen-error")
    page.screenshot(path=str(SHOTS / "screen-error.png"))


def test_a_predict_key_sees_no_admin_actions(page, server: str):
    use_key(page, PREDICT, "predict key")
    assert page.is_hidden("nav a[href='#training']") and page.is_hidden("nav a[href='#monitoring']")
    page.click("nav a[href='#models']")
    page.wait_for_selector("#models-list table")
    assert page.locator("#models-list button").count() == 0
    assert page.locator("#models-list details").count() >= 2  # every model with its card
    page.goto(f"{server}/cxr/#training")  # typed by hand: still the screen view, nothing admin
    assert page.is_visible("#view-screen") and page.is_hidden("#view-training")


def test_models_show_cards_and_an_admin_activates_and_rolls_back(page, server: str):
    use_key(page, ADMIN, "admin key")
    page.click("nav a[href='#models']")
    page.wait_for_selector("#models-list table")
    page.click("#models-list summary >> nth=0")
    assert "Intended use" in page.text_content("#models-list")
    assert serious_violations(page) == []
    page.screenshot(path=str(SHOTS / "models.png"), full_page=True)
    page.click("button[aria-label='Activate simple_cnn']")
    serving = "([m]) => document.querySelector('#models-answer').textContent.startsWith(m + ' ')"
    page.wait_for_function(serving, arg=["simple_cnn"], timeout=120_000)
    assert "is serving" in page.text_content("#models-answer")
    assert httpx.get(f"{server}/readyz").json()["model"]["name"] == "simple_cnn"
    page.click("text=Roll back to efficientnet_lite0_soup")
    page.wait_for_function(serving, arg=["efficientnet_lite0_soup"], timeout=120_000)
    assert httpx.get(f"{server}/readyz").json()["model"]["name"] == "efficientnet_lite0_soup"


def _dataset_zip(per_class: int = 10) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for label in ("NORMAL", "PNEUMONIA"):
            for i, path in enumerate(sorted((DATA_ROOT / "train" / label).glob("*.jpeg"))[:per_class]):
                img = Image.open(path).convert("L")
                img.thumbnail((256, 256))  # small files: the upload is quick, the images still real
                out = io.BytesIO()
                img.save(out, "PNG")
                zf.writestr(f"{label}/{path.stem}.png", out.getvalue())
        zf.writestr("README.txt", "not an image")
    return buf.getvalue()


def test_a_tiny_training_job_runs_from_the_page(page, server: str):
    use_key(page, ADMIN, "admin key")
    page.click("nav a[href='#training']")
    page.set_input_files("#dataset-file", files=[{"name": "site.zip", "mimeType": "application/zip",
                                                  "buffer": _dataset_zip()}])
    page.click("#dataset-form button[type=submit]")
    page.wait_for_selector("#dataset-report table")
    page.wait_for_selector("#job-dataset option", state="attached")  # the new dataset, selected
    report = page.text_content("#dataset-report")
    assert "1 file(s) rejected" in report and page.get_attribute("#dataset-progress", "value") == "100"
    page.select_option("#job-base", "simple_cnn")
    page.fill("#job-epochs", "2")
    page.fill("#job-batch", "8")
    page.click("#job-form button[type=submit]")
    page.wait_for_selector("#job-progress")
    page.wait_for_selector("#job-progress[data-state='succeeded']", timeout=240_000)
    detail = page.text_content("#job-detail")
    assert "Epoch2 of 2" in detail and "Validation AUROC" in detail and "Loss—" not in detail
    job_id = page.get_attribute("#job-progress", "data-job")
    job = httpx.get(f"{server}/train/{job_id}", headers={"X-API-Key": ADMIN}).json()
    assert job["state"] == "succeeded" and job["progress"]["loss"] is not None and len(job["metrics"]) == 2
    assert serious_violations(page) == []
    page.screenshot(path=str(SHOTS / "training.png"), full_page=True)
    # a long job, cancelled from the page while it runs
    page.fill("#job-epochs", "100")
    page.click("#job-form button[type=submit]")
    page.wait_for_selector("#job-progress[data-state='running']", timeout=120_000)
    page.click("text=Cancel job")
    page.wait_for_selector("#job-progress[data-state='cancelled']", timeout=120_000)
    assert page.get_attribute("#job-progress", "data-job") != job_id


def test_pacs_results_and_monitoring(page, server: str):
    body, boundary = io.BytesIO(), "cxrconsoletest"
    for i in range(2):
        body.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        body.write(dicom_bytes(radiograph(256, i), bits=16))
        body.write(b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    r = httpx.post(f"{server}/dicomweb/studies", content=body.getvalue(), headers={
        "X-API-Key": PREDICT, "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'})
    assert r.status_code == 202, r.text  # accepted: screened in the background
    use_key(page, ADMIN, "admin key")
    page.click("nav a[href='#pacs']")
    page.wait_for_selector("#pacs-list table")
    assert page.locator("#pacs-list tbody tr").count() >= 2
    assert page.locator("button:has-text('Re-deliver')").count() >= 2
    assert serious_violations(page) == []
    page.screenshot(path=str(SHOTS / "pacs.png"), full_page=True)
    page.click("nav a[href='#monitoring']")
    page.wait_for_selector("#monitoring-list h3")
    assert "efficientnet_lite0_soup" in page.text_content("#monitoring-list")
    assert "drift" in page.text_content("#monitoring-list")
    assert serious_violations(page) == []
    page.screenshot(path=str(SHOTS / "monitoring.png"), full_page=True)


def test_the_keyboard_alone_reaches_everything_in_order(page, server: str):
    order = []
    for _ in range(12):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
    assert order[:4] == ["Skip to content", "api-key", "Use key", "key-forget"]
    assert order.index("Screen an image") < order.index("Models") < order.index("screen-file") < order.index("screen-target")
    page.focus("#api-key")
    page.keyboard.type(PREDICT)
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#key-state').textContent.includes('predict key')")
    page.focus("nav a[href='#models']")
    page.keyboard.press("Enter")
    page.wait_for_selector("#models-list table")
    assert page.get_attribute("nav a[href='#models']", "aria-current") == "page"
    assert json.loads(page.evaluate("JSON.stringify(Object.keys(sessionStorage))")) == ["cxr.apiKey"]
    assert PREDICT not in page.url
