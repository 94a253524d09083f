"""glibc malloc settings for the serving process, made by the service itself (no wrapper script needed).

Measured (benchmarks/memory.py, 32 clients): glibc's default of up to 8 arenas per core lets every
worker thread keep its own high-water mark. Set here: few arenas; a high mmap threshold, so a
request's large buffers (a decoded 16-bit DICOM, the float copies of the image, the overlay and its
PNG) are reused from the heap instead of being mapped and faulted in for every request; and a trim
threshold that returns what a burst took. ONNX Runtime's working memory is its own arena
(models/onnx_serving.py says how it is set up), not these settings'.
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
MMAP_THRESHOLD = 64 << 20  # a DICOM's float64 copy (2048²: 32 MB; to ~2,800 px square) stays in the heap
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
