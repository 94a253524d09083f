"""API keys and roles: 401 without a key, 403 for the wrong role, open health, generated keys on first start."""

import json

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.keys import ADMIN, PREDICT
from tests.synth import chest_like, encode

PNG = encode(chest_like(80, 80))


def test_health_is_open_and_predict_needs_a_key(keyed):
    assert keyed.get("/healthz").status_code == 200 and keyed.get("/readyz").status_code == 200
    assert keyed.get("/metrics").status_code == 200
    r = keyed.post("/predict", files={"file": ("a.png", PNG)})
    assert r.status_code == 401 and "missing API key" in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = keyed.post("/predict", files={"file": ("a.png", PNG)}, headers={"X-API-Key": "wrong-key-000000000000"})
    assert r.status_code == 401 and r.json()["detail"] == "invalid API key"
    assert keyed.post("/predict", files={"file": ("a.png", PNG)}, headers={"X-API-Key": PREDICT}).status_code == 200
    assert keyed.post("/predict", files={"file": ("a.png", PNG)},
                      headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200


@pytest.mark.parametrize("method,path,body", [
    ("post", "/train", {"dataset": "x"}),
    ("get", "/train", None),
    ("post", "/models/tiny/activate", None),
    ("post", "/models/tiny/calibrate", {"dataset": "x"}),
    ("get", "/audit", None),
    ("get", "/audit/export", None),
    ("get", "/datasets", None),
    ("delete", "/datasets/abc", None),
])
def test_admin_endpoints_need_the_admin_role(keyed, method, path, body):
    kwargs = {"json": body} if body else {}
    assert getattr(keyed, method)(path, **kwargs).status_code == 401
    r = getattr(keyed, method)(path, headers={"X-API-Key": PREDICT}, **kwargs)
    assert r.status_code == 403 and "needs the admin role" in r.json()["detail"]
    assert getattr(keyed, method)(path, headers={"X-API-Key": ADMIN}, **kwargs).status_code not in (401, 403)


def test_read_only_listing_takes_a_predict_key(keyed):
    assert keyed.get("/models").status_code == 401
    assert keyed.get("/models", headers={"X-API-Key": PREDICT}).status_code == 200


def test_metrics_can_be_keyed(settings):
    s = settings.model_copy(update={"auth": "on", "api_keys": f"{PREDICT}:predict", "metrics_auth": True})
    with TestClient(create_app(s, configure_logs=False)) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"X-API-Key": PREDICT}).status_code == 200


def test_first_start_generates_keys_once_and_stores_only_digests(settings, capsys):
    s = settings.model_copy(update={"auth": "on"})
    with TestClient(create_app(s, configure_logs=False)) as c:
        printed = capsys.readouterr().err
        admin = printed.split("admin:")[1].split()[0]
        predict = printed.split("predict:")[1].split()[0]
        assert c.post("/train", json={"dataset": "x"}, headers={"X-API-Key": predict}).status_code == 403
        assert c.get("/train", headers={"X-API-Key": admin}).status_code == 200
    stored = (s.state_dir / "api_keys.json").read_text()
    assert admin not in stored and predict not in stored and len(json.loads(stored)["keys"]) == 2
    with TestClient(create_app(s, configure_logs=False)) as c:  # restart: same keys, nothing printed
        assert "generated" not in capsys.readouterr().err
        assert c.get("/models", headers={"X-API-Key": predict}).status_code == 200


def test_bad_key_configuration_stops_startup(settings, caplog):
    s = settings.model_copy(update={"auth": "on", "api_keys": "short:admin"})
    with pytest.raises(BaseException):
        with TestClient(create_app(s, configure_logs=False)):
            pass
    assert "at least 16 characters" in caplog.text


def test_auth_off_is_explicit_and_warned(settings, caplog):
    with TestClient(create_app(settings, configure_logs=False)) as c:
        assert c.post("/predict", files={"file": ("a.png", PNG)}).status_code == 200
    assert "API keys are OFF" in caplog.text


def test_rate_limit_per_key_answers_429_with_retry_after(settings):
    s = settings.model_copy(update={"auth": "on", "api_keys": f"{ADMIN}:admin,{PREDICT}:predict",
                                    "rate_limit_per_min": 60, "rate_limit_burst": 3})
    with TestClient(create_app(s, configure_logs=False)) as c:
        codes = [c.get("/models", headers={"X-API-Key": PREDICT}).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429
        r = c.get("/models", headers={"X-API-Key": PREDICT})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "rate limit" in r.json()["detail"]
        assert c.get("/models", headers={"X-API-Key": ADMIN}).status_code == 200  # buckets are per key
        assert c.get("/healthz").status_code == 200  # health is never limited


def test_rate_limiter_refills():
    from app.core.ratelimit import RateLimiter
    from app.errors import TooManyRequests

    now = [0.0]
    rl = RateLimiter(60, 2, clock=lambda: now[0])
    rl.check("a"), rl.check("a")
    with pytest.raises(TooManyRequests):
        rl.check("a")
    now[0] += 1.0  # one token a second
    rl.check("a")


def test_upload_slots_cap_concurrent_uploads():
    from app.core.ratelimit import UploadSlots
    from app.errors import QueueFull

    slots = UploadSlots(1)
    with slots.hold():
        with pytest.raises(QueueFull, match="1 uploads are already in progress"):
            with slots.hold():
                pass
    with slots.hold():
        pass


def test_cors_is_off_by_default_and_can_be_enabled(settings):
    with TestClient(create_app(settings, configure_logs=False)) as c:
        r = c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    s = settings.model_copy(update={"cors_origins": ["https://viewer.hospital.example"]})
    with TestClient(create_app(s, configure_logs=False)) as c:
        r = c.get("/healthz", headers={"Origin": "https://viewer.hospital.example"})
        assert r.headers["access-control-allow-origin"] == "https://viewer.hospital.example"
