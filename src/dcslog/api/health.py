"""A liveness probe for load balancers: no credentials, one trivial query."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from dcslog.api.params import json_response
from dcslog.state import SESSIONMAKER


async def health(request: web.Request) -> web.Response:
    async with request.app[SESSIONMAKER]() as session:
        await session.execute(text("SELECT 1"))
    return json_response({"status": "ok"})
