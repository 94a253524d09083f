"""`cxr serve` through ONNX Runtime never loads torch; its graphs are exported once per weights digest."""

import json
from pathlib import Path

import httpx
import pytest

from tests.live_server import start_server, wait_ready
from tests.synth import DATA_ROOT, chest_like, encode


def _mapped_libraries(pid: int) -> set[str]:
    return {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if ".so" in line}


def _run(env: dict[str, str]) -> tuple[str, set[str], float]:
    proc, url = start_server(env)
    try:
        wait_ready(proc, url)
        libs = _mapped_libraries(proc.pid)
        real = sorted((DATA_ROOT / "test" / "PNEUMONIA").glob("*.jpeg"))[:1] if DATA_ROOT.is_dir() else []
        data = real[0].read_bytes() if real else encode(chest_like(256, 256))  # synthetic: refused, still scored
        r = httpx.post(f"{url}/predict", content=data, headers={"content-type": "application/octet-stream"},
                       timeout=30)
        assert r.status_code == (200 if real else 422), r.text
        p = r.json()["probabilities"]["PNEUMONIA"] if real else r.json()["integrity"]["score"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    return out, libs, p


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to list a process's libraries")
def test_the_server_serves_without_torch_and_reuses_its_exported_graphs(tmp_path):
    state = tmp_path / "state"
    env = {"CXR_AUTH": "off", "CXR_STATE_DIR": str(state), "CXR_BACKEND": "onnx"}
    out, libs, p_first = _run(env)
    assert not [lib for lib in libs if "libtorch" in lib], "the ONNX-serving process mapped torch's libraries"
    assert any("onnxruntime" in lib for lib in libs)
    assert out.count("child process, torch not loaded here") == 2, out  # the classifier and the guard
    graphs = sorted((state / "onnx").glob("*.onnx"))
    assert [g.name.split("-")[0] for g in graphs] == ["classifier", "guard"]
    for g in graphs:
        meta = json.loads(g.with_suffix(".json").read_text())
        assert len(meta["source_sha256"]) == 64 and len(meta["onnx_sha256"]) == 64

    out, _, p_again = _run(env)  # restart: both graphs from the cache, same answer
    assert out.count("from the cache") == 2 and "exported the" not in out, out
    assert p_again == p_first

    damaged = graphs[0]
    damaged.write_bytes(damaged.read_bytes()[:-100])  # a damaged cache entry is exported again, not used
    out, _, p_after = _run(env)
    assert "exported the classifier" in out and out.count("from the cache") == 1, out
    assert p_after == p_first


def test_the_server_modules_import_no_torch():
    """Cheap guard beside the live-server test: importing what `cxr serve` imports loads no torch."""
    import subprocess
    import sys

    code = "import sys, app.main, app.cli, app.serve; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
