"""Where the server's memory goes: RSS by mapping kind at idle and after 32-client traffic. ONE JSON line.

  .venv/bin/python benchmarks/memory.py [--seconds 120] [--clients 32] [--env KEY=VALUE ...]

Reads /proc/<pid>/smaps of a real `cxr serve` (shipped default model, ONNX Runtime) and sums
resident memory by what backs it: the heap and anonymous mappings (malloc arenas, numpy and
tensor buffers, ONNX Runtime's arena), shared libraries by family (torch, onnxruntime, other),
and the rest. Also the process's thread count. ``--env`` passes settings to the server, e.g.
``--env CXR_MALLOC_ARENA_MAX=0`` to see the process without the allocator setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.soak import traffic  # noqa: E402
from tests.live_server import BENCH_ENV, start_server, wait_ready  # noqa: E402

FAMILIES = (("torch", ("/torch/",)), ("onnxruntime", ("onnxruntime",)),
            ("python+numpy+other libs", (".so", "python")))


def family(path: str) -> str:
    if not path or path.startswith("[anon") or path == "[heap]":
        return "heap+anonymous"
    if path.startswith("["):
        return "other"
    for name, needles in FAMILIES:
        if any(n in path for n in needles):
            return name
    return "other files"


def breakdown(pid: int) -> dict[str, float]:
    """Resident MB per mapping family (Rss of each smaps entry)."""
    sums: dict[str, int] = defaultdict(int)
    path = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            path = head[5] if len(head) > 5 else ""
        elif line.startswith("Rss:"):
            sums[family(path)] += int(line.split()[1])
    out = {k: round(v / 1024, 1) for k, v in sorted(sums.items())}
    out["total"] = round(sum(sums.values()) / 1024, 1)
    return out


def threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    args = ap.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.env)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(BENCH_ENV | {"CXR_STATE_DIR": tmp, "CXR_QUEUE_SIZE": "256", **extra}, capture=False)
        try:
            wait_ready(proc, url)
            idle = breakdown(proc.pid)
            result = asyncio.run(traffic(url, args.seconds, args.clients))
            loaded = breakdown(proc.pid)
            n_threads = threads(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(json.dumps({"seconds": args.seconds, "clients": args.clients, "server_env": extra,
                      "requests": result["requests"], "unexpected_errors": result["unexpected_errors"],
                      "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"], "threads": n_threads,
                      "rss_mb_idle": idle, "rss_mb_after_load": loaded}))


if __name__ == "__main__":
    main()
