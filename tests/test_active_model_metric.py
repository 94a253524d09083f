"""Every activation updates cxr_active_model_info, whoever asks for it (a route, auto-promotion, startup)."""

from __future__ import annotations

import shutil

from fastapi.testclient import TestClient

from app.main import create_app
from tests.synth import make_model_dir


def test_activation_outside_the_route_updates_the_metric(settings, tiny_weights, tmp_path):
    root = tmp_path / "weights"
    shutil.copytree(tiny_weights, root)
    make_model_dir(root / "other", image_size=64, version="other-2")
    with TestClient(create_app(settings.model_copy(update={"weights_dir": root}), configure_logs=False)) as c:
        assert 'version="test-1"' in c.get("/metrics").text
        c.app.state.services.registry.activate("other")  # what auto-promotion of a finished job calls
        text = c.get("/metrics").text
        assert 'name="other"' in text and 'version="other-2"' in text and 'version="test-1"' not in text
        assert c.get("/readyz").json()["model"]["version"] == "other-2"
