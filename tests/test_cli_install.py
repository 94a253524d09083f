"""The CLI finds models where the server does (CXR_WEIGHTS_DIR, fine-tuned versions under CXR_STATE_DIR),
also from a non-editable install that has no weights/ beside its code (the container's case)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.synth import make_model_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built as a wheel and installed into a folder of its own (code only, no weights)."""
    tmp = tmp_path_factory.mktemp("install")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp / "wheel"), str(ROOT)], capture_output=True, text=True, timeout=300)
    if build.returncode != 0:
        pytest.skip(f"cannot build the wheel here: {build.stderr[-300:]}")
    wheel = next((tmp / "wheel").glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp / "site"),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    assert not (tmp / "site" / "weights").exists() and (tmp / "site" / "app" / "cli.py").is_file()
    return tmp / "site"


def run(site: Path, env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CXR_")}
    clean["PYTHONPATH"] = str(site)  # the installed copy first; dependencies still come from this venv
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=cwd, env={**clean, **env},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_installed_cli_honours_weights_dir_and_state_dir(installed, tiny_weights, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    make_model_dir(tmp_path / "state" / "models" / "tiny-ft-1", image_size=64, version="20260101-000000")
    env = {"CXR_WEIGHTS_DIR": str(weights), "CXR_STATE_DIR": str(tmp_path / "state")}
    r = run(installed, env, "card", "--model", "tiny", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# Model card: tiny ")
    r = run(installed, env, "card", "--model", "tiny-ft-1", cwd=tmp_path)  # a fine-tuned version
    assert r.returncode == 0 and "20260101-000000" in r.stdout, r.stderr
    r = run(installed, env, "card", "--model", "nope", cwd=tmp_path)
    assert r.returncode == 2 and "no model named 'nope'; known: tiny, tiny-ft-1" in r.stderr
    r = run(installed, env, "card", cwd=tmp_path)  # the default comes from CXR_WEIGHTS_DIR/manifest.json
    assert r.returncode == 0 and r.stdout.startswith("# Model card: tiny "), r.stderr


def test_a_name_the_file_system_cannot_look_up_is_not_found(tiny_weights):
    """Found by the schema fuzzer: a 300-character model name made the path lookup raise (500)."""
    from models.catalog import ModelCatalog
    from models.errors import ModelNotFound

    with pytest.raises(ModelNotFound, match="no model named"):
        ModelCatalog(tiny_weights).find("x" * 300)
