"""glibc malloc settings for the serving process, made by the service itself (no wrapper script needed).

Measured (benchmarks/memory.py, 32 clients): glibc's default of up to 8 arenas per core lets every
worker thread keep its own high-water mark, and ONNX Runtime's own CPU arena grows in powers of two
and never gives memory back (+147 MB at batch 8, +675 MB at batch 32). Once glibc is tuned here the service turns
ONNX Runtime's arena off (``malloc_tuned``): few arenas, and a high mmap threshold so the large
activation buffers of a batch are reused from the heap instead of being mapped and faulted in on
every run (which made arena-less batches ~45 % slower), and a trim threshold that returns what a
burst took.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 64 << 20  # batch activations (8 x 32 x 112 x 112 floats = 13 MB) stay in the heap
TRIM_THRESHOLD = 128 << 20
_applied: dict[str, int] = {}  # what this process's allocator was set to (mallopt is process-wide)


def malloc_tuned() -> bool:
    """Whether this process's glibc allocator was tuned: then ONNX Runtime's own arena is turned off
    (without the high mmap threshold, arena-less batches pay page faults: ~45 % slower at batch 8)."""
    return "MALLOC_MMAP_THRESHOLD_" in _applied or "MALLOC_MMAP_THRESHOLD_" in os.environ


def tune_malloc(arena_max: int) -> dict[str, int]:
    """Apply the settings; ``arena_max`` 0 leaves glibc's defaults. Variables the operator set
    (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) win. Returns what was set."""
    if arena_max <= 0 or not sys.platform.startswith("linux"):
        return {}
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return {}
    wanted = {"MALLOC_ARENA_MAX": (M_ARENA_MAX, arena_max), "MALLOC_MMAP_THRESHOLD_": (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
              "MALLOC_TRIM_THRESHOLD_": (M_TRIM_THRESHOLD, TRIM_THRESHOLD)}
    done = {}
    for env, (param, value) in wanted.items():
        if env in os.environ:
            continue
        if mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1:
            done[env] = value
    _applied.update(done)
    log.info("malloc: %s", ", ".join(f"{k.strip('_')}={v}" for k, v in done.items()) or "operator's settings kept")
    return done
