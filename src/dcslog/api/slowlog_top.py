"""Slow-log top (a dcslog extension, SPEC §7): the slow log of a window grouped by fingerprint, command or node."""

from __future__ import annotations

from aiohttp import web

from dcslog.api.context import Context
from dcslog.api.operations import operation
from dcslog.api.params import choice, epoch_ms, integer, json_response
from dcslog.db.queries.slowlog_top import GROUP_BY, SORT_KEYS
from dcslog.services import slowlog_top

START_TIME = epoch_ms("start_time", required=False,
                      description="ms since the epoch, UTC, included; default: an hour before end_time")
END_TIME = epoch_ms("end_time", required=False, not_before="start_time",
                    description="ms since the epoch, UTC, included; default: now (before start_time → 400 DCS.4025)")
GROUP = choice("group_by", GROUP_BY, default="fingerprint",
               description="fingerprint (the command without its values, default), command (its name) or node "
                           "(replication_id)")
SORT_KEY = choice("sort_key", SORT_KEYS, default="total",
                  description="total (time spent, default), count or max duration; largest first, ties by key")
LIMIT = integer("limit", 10, minimum=1, maximum=100, description="groups to return (default 10)")


@operation("GET", "/v2/{project_id}/instances/{instance_id}/slowlog/top", role="viewer", tag="dcslog extensions",
           summary="Slow-log top: the window's slow commands grouped by fingerprint, command or node, with count, "
                   "total, max, average and p99 (dcslog extension)",
           params=[START_TIME, END_TIME, GROUP, SORT_KEY, LIMIT], ok={200: "ListSlowlogTopResponse"},
           errors=["DCS.4800", "DCS.4002", "DCS.4061", "DCS.4025"])
async def list_slowlog_top(ctx: Context, start_time: int | None, end_time: int | None, group_by: str,
                           sort_key: str, limit: int) -> web.Response:
    return json_response(await slowlog_top.slowlog_top(ctx.session, ctx.instance, start_ms=start_time,
                                                       end_ms=end_time, group_by=group_by, sort_key=sort_key,
                                                       limit=limit))
