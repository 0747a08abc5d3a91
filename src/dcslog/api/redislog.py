"""DCS run-log endpoints: CreateRedislog, ListRedislog, CreateRedislogDownloadLink."""

from __future__ import annotations

from aiohttp import web

from dcslog.api.context import Context, dcs_operation
from dcslog.api.params import choice_param, int_param, json_response
from dcslog.services import redislog

LOG_TYPES = ("run",)


@dcs_operation("operator")
async def create_redislog(ctx: Context) -> web.Response:
    query = ctx.request.query
    log_type = choice_param(query, "log_type", LOG_TYPES)
    query_time = int_param(query, "query_time", 0, allowed=redislog.QUERY_TIMES)
    replication_id = query.get("replication_id") or None
    await redislog.create_redislog(ctx.session, ctx.caller, ctx.instance, log_type=log_type, query_time=query_time,
                                   replication_id=replication_id, retention_days=ctx.settings.retention_days)
    ctx.wake_worker()
    return web.Response(status=204)


@dcs_operation("viewer")
async def list_redislog(ctx: Context) -> web.Response:
    query = ctx.request.query
    choice_param(query, "log_type", LOG_TYPES)
    total, items = await redislog.list_redislog(
        ctx.session, ctx.instance,
        offset=int_param(query, "offset", 0, minimum=0),
        limit=int_param(query, "limit", 10, minimum=1, maximum=1000))
    if total == 0:
        return web.Response(status=204)  # as DCS: no files, no body
    return json_response({"total_num": total, "file_list": items})


@dcs_operation("viewer")
async def create_redislog_download_link(ctx: Context) -> web.Response:
    link = await redislog.create_redislog_download_link(
        ctx.session, ctx.keyring, ctx.store, ctx.instance, ctx.request.match_info["id"],
        public_url=ctx.settings.link_base(ctx.request.scheme, ctx.request.headers.get("Host")),
        link_ttl=ctx.settings.link_ttl)
    return json_response(link)
