"""The console's server side: the page and its assets (versioned names, caching, gzip, CSP, relative URLs),
GET /whoami, and the two /predict options the console draws with (heatmap=layer, preview=true)."""

import base64
import gzip
import io
import re

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from app.console.assets import ConsoleAssets
from app.main import create_app
from tests.keys import ADMIN, PREDICT
from tests.synth import chest_like, encode

PNG = encode(chest_like(300, 240))


def _asset_urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"#]+)"', page)


def test_page_is_served_with_a_strict_policy_and_relative_versioned_assets(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["cache-control"] == "no-cache" and r.headers["x-content-type-options"] == "nosniff"
    page = r.text
    assert "<script>" not in page and " style=" not in page  # nothing inline: the policy would block it
    version = ConsoleAssets().version
    urls = _asset_urls(page)
    assert urls and all(u.startswith(f"assets/{version}/") for u in urls)  # relative: works under /cxr/ too
    for u in urls:
        a = client.get(f"/{u}")
        assert a.status_code == 200, u
        assert a.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_assets_are_gzipped_and_within_the_size_budget(client):
    assets = ConsoleAssets()
    assert assets.compressed_bytes() <= 300 * 1024
    r = client.get(f"/assets/{assets.version}/js/main.js", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and r.headers["content-type"].startswith("text/javascript")
    assert "identify()" in r.text  # the client decoded it
    raw = client.get(f"/assets/{assets.version}/js/main.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.content == assets.files["js/main.js"].body
    assert gzip.decompress(assets.files["js/main.js"].gzipped) == raw.content


def test_every_module_import_resolves_inside_the_versioned_folder():
    assets = ConsoleAssets()
    for name, asset in assets.files.items():
        if name.endswith(".js"):
            for target in re.findall(r'from "\./([\w.]+)"', asset.body.decode()):
                assert f"js/{target}" in assets.files, f"{name} imports a missing {target}"


def test_an_old_or_unknown_asset_is_404_with_a_reason(client):
    r = client.get("/assets/000000000000/js/main.js")
    assert r.status_code == 404 and "reload" in r.json()["detail"]
    r = client.get(f"/assets/{ConsoleAssets().version}/../../app/main.py")
    assert r.status_code == 404


def test_the_console_can_be_turned_off(settings):
    with TestClient(create_app(settings.model_copy(update={"console": False}), configure_logs=False)) as c:
        assert c.get("/").status_code == 404 and c.get("/healthz").status_code == 200


def test_whoami_names_the_role_of_the_presented_key(keyed, client):
    assert keyed.get("/whoami").status_code == 401
    assert keyed.get("/whoami", headers={"X-API-Key": "wrong-key-000000000000"}).json()["detail"] == "invalid API key"
    p = keyed.get("/whoami", headers={"X-API-Key": PREDICT}).json()
    a = keyed.get("/whoami", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert p["role"] == "predict" and a["role"] == "admin" and p["auth"] and len(p["key_id"]) == 8
    assert ADMIN not in str(a) and PREDICT not in str(p)
    assert client.get("/whoami").json() == {"auth": False, "role": "admin", "key_id": None}


def _b64_image(field: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(field["data"]))))


def test_layer_over_preview_is_the_overlay(client):
    overlay = client.post("/predict", files={"file": ("a.png", PNG)}).json()
    layered = client.post("/predict?heatmap=layer&preview=true", files={"file": ("a.png", PNG)}).json()
    assert layered["probabilities"] == overlay["probabilities"]
    layer, gray = _b64_image(layered["heatmap"]), _b64_image(layered["preview"])
    assert layer.shape == (300, 240, 4) and gray.shape == (300, 240) and layered["heatmap"]["kind"] == "layer"
    assert np.array_equal(gray, np.asarray(Image.open(io.BytesIO(PNG)).convert("L")))  # 8-bit gray: as read
    a = layer[..., 3:].astype(np.float64) / 255  # what a browser does: source-over compositing
    composed = gray[..., None] * (1 - a) + layer[..., :3] * a
    assert np.abs(composed - _b64_image(overlay["heatmap"])).max() <= 1.0
    assert layer[..., 3].max() > 0 and layer[..., 3].max() <= round(0.5 * 255)  # CXR_HEATMAP_ALPHA caps the opacity


def test_preview_follows_the_heatmap_size_cap_and_layer_needs_alpha(client, settings):
    r = client.post("/predict?heatmap=none&preview=true", files={"file": ("a.png", PNG)}).json()
    assert r["heatmap"] is None and _b64_image(r["preview"]).shape == (300, 240)
    assert client.post("/predict", files={"file": ("a.png", PNG)}).json()["preview"] is None
    r = client.post("/predict?heatmap=layer&heatmap_format=jpeg", files={"file": ("a.png", PNG)})
    assert r.status_code == 422 and "alpha channel" in r.json()["detail"]
    webp = client.post("/predict?heatmap=layer&heatmap_format=webp", files={"file": ("a.png", PNG)}).json()["heatmap"]
    assert webp["media_type"] == "image/webp" and Image.open(io.BytesIO(base64.b64decode(webp["data"]))).mode == "RGBA"
    with TestClient(create_app(settings.model_copy(update={"heatmap_max_side": 120}), configure_logs=False)) as small:
        r = small.post("/predict?heatmap=layer&preview=true", files={"file": ("a.png", PNG)}).json()
        assert _b64_image(r["preview"]).shape == (120, 96) and _b64_image(r["heatmap"]).shape == (120, 96, 4)
