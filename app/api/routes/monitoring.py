"""GET /monitoring: drift and reader-agreement figures per model version over a window (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from app.api.deps import AdminDep, MetricsDep, RegistryDep
from app.api.routes.audit import TrailDep
from app.audit.monitoring import MonitoringReport, refresh
from app.schemas import ErrorResponse

router = APIRouter(tags=["audit"], dependencies=[AdminDep])


@router.get("/monitoring", response_model=MonitoringReport,
            responses={400: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
            summary="per model version: volume, refusals, positive rate, score histogram, PSI against the card's "
            "reference, feedback agreement/sensitivity/specificity with 95 % Wilson intervals, drift flag")
async def get_monitoring(trail: TrailDep, registry: RegistryDep, metrics: MetricsDep,
                         window: str = Query("7d", max_length=8, description="e.g. 30m, 24h, 7d (at most 366d)")
                         ) -> MonitoringReport:
    return await run_in_threadpool(refresh, trail.store, registry.entries, metrics, window)
