"""The audit trail (SPEC §8, a dcslog extension): who did what in the project, newest first (admin only)."""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web

from dcslog.api.context import Context
from dcslog.api.operations import operation
from dcslog.api.params import LIMIT, OFFSET, compact_utc, json_response, text
from dcslog.services import audit
from dcslog.state import JOURNAL

START_TIME = compact_utc("start_time", description="yyyyMMddHHmmss, UTC: records at or after it")
END_TIME = compact_utc("end_time", not_before="start_time",
                       description="yyyyMMddHHmmss, UTC: records at or before it; before start_time → 400 DCS.4025")
ACTION = text("action", pattern=re.compile("|".join(map(re.escape, audit.ACTIONS))),
              hint=f"action must be one of {', '.join(audit.ACTIONS)}.", description="only this action")
INSTANCE_ID = text("instance_id", description="only records of this instance")
ACTOR = text("actor", description="only this actor: an access key, a token id (tok-…), a link id, a system user")


@operation("GET", "/v2/{project_id}/audit", role="admin", tag="dcslog extensions",
           summary="The project's audit trail: every action that changed state or released data, newest first",
           params=[START_TIME, END_TIME, ACTION, INSTANCE_ID, ACTOR, OFFSET, LIMIT], ok={200: "ListAuditResponse"},
           errors=["DCS.4800", "DCS.4002", "DCS.4025"])
async def list_audit(ctx: Context, start_time: datetime | None, end_time: datetime | None, action: str | None,
                     instance_id: str | None, actor: str | None, offset: int, limit: int) -> web.Response:
    total, records = await audit.list_audit(ctx.session, ctx.request.app[JOURNAL].own_sessions, ctx.caller.project_id,
                                            offset=offset, limit=limit, start=start_time, end=end_time,
                                            action=action, instance_id=instance_id, actor=actor)
    return json_response({"total_num": total, "records": records})
