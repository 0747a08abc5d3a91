"""DCS ListBackgroundTask."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from multidict import MultiMapping

from dcslog import errors
from dcslog.api.context import Context, dcs_operation
from dcslog.api.params import int_param, json_response
from dcslog.services import tasks


def _time_param(query: MultiMapping[str], name: str) -> datetime | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        # Exactly yyyyMMddHHmmss: strptime alone also takes "202611270000" (12 digits).
        if len(raw) != 14 or not raw.isdigit():
            raise ValueError(raw)
        return datetime.strptime(raw, "%Y%m%d%H%M%S")
    except ValueError:
        raise errors.InvalidParameter(name, f"{name} must be yyyyMMddHHmmss in UTC, e.g. 20261205143000.") from None


@dcs_operation("viewer")
async def list_background_task(ctx: Context) -> web.Response:
    query = ctx.request.query
    start, end = _time_param(query, "start_time"), _time_param(query, "end_time")
    if start and end and end < start:
        raise errors.InvalidTimeRange()
    total, items = await tasks.list_background_task(
        ctx.session, ctx.instance,
        offset=int_param(query, "offset", 0, minimum=0),
        limit=int_param(query, "limit", 10, minimum=1, maximum=1000),
        start=start, end=end)
    return json_response({"task_count": str(total), "tasks": items})
