"""DCS background tasks: ListBackgroundTask, ShowBackgroundTaskProgress, DeleteBackgroundTask."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from dcslog.api.context import Context
from dcslog.api.operations import operation
from dcslog.api.params import LIMIT, OFFSET, compact_utc, json_response, text
from dcslog.services import tasks

START_TIME = compact_utc("start_time", description="yyyyMMddHHmmss, UTC")
END_TIME = compact_utc("end_time", not_before="start_time",
                       description="yyyyMMddHHmmss, UTC; before start_time → 400 DCS.4025")
# Unknown, deleted, or another instance's: 404 DCS.4001, as an unknown log file id.
TASK_ID = text("task_id", location="path", description="the task id (ListBackgroundTask's id)")


@operation("GET", "/v2/{project_id}/instances/{instance_id}/tasks", role="viewer",
           summary="ListBackgroundTask: collection tasks, newest first",
           params=[START_TIME, END_TIME, OFFSET, LIMIT], ok={200: "ListBackgroundTaskResponse"},
           errors=["DCS.4800", "DCS.4002", "DCS.4061", "DCS.4025"])
async def list_background_task(ctx: Context, start_time: datetime | None, end_time: datetime | None, offset: int,
                               limit: int) -> web.Response:
    total, items = await tasks.list_background_task(ctx.session, ctx.instance, offset=offset, limit=limit,
                                                    start=start_time, end=end_time)
    return json_response({"task_count": str(total), "tasks": items})


@operation("GET", "/v2/{project_id}/instances/{instance_id}/tasks/{task_id}/progress", role="viewer",
           summary="ShowBackgroundTaskProgress: how far a task is, and its steps (one per day collected)",
           params=[TASK_ID], ok={200: "ShowBackgroundTaskProgressResponse"}, errors=["DCS.4002", "DCS.4061"])
async def show_background_task_progress(ctx: Context, task_id: str) -> web.Response:
    return json_response(await tasks.show_background_task_progress(ctx.session, ctx.instance, task_id))


@operation("DELETE", "/v2/{project_id}/instances/{instance_id}/tasks/{task_id}", role="operator",
           summary="DeleteBackgroundTask: delete a task; a running one is cancelled (its files keep their "
                   "previous copy)",
           params=[TASK_ID], ok={200: "DeleteBackgroundTaskResponse"}, errors=["DCS.4002", "DCS.4061"])
async def delete_background_task(ctx: Context, task_id: str) -> web.Response:
    return json_response({"message": await tasks.delete_background_task(ctx.session, ctx.actor, ctx.instance,
                                                                                  task_id)})
