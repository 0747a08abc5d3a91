"""The download behind a link: no credentials, the signed token is the authority."""

from __future__ import annotations

from aiohttp import web

from dcslog.services import redislog
from dcslog.state import KEYRING, SESSIONMAKER, STORE


async def download_redislog(request: web.Request) -> web.StreamResponse:
    async with request.app[SESSIONMAKER]() as session:
        row = await redislog.file_for_download(session, request.app[KEYRING], request.match_info["token"])
    name = redislog.file_name(row.replication_ip, row.day)
    # FileResponse sends with sendfile() and handles HEAD, Range (206), If-Range and ETag itself.
    return web.FileResponse(request.app[STORE].path(row.object_key), headers={
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "private, no-store",
    })
