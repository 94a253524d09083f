"""glibc malloc settings for the serving process, made by the service itself (no wrapper script needed).

Measured (benchmarks/memory.py, 32 clients): glibc's default of up to 8 arenas per core lets every
worker thread keep its own high-water mark, and ONNX Runtime's own CPU arena grows in powers of two
and never gives memory back. The service turns ONNX Runtime's arena off (models/onnx_serving.py)
and asks glibc for few arenas and a high mmap threshold, so the large activation buffers of a batch
are reused from the heap instead of being mapped and faulted in on every run (which made arena-less
batches ~45 % slower), and a trim threshold that returns what a burst took.
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
    log.info("malloc: %s", ", ".join(f"{k.strip('_')}={v}" for k, v in done.items()) or "operator's settings kept")
    return done
