"""Per-request id, access log line, security headers and HTTP metrics (pure ASGI, no body buffering).
``on_finish(scope, status, seconds)`` is awaited for every finished request (the audit trail's hook),
after the answer is sent and while the request id is still set."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logging import request_id
from app.core.metrics import Metrics

log = logging.getLogger("app.access")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics,
                 on_finish: Callable[[Scope, int, float], Awaitable[None]] | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.on_finish = on_finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")[:64]
        rid = incoming if incoming and incoming.replace("-", "").isalnum() else uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                own = {name.lower() for name, _ in headers}  # a route's own choice (the console's caching) stands
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in own)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            method = scope.get("method", "")
            self.metrics.requests.labels(method, path, str(status)).inc()
            self.metrics.latency.labels(method, path).observe(elapsed)
            log.info("%s %s %d", method, path, status, extra={"method": method, "path": path, "status": status,
                                                                "duration_ms": round(elapsed * 1000, 2)})
            if self.on_finish is not None:
                await self.on_finish(scope, status, elapsed)
            request_id.reset(token)
