"""POST /predict end to end through the app (TestClient), with a tiny random model."""

import asyncio
import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from app.api.body import prediction_json
from app.main import create_app
from app.schemas import Prediction
from tests.synth import chest_like, dicom_bytes, encode

XRAY = chest_like(200, 240, seed=4)


def _probs(r):
    assert r.status_code == 200, r.text
    return r.json()["probabilities"]


def test_multipart_png_returns_the_documented_shape(client):
    r = client.post("/predict", files={"file": ("x.png", encode(XRAY), "image/png")})
    assert r.status_code == 200, r.text
    j = r.json()
    assert set(j) == {"prediction", "probabilities", "threshold", "priority", "urgent_threshold", "model", "heatmap",
                      "image", "preview", "timing_ms", "integrity", "warnings"}
    assert j["preview"] is None  # only with preview=true
    assert j["urgent_threshold"] is None  # the tiny card has no urgent point: urgent = called PNEUMONIA
    assert j["priority"] == ("urgent" if j["prediction"] == "PNEUMONIA" else "routine")
    assert j["integrity"] is None and j["warnings"] == ["the input-integrity check is off on this server (CXR_INTEGRITY=off)"]
    p = j["probabilities"]
    assert set(p) == {"NORMAL", "PNEUMONIA"} and p["NORMAL"] + p["PNEUMONIA"] == pytest.approx(1.0, abs=1e-9)
    assert j["prediction"] == ("PNEUMONIA" if p["PNEUMONIA"] >= j["threshold"] else "NORMAL")
    assert j["model"]["name"] == "tiny" and len(j["model"]["sha256"]) == 64
    assert j["image"] == {"width": 240, "height": 200, "format": "png"}
    h = j["heatmap"]
    assert (h["target"], h["kind"], h["media_type"], h["width"], h["height"]) == ("PNEUMONIA", "overlay", "image/png", 240, 200)
    overlay = Image.open(io.BytesIO(base64.b64decode(h["data"])))
    assert overlay.size == (240, 200) and overlay.mode == "RGB"
    assert set(j["timing_ms"]) == {"decode", "integrity", "preprocess", "infer", "explain", "total"}


@pytest.mark.parametrize("query", ["", "?heatmap=none", "?heatmap=layer&preview=true"])
def test_the_body_is_exactly_what_pydantic_writes_for_the_prediction(client, query):
    """The images are spliced into pydantic's JSON (app/api/body.py): the bytes must be its own."""
    r = client.post(f"/predict{query}", files={"file": ("x.png", encode(XRAY))})
    assert r.status_code == 200, r.text
    assert r.content == Prediction.model_validate_json(r.content).model_dump_json(by_alias=True).encode()


def test_spliced_json_survives_strings_that_look_like_its_markers(client):
    p = Prediction.model_validate_json(client.post("/predict?heatmap=layer&preview=true",
                                                   files={"file": ("x.png", encode(XRAY))}).content)
    tricky = p.model_copy(update={"warnings": ['"@', "@" + "0" * 32, "\u0000 \" \u00e9 \x00", '"data":"'],
                                  "model": p.model.model_copy(update={"name": "@heatmap"})})
    assert prediction_json(tricky) == tricky.model_dump_json(by_alias=True).encode()
    bare = p.model_copy(update={"heatmap": None, "preview": None})
    assert prediction_json(bare) == bare.model_dump_json(by_alias=True).encode()


@pytest.mark.parametrize("fmt,content_type", [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_raw_body_uploads(client, fmt, content_type):
    r = client.post("/predict", content=encode(XRAY, fmt), headers={"content-type": content_type})
    assert r.status_code == 200 and r.json()["image"]["format"] == fmt.lower()


def test_format_comes_from_bytes_not_the_declared_type(client):
    r = client.post("/predict", content=encode(XRAY, "JPEG"), headers={"content-type": "image/png"})
    assert r.status_code == 200 and r.json()["image"]["format"] == "jpeg"


def test_dicom_prediction_equals_png_of_the_same_pixels(client):
    png = _probs(client.post("/predict?heatmap=none", files={"file": ("a.png", encode(XRAY))}))
    for data in (dicom_bytes(XRAY), dicom_bytes(255 - XRAY, photometric="MONOCHROME1")):
        r = client.post("/predict?heatmap=none", content=data, headers={"content-type": "application/dicom"})
        assert r.json()["image"]["format"] == "dicom"
        assert _probs(r) == png


def test_heatmap_modes_and_targets(client):
    data = encode(XRAY)
    r = client.post("/predict?heatmap=none", files={"file": ("a.png", data)})
    assert r.json()["heatmap"] is None
    mask = client.post("/predict?heatmap=mask&target=NORMAL", files={"file": ("a.png", data)}).json()["heatmap"]
    assert mask["kind"] == "mask" and mask["target"] == "NORMAL"
    m = np.asarray(Image.open(io.BytesIO(base64.b64decode(mask["data"]))))
    other = client.post("/predict?heatmap=mask&target=PNEUMONIA", files={"file": ("a.png", data)}).json()["heatmap"]
    m2 = np.asarray(Image.open(io.BytesIO(base64.b64decode(other["data"]))))
    assert m.shape == m2.shape == (200, 240)
    # scaled to [0, 1]: full range, or all zero where the class has no positive evidence at all
    assert m.max() in (0, 255) and m2.max() in (0, 255) and max(m.max(), m2.max()) == 255
    assert not np.array_equal(m, m2)
    pred = client.post("/predict?target=predicted", files={"file": ("a.png", data)}).json()
    assert pred["heatmap"]["target"] == pred["prediction"]
    jpg = client.post("/predict?heatmap_format=jpeg", files={"file": ("a.png", data)}).json()["heatmap"]
    assert jpg["media_type"] == "image/jpeg" and base64.b64decode(jpg["data"])[:3] == b"\xff\xd8\xff"


def test_accept_image_png_returns_the_overlay_with_headers(client):
    r = client.post("/predict", content=encode(XRAY), headers={"content-type": "image/png", "accept": "image/png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-cxr-prediction"] in ("NORMAL", "PNEUMONIA")
    assert 0 <= float(r.headers["x-cxr-probability-pneumonia"]) <= 1
    assert Image.open(io.BytesIO(r.content)).size == (240, 200)


def test_heatmap_is_capped_for_huge_images(client, settings):
    big = np.asarray(Image.fromarray(XRAY).resize((2400, 2000)))
    j = client.post("/predict", files={"file": ("a.png", encode(big))}).json()
    assert j["image"] == {"width": 2400, "height": 2000, "format": "png"}
    assert (j["heatmap"]["width"], j["heatmap"]["height"]) == (1024, 853)


BAD_INPUTS = [
    ("empty raw body", dict(content=b"", headers={"content-type": "image/png"}), 400, "empty upload"),
    ("no file field", dict(files={"other": ("a.png", b"x")}), 400, "has no 'file' field"),
    ("text as png", dict(files={"file": ("a.png", b"hello world")}), 415, "expected PNG, JPEG or DICOM"),
    ("pdf", dict(content=b"%PDF-1.4\n...", headers={"content-type": "application/octet-stream"}), 415, "expected PNG"),
    ("gif", dict(files={"file": ("a.gif", encode(XRAY, "GIF"))}), 415, "expected PNG, JPEG or DICOM"),
    ("text content type", dict(content=b"abc", headers={"content-type": "text/plain"}), 415, "unsupported Content-Type"),
    ("truncated png", dict(files={"file": ("a.png", encode(XRAY)[:300])}), 422, "corrupt or truncated PNG"),
    ("truncated jpeg", dict(files={"file": ("a.jpg", encode(XRAY, "JPEG")[:300])}), 422, "corrupt or truncated JPEG"),
    ("tiny image", dict(files={"file": ("a.png", encode(XRAY[:20, :20]))}), 422, "at least 64 px"),
    ("dicom no pixels", dict(content=dicom_bytes(XRAY, with_pixels=False), headers={"content-type": "application/dicom"}), 422, "no pixel data"),
    ("dicom multiframe", dict(content=dicom_bytes(np.stack([XRAY, XRAY]), frames=2), headers={"content-type": "application/dicom"}), 422, "multi-frame"),
    ("dicom sr", dict(content=dicom_bytes(XRAY, sop_class="1.2.840.10008.5.1.4.1.1.88.33"), headers={"content-type": "application/dicom"}), 422, "is not an image"),
    ("malformed multipart", dict(content=b"--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc", headers={"content-type": "multipart/form-data; boundary=xyz"}), 400, "multipart"),
    ("bad target", dict(files={"file": ("a.png", encode(XRAY))}, params={"target": "CAT"}), 422, "invalid request: query.target"),
]


@pytest.mark.parametrize("case,kwargs,status,detail", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_a_clear_4xx(client, case, kwargs, status, detail):
    r = client.post("/predict", **kwargs)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]
    assert client.get("/readyz").status_code == 200


def test_limits_give_413(settings):
    from fastapi.testclient import TestClient

    small = settings.model_copy(update={"max_upload_bytes": 4096, "max_pixels": 50_000})
    with TestClient(create_app(small, configure_logs=False)) as c:
        r = c.post("/predict", content=b"\x89PNG\r\n\x1a\n" + b"\0" * 10_000, headers={"content-type": "image/png"})
        assert r.status_code == 413 and "exceeds the limit of 4096 bytes" in r.json()["detail"]
        r = c.post("/predict", files={"file": ("a.png", encode(Image.new("L", (300, 300))))})
        assert r.status_code == 413 and "over the limit of 50000" in r.json()["detail"]


def test_decompression_bomb_is_413_without_decoding(client):
    bomb = encode(Image.new("L", (20_000, 20_000)), "PNG", optimize=True)
    assert len(bomb) < 1_000_000
    r = client.post("/predict", files={"file": ("bomb.png", bomb)})
    assert r.status_code == 413 and "400000000 pixels" in r.json()["detail"]


def test_concurrent_requests_are_batched_without_cross_talk(settings):
    """32 parallel requests, 4 distinct images: each answer matches that image's solo answer."""
    images = [encode(chest_like(160, 160, seed=s, opacity=s % 2)) for s in range(4)]
    app = create_app(settings.model_copy(update={"max_wait_ms": 20.0}), configure_logs=False)

    async def run() -> tuple[list[dict], list[dict], str]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                solo = [(await c.post("/predict?heatmap=mask", files={"file": ("a.png", im)})).json() for im in images]
                rs = await asyncio.gather(*[c.post("/predict?heatmap=mask", files={"file": ("a.png", images[i % 4])})
                                            for i in range(32)])
                metrics = (await c.get("/metrics")).text
        return solo, [r.json() | {"_status": r.status_code} for r in rs], metrics

    solo, results, metrics = asyncio.run(run())
    for i, r in enumerate(results):
        assert r["_status"] == 200
        expected = solo[i % 4]
        assert r["probabilities"]["PNEUMONIA"] == pytest.approx(expected["probabilities"]["PNEUMONIA"], abs=1e-5)
        assert r["heatmap"]["data"] == expected["heatmap"]["data"] or _close_maps(r, expected)
    batch_sizes = [line for line in metrics.splitlines() if line.startswith("cxr_batch_size_count")]
    batches = float(batch_sizes[0].split()[-1])
    assert batches < 4 + 32  # some requests shared a forward pass


def _close_maps(a, b):
    ma = np.asarray(Image.open(io.BytesIO(base64.b64decode(a["heatmap"]["data"]))), dtype=int)
    mb = np.asarray(Image.open(io.BytesIO(base64.b64decode(b["heatmap"]["data"]))), dtype=int)
    return np.abs(ma - mb).max() <= 1


def test_queue_full_answers_503_with_retry_after(settings):
    tiny_queue = settings.model_copy(update={"queue_size": 1, "max_wait_ms": 200.0, "max_batch_size": 1,
                                             "retry_after_s": 7})
    app = create_app(tiny_queue, configure_logs=False)

    async def run() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                return await asyncio.gather(*[c.post("/predict?heatmap=none", files={"file": ("a.png", encode(XRAY))})
                                              for _ in range(12)])

    responses = asyncio.run(run())
    statuses = [r.status_code for r in responses]
    assert 200 in statuses and 503 in statuses
    busy = [r for r in responses if r.status_code == 503][0]
    assert busy.headers["retry-after"] == "7" and "queue is full" in busy.json()["detail"]  # CXR_RETRY_AFTER_S
    # the same app starts again cleanly (a second lifespan on a new event loop)
    assert 200 in [r.status_code for r in asyncio.run(run())]
