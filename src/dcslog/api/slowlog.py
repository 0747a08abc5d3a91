"""DCS ListSlowlog, and the harvester's per-node status (an extension)."""

from __future__ import annotations

import re

from aiohttp import web
from multidict import MultiMapping
from sqlalchemy import select

from dcslog import errors
from dcslog.api.context import Context, dcs_operation
from dcslog.api.params import choice_param, int_param, json_response
from dcslog.db.models import Replication
from dcslog.services import slowlog

EPOCH_MS = re.compile(r"[0-9]{1,15}")
MILLISECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,3})?")
COMMAND_NAME = re.compile(r"[A-Za-z0-9_|.-]{1,64}")
# DCS's role filter speaks of proxies and servers; dcslog also takes the node's replication role.
ROLES = ("server", "proxy", "master", "slave")


def _epoch_ms(query: MultiMapping[str], name: str) -> int:
    raw = query.get(name, "")
    if not EPOCH_MS.fullmatch(raw):
        raise errors.InvalidParameter(name, f"{name} is required: milliseconds since the epoch (UTC), "
                                            "e.g. 1764576000000.")
    return int(raw)


@dcs_operation("viewer")
async def list_slowlog(ctx: Context) -> web.Response:
    query = ctx.request.query
    start_ms, end_ms = _epoch_ms(query, "start_time"), _epoch_ms(query, "end_time")
    if end_ms < start_ms:
        raise errors.InvalidTimeRange()
    offset = int_param(query, "offset", 0, minimum=0)
    limit = int_param(query, "limit", 10, minimum=1, maximum=1000)
    sort_key = choice_param(query, "sort_key", ("start_time", "duration"), default="start_time")
    sort_dir = choice_param(query, "sort_dir", ("desc", "asc"), default="desc")
    role = choice_param(query, "role", ROLES, default="server")
    replication_id = query.get("replication_id") or None
    if replication_id and await ctx.session.scalar(select(Replication.id).where(
            Replication.id == replication_id, Replication.instance_id == ctx.instance.id)) is None:
        raise errors.InvalidParameter("replication_id", "No node of this instance has that replication_id: "
                                      "ListGroupReplicationInfo (GET …/instance/{instance_id}/groups) lists them.")
    command = query.get("command") or None
    if command and not COMMAND_NAME.fullmatch(command):
        raise errors.InvalidParameter("command", "command must be a command name: 1 to 64 of A-Z a-z 0-9 _ | . -")
    min_duration = query.get("min_duration") or None
    if min_duration and not MILLISECONDS.fullmatch(min_duration):
        raise errors.InvalidParameter("min_duration", "min_duration must be milliseconds with at most 3 decimals, "
                                      "e.g. 10 or 0.5.")
    if role == "proxy":  # a self-run deployment has no DCS proxies
        total, items, lost = 0, [], 0
    else:
        total, items, lost = await slowlog.list_slowlog(
            ctx.session, ctx.instance, start_ms=start_ms, end_ms=end_ms, offset=offset, limit=limit,
            sort_key=sort_key, sort_dir=sort_dir, replication_id=replication_id,
            role=role if role in ("master", "slave") else None, command=command,
            min_duration_us=round(float(min_duration) * 1000) if min_duration else None)
    # DCS documents both total_num and count as the total number of entries.
    return json_response({"total_num": total, "count": total, "slowlogs": items, "lost_entries": lost})


@dcs_operation("viewer")
async def list_slowlog_harvest_status(ctx: Context) -> web.Response:
    nodes = await slowlog.harvest_status(ctx.session, ctx.instance)
    return json_response({"nodes": nodes, "node_count": len(nodes)})
