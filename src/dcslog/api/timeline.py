"""The cluster timeline (SPEC §7, a dcslog extension): run-log records, slow-log entries and events of the
instance's nodes in one time order, paged by an opaque cursor (``services/timeline.py``)."""

from __future__ import annotations

import asyncio
import re
import time

from aiohttp import web

from dcslog import errors
from dcslog.api.context import Context
from dcslog.api.operations import operation
from dcslog.api.params import choice, integer, json_response, text
from dcslog.api.records import END_TIME, NODES, START_TIME
from dcslog.runlog.grammar import LEVELS
from dcslog.services import records, timeline
from dcslog.services.timeline import KINDS, TimelineQuery

KIND_LIST = re.compile(rf"({'|'.join(KINDS)})(,({'|'.join(KINDS)}))*")

KIND = text("kind", pattern=KIND_LIST, convert=lambda raw: frozenset(raw.split(",")), arg="kinds",
            hint=f"kind must be one or more of {', '.join(KINDS)}, comma-separated.",
            description=f"only items of these kinds, comma-separated: {', '.join(KINDS)} (default: all)")
LEVEL = choice("level", LEVELS, default="debug",
               description="the minimum level of run-log records (slow-log entries and events are not filtered)")
LIMIT = integer("limit", 100, minimum=1, maximum=1000, description="items per page (default 100)")
CURSOR = text("cursor", convert=timeline.parse_cursor,
              hint="cursor must be a next_cursor, or an item's cursor, as this endpoint gave it.",
              description="continue strictly after it: a next_cursor, or an item's cursor")


@operation("GET", "/v2/{project_id}/instances/{instance_id}/timeline", role="viewer", tag="dcslog extensions",
           summary="The cluster timeline: run-log records, slow-log entries and events merged in one time order",
           params=[START_TIME, END_TIME, NODES, KIND, LEVEL, LIMIT, CURSOR], ok={200: "ListTimelineResponse"},
           errors=["DCS.4800", "DCS.4002", "DCS.4061", "DCS.4025"])
async def list_timeline(ctx: Context, start_time: int | None, end_time: int | None, replication_id: list[str] | None,
                        kinds: frozenset[str] | None, level: str, limit: int,
                        cursor: timeline.Position | None) -> web.Response:
    start, end = records.default_window(start_time, end_time, int(time.time() * 1000))
    if end < start:
        raise errors.InvalidTimeRange()
    query = TimelineQuery(start, end, kinds=kinds or frozenset(KINDS), replication_ids=replication_id,
                          level=None if level == "debug" else level, cursor=cursor)
    plan = await timeline.plan(ctx.session, ctx.instance, ctx.keyring, query, limit)
    await ctx.session.close()  # reading the run logs may take a while: hold no connection meanwhile
    return json_response(await asyncio.to_thread(timeline.read_page, plan, ctx.store))
