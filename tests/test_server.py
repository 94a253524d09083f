"""A real uvicorn process on a free port: startup, upload over HTTP, failure exits."""

import shutil
from pathlib import Path

import httpx
import pytest

from tests.live_server import start_server, wait_ready
from tests.synth import DATA_ROOT, chest_like, encode



PREDICT_KEY = "predict-key-0123456789"


def _start(weights: Path, state: Path, **extra: str):
    return start_server({"CXR_WEIGHTS_DIR": str(weights), "CXR_INTEGRITY": "off", "CXR_STATE_DIR": str(state), "CXR_LOG_JSON": "true",
                         "CXR_API_KEYS": f"{PREDICT_KEY}:predict", **extra})


@pytest.mark.slow
def test_real_server_answers_an_upload(tiny_weights, tmp_path):
    proc, url = _start(tiny_weights, tmp_path / "state")
    try:
        wait_ready(proc, url)
        samples = sorted((DATA_ROOT / "test" / "PNEUMONIA").glob("*.jpeg"))[:1] if DATA_ROOT.is_dir() else []
        data = samples[0].read_bytes() if samples else encode(chest_like(300, 300))
        key = {"X-API-Key": PREDICT_KEY}
        assert httpx.post(f"{url}/predict", files={"file": ("xray.jpeg", data)}, timeout=30).status_code == 401
        r = httpx.post(f"{url}/predict", files={"file": ("xray.jpeg", data)}, headers=key, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["model"]["name"] == "tiny"
        bad = httpx.post(f"{url}/predict", files={"file": ("x.png", b"not an image")}, headers=key, timeout=30)
        assert bad.status_code == 415
        assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    # SIGTERM: uvicorn finishes in-flight requests, shuts down, then re-raises the signal
    assert proc.returncode in (0, -15), out
    assert "Finished server process" in out
    assert '"path": "/predict", "status": 200' in out  # structured access log with request ids
    assert '"request_id"' in out
    assert PREDICT_KEY not in out


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["corrupt", "missing", "unknown-model"])
def test_server_refuses_to_start_with_bad_weights(tiny_weights, tmp_path, damage):
    root = tmp_path / "w"
    shutil.copytree(tiny_weights, root)
    weights = root / "tiny" / "model.safetensors"
    extra = {}
    if damage == "corrupt":
        weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    elif damage == "missing":
        weights.unlink()
    else:
        extra["CXR_MODEL"] = "nope"
    proc, _ = _start(root, tmp_path / "state", **extra)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    expected = {"corrupt": "is corrupt: sha256", "missing": "is missing", "unknown-model": "no model named 'nope'"}[damage]
    assert "cannot start" in out and expected in out


@pytest.mark.slow
def test_no_patient_data_in_logs(tiny_weights, tmp_path):
    import numpy as np

    from tests.synth import dicom_bytes

    markers = {"PatientName": "Zyx^MARKERNAME7731", "PatientID": "MARKERID55190", "PatientBirthDate": "19010203",
               "AccessionNumber": "MARKERACC9924"}
    img = chest_like(128, 128)
    good = dicom_bytes(img, patient=markers)
    broken = [dicom_bytes(img, patient=markers, with_pixels=False),
              dicom_bytes(np.stack([img, img]), frames=2, patient=markers), good[: len(good) - 4000]]
    proc, url = _start(tiny_weights, tmp_path / "state", CXR_LOG_LEVEL="DEBUG")
    try:
        wait_ready(proc, url)
        key = {"X-API-Key": PREDICT_KEY, "content-type": "application/dicom"}
        assert httpx.post(f"{url}/predict", content=good, headers=key, timeout=30).status_code == 200
        for data in broken:
            assert httpx.post(f"{url}/predict", content=data, headers=key, timeout=30).status_code == 422
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert '"status": 422' in out
    for value in markers.values():
        assert value not in out and value.split("^")[-1] not in out
