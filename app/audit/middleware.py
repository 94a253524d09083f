"""One audit record per screening request (POST /predict, STOW-RS), whatever its outcome: written after
the response is sent, from what the route put in ``request.state.audit`` (ScreeningFacts), who called
(``request.state.principal``), the status code and the latency. Pure ASGI: no body buffering."""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.audit.record import AuditKind
from app.core.logging import request_id

log = logging.getLogger(__name__)
AUDITED = {("POST", "/predict"): AuditKind.predict,
           ("POST", "/dicomweb/studies"): AuditKind.stow_request,
           ("POST", "/dicomweb/studies/{study}"): AuditKind.stow_request}


def caller_of(principal: Any) -> str:
    return "anonymous" if principal is None else f"key:{principal.key_id}/{principal.role}"


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            kind = AUDITED.get((scope["method"], getattr(scope.get("route"), "path", "")))
            trail = getattr(scope["app"].state.services, "audit", None)
            if kind is not None and trail is not None:
                state = scope.get("state") or {}
                client = scope.get("client")
                try:
                    trail.http(kind=kind, route=scope["route"].path, status=status,
                               latency_ms=(time.perf_counter() - start) * 1000, request_id=request_id.get(),
                               caller=caller_of(state.get("principal")) if "principal" in state else None,
                               client=client[0] if client else None, facts=state.get("audit"))
                except Exception:  # the answer has been sent; a failed record is logged loudly, never silent
                    log.exception("audit trail: could not record %s %s (status %d)", scope["method"],
                                  scope["route"].path, status)
