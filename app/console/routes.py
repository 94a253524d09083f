"""GET / (the console page) and GET /assets/<version>/<file> (its scripts and styles). No API key: the
page holds no data; the user types a key into it and every call it makes is checked like any client's."""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.console.assets import PAGE_HEADERS, Asset, ConsoleAssets
from app.errors import AssetNotFound

router = APIRouter(include_in_schema=False)
IMMUTABLE = "public, max-age=31536000, immutable"


@lru_cache(maxsize=1)
def console_assets() -> ConsoleAssets:
    return ConsoleAssets()


def _send(request: Request, asset: Asset, cache: str) -> Response:
    headers = {**PAGE_HEADERS, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/")
async def console_page(request: Request) -> Response:
    return _send(request, console_assets().index, "no-cache")


@router.get("/assets/{version}/{name:path}")
async def console_asset(request: Request, version: str, name: str) -> Response:
    asset = console_assets().get(version, name)
    if asset is None:
        raise AssetNotFound(f"no console asset {name!r} in version {version!r} (the page is older than the server: "
                             "reload it)")
    return _send(request, asset, IMMUTABLE)
