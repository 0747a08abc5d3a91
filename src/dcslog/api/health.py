"""Probes for load balancers and orchestrators: no credentials."""

from __future__ import annotations

from aiohttp import web

from dcslog.api.operations import Reply, operation
from dcslog.api.params import json_response
from dcslog.db import queries
from dcslog.state import SESSIONMAKER


@operation("GET", "/livez", role=None, tag="operations", summary="Liveness probe: the process answers (no database)",
           ok={200: Reply("Health", "Alive")})
async def livez(request: web.Request) -> web.Response:
    """Liveness: the process answers. No database, so it costs what the framework costs."""
    return json_response({"status": "ok"})


@operation("GET", "/health", role=None, tag="operations", summary="Readiness probe: the database answers",
           ok={200: Reply("Health", "Healthy")})
async def health(request: web.Request) -> web.Response:
    """Readiness: the database answers too."""
    async with request.app[SESSIONMAKER]() as session:
        await queries.database_answers(session)
    return json_response({"status": "ok"})
