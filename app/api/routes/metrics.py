"""GET /metrics: Prometheus text exposition."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import MetricsAuthDep, MetricsDep

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, dependencies=[MetricsAuthDep], summary="Prometheus metrics")
async def get_metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
