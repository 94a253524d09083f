"""One audit record per screening request (POST /predict, STOW-RS), whatever its outcome: written after
the response is sent (app.core.middleware calls ``record_request``), from what the route put in
``request.state.audit`` (ScreeningFacts), who called (``request.state.principal``), the status code
and the latency."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from app.audit.record import AuditKind
from app.core.logging import request_id

log = logging.getLogger(__name__)
AUDITED = {("POST", "/predict"): AuditKind.predict,
           ("POST", "/dicomweb/studies"): AuditKind.stow_request,
           ("POST", "/dicomweb/studies/{study}"): AuditKind.stow_request}


def caller_of(principal: Any) -> str:
    return "anonymous" if principal is None else f"key:{principal.key_id}/{principal.role}"


async def record_request(scope: Scope, status: int, seconds: float) -> None:
    """RequestContextMiddleware's ``on_finish``: one record for an audited route, once the answer is sent. The
    write runs in the thread pool: on PostgreSQL it is a round trip (and waits its turn on the chain's lock),
    which must not hold up the event loop's other requests."""
    kind = AUDITED.get((scope.get("method", ""), getattr(scope.get("route"), "path", "")))
    trail = getattr(scope["app"].state.services, "audit", None) if "app" in scope else None
    if kind is None or trail is None:
        return
    state = scope.get("state") or {}
    client = scope.get("client")
    try:
        await run_in_threadpool(partial(
            trail.http, kind=kind, route=scope["route"].path, status=status, latency_ms=seconds * 1000,
            request_id=request_id.get(), caller=caller_of(state.get("principal")) if "principal" in state else None,
            client=client[0] if client else None, facts=state.get("audit")))
    except Exception:  # the answer has been sent; a failed record is logged loudly, never silent
        log.exception("audit trail: could not record %s %s (status %d)", scope["method"], scope["route"].path, status)
