"""Events of an instance's nodes (SPEC §7, a dcslog extension): restarts, role changes, failovers,
nodes going down and coming back, as the slow-log harvest rounds saw them."""

from __future__ import annotations

import re

from aiohttp import web

from dcslog.api.context import Context
from dcslog.api.operations import operation
from dcslog.api.params import LIMIT, OFFSET, epoch_ms, json_response, text
from dcslog.services import events
from dcslog.services.node_state import EVENT_TYPES

TYPES = re.compile(rf"({'|'.join(EVENT_TYPES)})(,({'|'.join(EVENT_TYPES)}))*")

START_TIME = epoch_ms("start_time", required=False,
                      description="ms since the epoch, UTC, included; default: the oldest event kept")
END_TIME = epoch_ms("end_time", required=False, not_before="start_time",
                    description="ms since the epoch, UTC, excluded; default: no end (before start_time → 400 DCS.4025)")
TYPE = text("type", pattern=TYPES, convert=lambda raw: sorted(set(raw.split(","))), arg="types",
            hint=f"type must be one or more of {', '.join(EVENT_TYPES)}, comma-separated.",
            description=f"only events of these types, comma-separated: {', '.join(EVENT_TYPES)} (default: all)")


@operation("GET", "/v2/{project_id}/instances/{instance_id}/events", role="viewer", tag="dcslog extensions",
           summary="Events of the instance's nodes (restart, role_change, failover, node_down, node_up), "
                   "newest first",
           params=[START_TIME, END_TIME, TYPE, OFFSET, LIMIT], ok={200: "ListEventsResponse"},
           errors=["DCS.4800", "DCS.4002", "DCS.4061", "DCS.4025"])
async def list_events(ctx: Context, start_time: int | None, end_time: int | None, types: list[str] | None,
                      offset: int, limit: int) -> web.Response:
    total, items = await events.list_events(ctx.session, ctx.instance, start_ms=start_time or 0, end_ms=end_time,
                                            types=types, offset=offset, limit=limit)
    return json_response({"total_num": total, "events": items})
