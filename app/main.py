"""create_app(settings): the FastAPI service. ``uvicorn app.main:app`` reads CXR_* variables."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import numpy as np
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.api.main import api_router
from app.console.routes import router as console_router
from app.audit.http_records import record_request
from app.audit.inputs import InputKeeper
from app.audit.monitoring import refresh_loop
from app.audit.store import LEGACY_FILE as AUDIT_LEGACY_FILE, AuditStore
from app.audit.trail import AuditTrail, audit_retention, load_salt
from app.core.aio import cancel_and_wait
from app.container import Services
from app.db.active import ActivePointer
from app.db.engine import database_url, make_engine
from app.db.migrate import ensure_schema
from app.core.config import Settings
from app.core.logging import configure_logging
from app.core.ratelimit import RateLimiter, UploadSlots
from app.core.security import KeyRing, load_keyring
from app.core.middleware import RequestContextMiddleware
from app.errors import ServiceError, install_error_handlers
from app.inference.batcher import DynamicBatcher
from app.training.datasets.store import DatasetStore
from app.inference.render import packed_blend_table
from app.training.store import JobStore
from app.training.runner import JobRunner, runner_name
from app.core.metrics import Metrics
from app.fhir.client import FhirClient
from app.pacs.client import PacsClient
from app.inference.pipeline import Predictor
from app.inference.catalog import ModelRegistry, catalog_of, follow_active
from app.pacs.results import ResultStore
from app.pacs.service import StowService
from models.device import serving_device
from models.errors import CXRError
from models.integrity.guard_card import GuardScorer

log = logging.getLogger("app")


def _activate_at_startup(registry: ModelRegistry, settings: Settings):  # type: ignore[no-untyped-def]
    """CXR_MODEL if set; else the model active before the restart, falling back to the shipped
    default when that one no longer verifies (a damaged disk must not keep the service down)."""
    remembered = None if settings.model else registry.remembered()
    if remembered is not None:
        try:
            return registry.activate(remembered)
        except (CXRError, ServiceError) as exc:
            log.error("the previously active model cannot be loaded (%s); falling back to the default", exc.detail)
    return registry.activate(settings.model)


def _load_guard(settings: Settings) -> GuardScorer | None:
    """The integrity guard (verified); None when off. It always runs on the CPU, through ONNX Runtime
    when installed (2.7 ms, against 12 ms eager), also when the classifier runs on a GPU: a 96-px
    graph of one image gains nothing from a device round trip."""
    if settings.integrity == "off":
        log.warning("the input-integrity check is OFF (CXR_INTEGRITY=off): any decodable image is scored")
        return None
    guard: GuardScorer
    try:
        from models.integrity.guard_onnx import load_onnx_guard

        guard = load_onnx_guard(settings.integrity_guard_dir, settings.onnx_cache_dir, threads=1)
    except ImportError:
        from models.integrity.guard import load_guard

        log.warning("onnxruntime is not installed: the integrity guard runs in eager PyTorch")
        guard = load_guard(settings.integrity_guard_dir)
    guard.score(np.zeros((guard.card.input.image_size,) * 2, dtype=np.uint8))  # warm-up
    log.info("integrity guard %s %s (sha256 %s), threshold %.2f", guard.card.name, guard.card.version,
             guard.card.sha256[:12], guard.card.threshold)
    return guard


def create_app(settings: Settings | None = None, *, configure_logs: bool = True,
               pacs_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """``pacs_transport``: how results reach the PACS and the FHIR server (tests pass a mock; default: the network)."""
    settings = settings or Settings()
    metrics = Metrics()
    engine = make_engine(database_url(settings))
    registry = ModelRegistry(catalog_of(settings), "cpu",
                             backend=settings.backend, threads=settings.threads, pointer=ActivePointer(engine),
                             legacy_active_file=settings.state_dir / "active.json", onnx_cache=settings.onnx_cache_dir,
                             on_activate=lambda m: metrics.set_active(m.card.name, m.card.version, m.card.sha256,
                                                                      str(m.device)),
                             name=f"server {runner_name(settings)}")
    batcher = DynamicBatcher(max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms,
                             queue_size=settings.queue_size, metrics=metrics)
    services = Services(
        settings=settings, metrics=metrics, registry=registry, batcher=batcher,
        predictor=Predictor(settings, registry, batcher, metrics),
        datasets=DatasetStore.of(settings),
        rate_limiter=RateLimiter(settings.rate_limit_per_min, settings.rate_limit_burst),
        upload_slots=UploadSlots(settings.max_concurrent_uploads),
        keyring=None if settings.auth == "off" else KeyRing([]),  # deny all until keys are loaded
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if configure_logs:
            configure_logging(settings.log_level, settings.log_json)
        try:
            device = serving_device(settings.device)
            if settings.auth == "off":
                services.keyring = None
                log.warning("API keys are OFF (CXR_AUTH=off): anyone who reaches this port can predict, train and activate")
            else:
                services.keyring = load_keyring(settings.api_keys, settings.api_keys_file, settings.state_dir)
            ensure_schema(engine)  # before anything reads the database: a newer schema stops the start here
            registry.device = device
            active = _activate_at_startup(registry, settings)
            services.predictor.guard = _load_guard(settings)
            store = JobStore(engine)
            results = ResultStore(settings.state_dir / "dicom", engine, owner=runner_name(settings))
            audit_store = None
            if settings.audit == "on":
                audit_store = AuditStore(engine, legacy=settings.state_dir / AUDIT_LEGACY_FILE)
                services.audit = AuditTrail(audit_store, load_salt(settings.state_dir))
            if settings.keep_inputs_days:
                services.inputs = InputKeeper(settings.state_dir / "inputs", settings.keep_inputs_days)
        except (CXRError, ServiceError) as exc:
            log.critical("cannot start: %s", exc.detail)
            raise SystemExit(2) from None
        packed_blend_table(round(settings.heatmap_alpha, 3))  # colormap and blend table: built now, not on the first request
        log.info("ready: model %s %s (sha256 %s) on %s, backend %s", active.card.name, active.card.version,
                 active.card.sha256[:12], device, active.backend)
        batcher.start()
        jobs = JobRunner(settings, store, registry, services.datasets)
        services.jobs = jobs
        if settings.workers == "embedded":
            jobs.start()
        else:
            log.info("jobs run on `cxr worker` processes (CXR_WORKERS=external); this server only queues them")
        services.results = results
        stow = StowService(settings, results, services.predictor, metrics, PacsClient(settings, pacs_transport),
                           fhir=FhirClient(settings, pacs_transport), audit=services.audit, inputs=services.inputs)
        services.stow = stow
        await stow.start()
        loop = asyncio.get_running_loop()
        background = [loop.create_task(audit_retention(services.audit, settings, services.inputs)),
                      loop.create_task(follow_active(registry, settings.active_poll_s))]
        if audit_store is not None:
            background.append(loop.create_task(refresh_loop(audit_store, registry.entries, metrics)))
        try:
            yield
        finally:
            for task in background:
                await cancel_and_wait(task)
            await stow.stop()
            await jobs.stop()
            await batcher.stop()
            services.predictor.close()
            store.close()
            results.close()
            engine.dispose()
            services.audit = None

    app = FastAPI(
        title="CXR pneumonia screening",
        version="0.1.0",
        description="Reads a chest radiograph, returns calibrated P(pneumonia) and a Grad-CAM heatmap. "
        "A triage aid for radiologists, not a diagnosis.",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(api_router)
    if settings.console:
        app.include_router(console_router)
    if settings.cors_origins:  # off unless origins are named
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type"])
    app.add_middleware(RequestContextMiddleware, metrics=metrics, on_finish=record_request)
    return app


app = create_app()
