from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.keys import ADMIN, PREDICT
from tests.synth import DATA_ROOT, make_model_dir


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder holding one tiny random simple_cnn, marked as the default."""
    root = tmp_path_factory.mktemp("weights")
    make_model_dir(root / "tiny", image_size=64)
    (root / "manifest.json").write_text('{"default": "tiny"}')
    return root


@pytest.fixture()
def settings(tiny_weights: Path, tmp_path: Path) -> Settings:
    # API keys and rate limits are tested in test_auth.py; elsewhere they are off (explicitly, as a
    # deployment would say it), so load tests measure the service rather than the limiter
    return Settings(weights_dir=tiny_weights, state_dir=tmp_path / "state", device="cpu", log_json=False,
                    max_wait_ms=2.0, auth="off", rate_limit_per_min=0, integrity="off")


@pytest.fixture()
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, configure_logs=False)) as c:
        yield c


@pytest.fixture()
def keyed(settings: Settings) -> Iterator[TestClient]:
    """A client of a server with API keys on: tests.keys.ADMIN (admin) and tests.keys.PREDICT (predict)."""
    s = settings.model_copy(update={"auth": "on", "api_keys": f"{ADMIN}:admin,{PREDICT}:predict"})
    with TestClient(create_app(s, configure_logs=False)) as c:
        yield c


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (DATA_ROOT / "test").is_dir():
        pytest.skip(f"real X-rays not available: {DATA_ROOT} does not exist (tests use synthetic images elsewhere)")
    return DATA_ROOT
