"""DCS run-log endpoints: CreateRedislog, ListRedislog, CreateRedislogDownloadLink, and the revocation
of links (extensions: DeleteRedislogDownloadLink, DeleteRedislogDownloadLinks)."""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from dcslog.api.context import Context
from dcslog.api.operations import Reply, operation
from dcslog.api.params import LIMIT, OFFSET, choice, integer, json_response, text
from dcslog.services import redislog
from dcslog.state import JOURNAL

LOG_TYPE = choice("log_type", ("run",))
QUERY_TIME = integer("query_time", 0, allowed=redislog.QUERY_TIMES,
                     description="days ending today (0 and 1: today only; default 0)")
# Known or not, and whether it is needed, is the service's rule (redislog._replication).
REPLICATION_ID = text("replication_id", description="required unless the instance is a single node")
FILE_ID = text("id", location="path", arg="file_id", description="the file id")
# An extension the SDK never sends: without it, the link is DCS's. Its signature covers the format.
LINK_FORMAT = replace(choice("format", redislog.LINK_FORMATS, default=redislog.RAW,
                             description="raw (default): the file as collected; ndjson: its records, one JSON "
                                         "object a line (dcslog extension; the link then ends in ?format=ndjson)"),
                      arg="link_format")


@operation("POST", "/v2/{project_id}/instances/{instance_id}/redislog", role="operator",
           summary="CreateRedislog: collect run logs in the background",
           params=[LOG_TYPE, QUERY_TIME, REPLICATION_ID], ok={204: Reply(None, "Collection queued (no body)")},
           errors=["DCS.4800", "DCS.4002", "DCS.4061", "DCS.4017"])
async def create_redislog(ctx: Context, log_type: str, query_time: int, replication_id: str | None) -> web.Response:
    await redislog.create_redislog(ctx.session, ctx.actor, ctx.instance, log_type=log_type, query_time=query_time,
                                   replication_id=replication_id, retention_days=ctx.settings.retention_days)
    return web.Response(status=204)


@operation("GET", "/v2/{project_id}/instances/{instance_id}/redislog", role="viewer",
           summary="ListRedislog: collected run-log files", params=[LOG_TYPE, OFFSET, LIMIT],
           ok={200: "ListRedislogResponse", 204: Reply(None, "No files (no body, as DCS)")},
           errors=["DCS.4800", "DCS.4002", "DCS.4061"])
async def list_redislog(ctx: Context, log_type: str, offset: int, limit: int) -> web.Response:
    total, items = await redislog.list_redislog(ctx.session, ctx.instance, offset=offset, limit=limit)
    if total == 0:
        return web.Response(status=204)  # as DCS: no files, no body
    return json_response({"total_num": total, "file_list": items})


@operation("POST", "/v2/{project_id}/instances/{instance_id}/redislog/{id}/links", role="viewer",
           summary="CreateRedislogDownloadLink: an expiring link to a succeed file", params=[FILE_ID, LINK_FORMAT],
           ok={200: "DownloadLink"}, errors=["DCS.4800", "DCS.4002", "DCS.4061"])
async def create_redislog_download_link(ctx: Context, file_id: str, link_format: str) -> web.Response:
    link = await redislog.create_redislog_download_link(
        ctx.session, ctx.keyring, ctx.store, ctx.request.app[JOURNAL], ctx.actor, ctx.instance, file_id,
        public_url=ctx.settings.link_base(ctx.request.scheme, ctx.request.headers.get("Host")),
        link_ttl=ctx.settings.link_ttl, link_format=link_format)
    return json_response(link)


LINK_ID = text("link_id", location="path", description="the link_id CreateRedislogDownloadLink answered")


# Revoking is a change of state that reaches everyone holding a link to the file, whoever made it:
# not a viewer's (SPEC §3: the read role), but the operator's, who may change files (collect).
@operation("DELETE", "/v2/{project_id}/instances/{instance_id}/redislog/{id}/links/{link_id}", role="operator",
           summary="Revoke one download link of a file (dcslog extension): 403 from then on, on every API process",
           params=[FILE_ID, LINK_ID], ok={204: Reply(None, "Revoked (no body); revoking it again is no error")},
           errors=["DCS.4002", "DCS.4061"])
async def delete_redislog_download_link(ctx: Context, file_id: str, link_id: str) -> web.Response:
    await redislog.delete_redislog_download_link(ctx.session, ctx.keyring, ctx.store, ctx.actor, ctx.instance,
                                                 file_id, link_id)
    return web.Response(status=204)


@operation("DELETE", "/v2/{project_id}/instances/{instance_id}/redislog/{id}/links", role="operator",
           summary="Revoke every download link of a file made so far (dcslog extension)",
           params=[FILE_ID], ok={204: Reply(None, "Revoked (no body); links made afterwards work")},
           errors=["DCS.4002", "DCS.4061"])
async def delete_redislog_download_links(ctx: Context, file_id: str) -> web.Response:
    await redislog.delete_redislog_download_links(ctx.session, ctx.store, ctx.actor, ctx.instance, file_id)
    return web.Response(status=204)
