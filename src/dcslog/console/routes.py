"""``GET /console`` and its assets, read from the package once when the routes are added."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from dcslog import errors

CONSOLE_PATH = "/console"
STATIC_PREFIX = "/console/static/"
CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Every byte the console needs comes from dcslog itself: the policy makes a
# stray third-party URL fail loudly in the browser instead of leaking a request.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# Asset URLs carry a hash of their content, so a browser may keep them for
# good; the page itself is revalidated on every load so a new release shows.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
ASSET_REFERENCE = re.compile(r"\{\{asset:([A-Za-z0-9._-]+)\}\}")


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    version: str  # first 16 hex digits of the body's SHA-256

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def _load_assets() -> dict[str, Asset]:
    assets = {}
    for entry in resources.files("dcslog.console").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in CONTENT_TYPES:
            body = entry.read_bytes()
            assets[entry.name] = Asset(body, CONTENT_TYPES[suffix], hashlib.sha256(body).hexdigest()[:16])
    return assets


def _render_page(assets: dict[str, Asset]) -> Asset:
    template = resources.files("dcslog.console").joinpath("static", "index.html").read_text(encoding="utf-8")

    def url(match: re.Match) -> str:
        name = match.group(1)
        return f"{STATIC_PREFIX}{name}?v={assets[name].version}"

    body = ASSET_REFERENCE.sub(url, template).encode()
    return Asset(body, "text/html; charset=utf-8", hashlib.sha256(body).hexdigest()[:16])


def _respond(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    headers = {"Cache-Control": cache_control, "ETag": asset.etag, **SECURITY_HEADERS}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={"Content-Type": asset.content_type, **headers})


def add_console_routes(app: web.Application) -> None:
    """Register ``GET /console``, ``/console/`` (a redirect) and ``/console/static/{name}``."""
    assets = _load_assets()
    page = _render_page(assets)

    async def console_page(request: web.Request) -> web.Response:
        return _respond(request, page, REVALIDATE)

    async def console_slash(request: web.Request) -> web.Response:
        raise web.HTTPPermanentRedirect(CONSOLE_PATH)

    async def console_asset(request: web.Request) -> web.Response:
        asset = assets.get(request.match_info["name"])
        if asset is None:
            raise errors.NotFound()
        current = request.query.get("v") == asset.version
        return _respond(request, asset, IMMUTABLE if current else REVALIDATE)

    app.router.add_get(CONSOLE_PATH, console_page)
    app.router.add_get(CONSOLE_PATH + "/", console_slash)
    app.router.add_get(STATIC_PREFIX + "{name}", console_asset)
