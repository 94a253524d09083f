"""The BLAS library numpy calls (OpenBLAS in numpy's wheels), held to one thread in `cxr serve`.

The server asks BLAS only for small products (the heatmap's bilinear upsampling, 1024x7 @ 7x1024,
0.7 ms on one thread). OpenBLAS starts a thread per core for them and, after each call, keeps those
threads spinning for more work; on 2 cores they took the time ONNX Runtime, the integrity guard and
the PNG decoder needed. Measured with one client, a 1024² PNG and the overlay (server timings):
integrity 8.7 -> 4.5 ms, infer 19.1 -> 14.4, explain 14.5 -> 10.3, the answer 55.6 -> 42.6 ms.
Thread-count variables the operator set (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS) win.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
OPERATOR_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def limit_blas_threads(threads: int) -> int | None:
    """Hold every BLAS library loaded in this process (and loaded later by numpy) to ``threads``;
    0 leaves the library's default. Returns the limit set, None when nothing was changed."""
    if threads <= 0:
        return None
    kept = [name for name in OPERATOR_VARIABLES if name in os.environ]
    if kept:
        log.info("BLAS threads: the operator's %s kept", ", ".join(kept))
        return None
    import numpy  # noqa: F401  (its BLAS must be loaded for threadpoolctl to find it)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    log.info("BLAS threads: %d", threads)
    return threads
