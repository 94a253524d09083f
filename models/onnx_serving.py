"""ONNX graphs for serving without torch: exported once per weights digest, cached, opened in ONNX Runtime.

Importing torch costs a process about 500 MB before any model is loaded, and the exporter leaves
more behind. So a server that serves through ONNX Runtime never imports it: the graph is exported
by a short-lived child process (``python -m models.onnx_export``) and cached under the state
folder, named by the sha256 of the weights it was made from (and the torch version and export
format). A cache entry is used only when its sidecar names that digest and the graph's own sha256
still matches; the caller has verified the weights against their card first. A process that has
torch loaded anyway (tests, the offline tools) exports in process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from models.errors import WeightsError

log = logging.getLogger(__name__)
GraphKind = Literal["classifier", "guard"]
EXPORT_FORMAT = 1  # bump when models.onnx_export changes the graph it writes
EXPORT_TIMEOUT_S = 600
_ROOT = Path(__file__).resolve().parents[1]


def _torch_version() -> str:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "none"


def cache_key(kind: GraphKind, source_sha256: str, image_size: int) -> str:
    return f"{kind}-{source_sha256[:32]}-{image_size}px-torch{_torch_version()}-f{EXPORT_FORMAT}"


def _read_cached(path: Path, source_sha256: str) -> bytes | None:
    meta_path = path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
        data = path.read_bytes()
    except (OSError, ValueError):
        return None
    if meta.get("source_sha256") != source_sha256 or meta.get("onnx_sha256") != hashlib.sha256(data).hexdigest():
        return None  # damaged or from other weights: export again
    return data


def _export_in_child(kind: GraphKind, folder: Path) -> bytes:
    with tempfile.TemporaryDirectory(prefix="cxr-onnx-") as tmp:
        out = Path(tmp) / "graph.onnx"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
        try:
            done = subprocess.run([sys.executable, "-m", "models.onnx_export", kind, str(folder), str(out)],
                                  env=env, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise WeightsError(f"exporting the {kind} to ONNX took longer than {EXPORT_TIMEOUT_S} s") from None
        if done.returncode != 0 or not out.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise WeightsError(f"exporting the {kind} to ONNX failed: {tail[0][:300]}")
        return out.read_bytes()


def _export(kind: GraphKind, folder: Path) -> bytes:
    if "torch" in sys.modules:  # already paid for: no second process
        from models.onnx_export import export_folder

        return export_folder(kind, folder)
    return _export_in_child(kind, folder)


def onnx_graph(kind: GraphKind, folder: Path, source_sha256: str, image_size: int, cache_dir: Path | None) -> bytes:
    """The ONNX bytes of the verified model in ``folder`` (whose weights have ``source_sha256``), from
    ``cache_dir`` when a valid entry is there, else exported and stored there (``None``: no cache)."""
    if cache_dir is None:
        return _export(kind, folder)
    path = Path(cache_dir) / f"{cache_key(kind, source_sha256, image_size)}.onnx"
    if (data := _read_cached(path, source_sha256)) is not None:
        log.info("ONNX graph of the %s from the cache: %s", kind, path.name)
        return data
    t = time.perf_counter()
    data = _export(kind, folder)
    log.info("exported the %s to ONNX in %.1f s (%s): %s", kind, time.perf_counter() - t,
             "in process" if "torch" in sys.modules else "child process, torch not loaded here", path.name)
    from models.card import write_atomic, write_json_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)  # graph first, then the sidecar that vouches for it
    write_json_atomic(path.with_suffix(".json"), {
        "kind": kind, "source_sha256": source_sha256, "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "image_size": image_size, "torch": _torch_version(), "export_format": EXPORT_FORMAT, "created": time.time()})
    return data


def cpu_session(graph: bytes, threads: int | None) -> Any:
    """An ONNX Runtime CPU session; ``threads`` None: ONNX Runtime's default (one per core).

    Its working memory: ONNX Runtime's arena on, its memory patterns off. A memory pattern is one
    block holding all of a run's intermediate tensors (80 MB for a batch of 8 at 224 px); without the
    arena that block was mapped, faulted in and unmapped on every full batch, so the server's RSS
    swung by 80 MB with whether a batch was in flight, and each batch paid the page faults. With
    both on, the arena keeps every pattern's block (350 MB after mixed batch sizes, against 270).
    Arena without patterns: each tensor is taken from and given back to the arena, which stops
    growing after the first batches (batch sizes 1-8 at 224 px: +150 MB over the loaded session,
    then flat) and no run faults in fresh pages. 5-minute soak, 32 clients: 18,447 requests and
    RSS 485-504 MB, against 13,971 requests and 462-543 MB before (README, Memory)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = False
    # no busy-waiting between kernels: a spinning thread steals the core a training job or
    # the decoder needs, which costs more latency under load than it saves when idle
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
