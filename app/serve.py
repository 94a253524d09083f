"""`cxr serve`: uvicorn with the app built from Settings (CLI flags override CXR_* variables)."""

from __future__ import annotations

import uvicorn

from app.core.allocator import tune_malloc
from app.core.blas import limit_blas_threads
from app.core.config import Settings
from app.main import create_app


def serve(*, host: str | None = None, port: int | None = None, model: str | None = None, device: str | None = None) -> int:
    overrides = {k: v for k, v in {"host": host, "port": port, "model": model, "device": device}.items() if v is not None}
    settings = Settings(**overrides)
    tune_malloc(settings.malloc_arena_max)  # before any thread exists (app/core/allocator.py says why)
    limit_blas_threads(settings.blas_threads)  # OpenBLAS's spinning threads cost the pipeline its cores
    app = create_app(settings)
    # Graceful shutdown: on SIGTERM uvicorn stops accepting and lets in-flight requests finish.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=30, proxy_headers=False)
    return 0
