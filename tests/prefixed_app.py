"""The service as a reverse proxy forwards it from under a path prefix (nginx: ``location /cxr/ {
proxy_pass http://cxr/; }``): ``/cxr/…`` reaches the app as ``/…``. Plain paths pass too, so tests can
call the API directly. Run by tests/test_console_browser.py as ``uvicorn tests.prefixed_app:app``."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from app.main import create_app

PREFIX = "/cxr"
inner = create_app()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http" and (scope["path"] == PREFIX or scope["path"].startswith(PREFIX + "/")):
        path = scope["path"][len(PREFIX):] or "/"
        scope = {**scope, "path": path, "raw_path": path.encode()}
    await inner(scope, receive, send)
