"""The console's static files, read once: each compressed once, all named under one content hash.

Every asset URL is ``assets/<version>/<file>``, where ``version`` is a digest of all the files: any
change gives every file a new URL, so the files can be cached for a year (``immutable``) while the
page itself is revalidated on every load. ES-module imports stay plain relative names (``./api.js``)
and resolve inside the same versioned folder. All URLs are relative, so the console works behind a
path prefix (``/cxr/``) without knowing it.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).with_name("static")
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
               ".html": "text/html; charset=utf-8"}
VERSION_MARK = "{{assets}}"

# No inline script or style anywhere; images only from this server or the data:/blob: URLs the page makes
# from API answers; the API is same-origin; nothing may frame the console.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                           "connect-src 'self'; font-src 'self'; form-action 'none'; base-uri 'none'; "
                           "frame-ancestors 'none'")
# (nosniff, DENY framing and no-referrer come with every answer: app.core.middleware)
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cross-Origin-Opener-Policy": "same-origin"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str


class ConsoleAssets:
    def __init__(self, folder: Path = STATIC) -> None:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "index.html")
        h = hashlib.sha256()
        for p in files:
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
        self.version = h.hexdigest()[:12]
        self.files = {p.relative_to(folder).as_posix(): _asset(p.read_bytes(), p.suffix) for p in files}
        page = (folder / "index.html").read_text(encoding="utf-8").replace(VERSION_MARK, f"assets/{self.version}")
        self.index = _asset(page.encode("utf-8"), ".html")

    def get(self, version: str, name: str) -> Asset | None:
        return self.files.get(name) if version == self.version else None

    def compressed_bytes(self) -> int:
        """What a browser downloads for the whole console (gzip): the size budget's measure."""
        return len(self.index.gzipped) + sum(len(a.gzipped) for a in self.files.values())


def _asset(body: bytes, suffix: str) -> Asset:
    return Asset(body, gzip.compress(body, compresslevel=9, mtime=0), MEDIA_TYPES.get(suffix, "application/octet-stream"))
