"""The router: every declared operation (``operations.registered()``), HEAD with every GET.

The URI templates are those of the declarations, verbatim from the DCS API reference."""

from __future__ import annotations

from aiohttp import web

from dcslog.api.operations import registered


def add_routes(app: web.Application) -> None:
    for op in registered():
        app.router.add_route(op.method, op.path, op.route)
        if op.method == "GET":
            app.router.add_route("HEAD", op.path, op.route)
