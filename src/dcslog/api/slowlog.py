"""DCS ListSlowlog, and the harvester's per-node status (an extension)."""

from __future__ import annotations

import re

from aiohttp import web

from dcslog.api.context import Context
from dcslog.api.operations import operation
from dcslog.api.params import LIMIT, OFFSET, choice, epoch_ms, json_response, text
from dcslog.services import slowlog_query

MILLISECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,3})?")
COMMAND_NAME = re.compile(r"[A-Za-z0-9_|.-]{1,64}")
# DCS's role filter speaks of proxies and servers; dcslog also takes the node's replication role.
ROLES = ("server", "proxy", "master", "slave")


async def _known_node(ctx: Context, replication_id: str) -> None:
    await slowlog_query.check_node(ctx.session, ctx.instance, replication_id)


START_TIME = epoch_ms("start_time", description="ms since the epoch, UTC")
END_TIME = epoch_ms("end_time", not_before="start_time",
                    description="ms since the epoch, UTC; before start_time → 400 DCS.4025")
SORT_KEY = choice("sort_key", ("start_time", "duration"), default="start_time")
SORT_DIR = choice("sort_dir", ("desc", "asc"), default="desc")
ROLE = choice("role", ROLES, default="server",
              description="server (default: every node), proxy (none here), or extension master/slave")
NODE = text("replication_id", check=_known_node, description="extension: one node (unknown → 400)")
COMMAND = text("command", pattern=COMMAND_NAME, description="extension: command name, case-insensitive",
               hint="command must be a command name: 1 to 64 of A-Z a-z 0-9 _ | . -")
MIN_DURATION = text("min_duration", pattern=MILLISECONDS, description="extension: milliseconds, decimals allowed",
                    hint="min_duration must be milliseconds with at most 3 decimals, e.g. 10 or 0.5.")


@operation("GET", "/v2/{project_id}/instances/{instance_id}/slowlog", role="viewer",
           summary="ListSlowlog: slow commands of every node, harvested",
           params=[START_TIME, END_TIME, OFFSET, LIMIT, SORT_KEY, SORT_DIR, ROLE, NODE, COMMAND, MIN_DURATION],
           ok={200: "ListSlowlogResponse"}, errors=["DCS.4800", "DCS.4002", "DCS.4061", "DCS.4025"])
async def list_slowlog(ctx: Context, start_time: int, end_time: int, offset: int, limit: int, sort_key: str,
                       sort_dir: str, role: str, replication_id: str | None, command: str | None,
                       min_duration: str | None) -> web.Response:
    items: list[dict] = []
    total = lost = 0
    if role != "proxy":  # a self-run deployment has no DCS proxies
        total, items, lost = await slowlog_query.list_slowlog(
            ctx.session, ctx.instance, start_ms=start_time, end_ms=end_time, offset=offset, limit=limit,
            sort_key=sort_key, sort_dir=sort_dir, replication_id=replication_id,
            role=role if role in ("master", "slave") else None, command=command,
            min_duration_us=round(float(min_duration) * 1000) if min_duration else None)
    # DCS documents both total_num and count as the total number of entries.
    return json_response({"total_num": total, "count": total, "slowlogs": items, "lost_entries": lost})


@operation("GET", "/v2/{project_id}/instances/{instance_id}/slowlog/harvest", role="viewer",
           tag="dcslog extensions", summary="Slow-log harvest status per node (dcslog extension)",
           ok={200: "SlowlogHarvestStatusResponse"}, errors=["DCS.4002", "DCS.4061"])
async def list_slowlog_harvest_status(ctx: Context) -> web.Response:
    nodes = await slowlog_query.harvest_status(ctx.session, ctx.instance)
    return json_response({"nodes": nodes, "node_count": len(nodes)})
