"""Health, readiness, models, metrics, OpenAPI, startup failures."""

import json
import numpy as np

import pytest
from fastapi.testclient import TestClient

from app.main import create_app


def test_readyz_is_503_until_the_model_is_loaded(settings):
    app = create_app(settings, configure_logs=False)
    c = TestClient(app)  # no lifespan: nothing loaded
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "loading"
    assert c.get("/healthz").json() == {"status": "ok"}
    r = c.post("/predict", content=b"x", headers={"content-type": "image/png"})
    assert r.status_code in (415, 503)
    with TestClient(app) as c2:
        j = c2.get("/readyz").json()
        assert j["status"] == "ready" and j["device"] == "cpu" and j["model"]["name"] == "tiny"


def test_models_lists_cards_and_the_active_one(client):
    j = client.get("/models").json()
    assert j["active"]["name"] == "tiny"
    [entry] = j["models"]
    assert entry["active"] and entry["source"] == "shipped" and entry["card"]["architecture"] == "simple_cnn"


def test_metrics_expose_requests_stages_batches_and_model(client):
    from tests.synth import chest_like, encode

    client.post("/predict", files={"file": ("a.png", encode(chest_like(100, 100)))})
    text = client.get("/metrics").text
    for needle in ('cxr_http_requests_total{method="POST",route="/predict",status="200"} 1.0',
                   'cxr_stage_duration_seconds_count{stage="decode"} 1.0',
                   'cxr_stage_duration_seconds_count{stage="explain"} 1.0',
                   "cxr_batch_size_count 1.0", "cxr_queue_depth", 'cxr_active_model_info{', 'version="test-1"'):
        assert needle in text


def test_openapi_documents_predict(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/predict"]["post"]
    assert set(op["requestBody"]["content"]) == {"multipart/form-data", "image/png", "image/jpeg", "application/dicom"}
    assert {"200", "413", "415", "422", "503"} <= set(op["responses"])
    assert "Prediction" in spec["components"]["schemas"]


def test_docs_can_be_turned_off(settings):
    with TestClient(create_app(settings.model_copy(update={"docs_enabled": False}), configure_logs=False)) as c:
        assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404


def test_security_headers_and_request_id(client):
    r = client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_device_selection():
    import torch

    from models.device import select_device
    from models.errors import CXRError

    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type in (expected, "mps")
    if not torch.cuda.is_available():
        with pytest.raises(CXRError, match="CUDA is not available"):
            select_device("cuda:0")
    with pytest.raises(CXRError, match="unknown device|unsupported device"):
        select_device("tpu")


def test_the_serving_device_is_chosen_without_torch_when_no_gpu_can_exist(monkeypatch):
    from models import device

    assert device.serving_device("cpu") == "cpu"
    monkeypatch.setattr(device, "no_accelerator_possible", lambda: True)
    assert device.serving_device("auto") == "cpu"
    monkeypatch.setattr(device, "no_accelerator_possible", lambda: False)
    assert device.serving_device("auto") == str(device.select_device("auto"))


def test_onnx_and_torch_backends_agree(settings):
    """Same probabilities and heatmaps within 1e-4 from both backends."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from tests.synth import chest_like, encode

    data = encode(chest_like(180, 150, seed=9, opacity=1.0))
    out = {}
    for backend in ("torch", "onnx"):
        with TestClient(create_app(settings.model_copy(update={"backend": backend}), configure_logs=False)) as c:
            assert c.get("/readyz").json()["backend"] == backend
            j = c.post("/predict?heatmap=mask", files={"file": ("a.png", data)}).json()
            out[backend] = (j["probabilities"]["PNEUMONIA"],
                            np.asarray(Image.open(io.BytesIO(base64.b64decode(j["heatmap"]["data"]))), dtype=float) / 255)
    assert abs(out["torch"][0] - out["onnx"][0]) < 1e-4
    assert np.abs(out["torch"][1] - out["onnx"][1]).max() <= 1 / 255 + 1e-4  # maps agree to the last 8-bit step


def test_backend_maps_match_before_encoding(tiny_weights, tmp_path):
    from app.inference.catalog import ModelRegistry
    from models.catalog import ModelCatalog
    from models.postprocess import scale_maps

    x = np.random.default_rng(0).standard_normal((3, 1, 64, 64)).astype(np.float32)
    runs = {}
    for backend in ("torch", "onnx"):
        serving = ModelRegistry(ModelCatalog(tiny_weights), "cpu", backend=backend, onnx_cache=tmp_path).load(None)
        assert serving.backend == backend
        runs[backend] = serving.run(x)
    assert np.abs(runs["torch"][0] - runs["onnx"][0]).max() < 1e-4
    maps = {k: scale_maps(v[1][:, 1]) for k, v in runs.items()}
    assert np.abs(maps["torch"] - maps["onnx"]).max() < 1e-4
