"""Background tasks of an instance: DCS ListBackgroundTask, ShowBackgroundTaskProgress, DeleteBackgroundTask."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.db import queries
from dcslog.db.models import Instance, LogFile, Task
from dcslog.services import audit, jobs
from dcslog.services.audit import Actor
from dcslog.services.common import dcs_time
from dcslog.services.redislog import file_name
from dcslog.statuses import FileStatus, TaskStatus

# DCS StepDetail.step_status words.
STEP_FINISH, STEP_FAILED, STEP_EXECUTING, STEP_WAITING = "FINISH", "FAILED", "EXECUTING", "WAITING"
STEP_STATUSES = (STEP_FINISH, STEP_FAILED, STEP_EXECUTING, STEP_WAITING)
STEP_NAME = "CollectRunLogFile"  # one step per file (day) of a collection
SUB_STEP_NAME = "cut"  # its one sub-step: the day cut out of the run log, hashed, published
UNKNOWN_REMAIN_TIME = -1  # remain_time while no estimate exists (queued, or nothing cut yet)


def task_item(task: Task) -> dict:
    return {
        "id": task.id,
        "name": task.name,
        "details": json.loads(task.details),
        "user_name": task.user_name,
        "user_id": task.user_id,
        "params": task.params,
        "status": task.status,
        "created_at": dcs_time(task.created_at),
        "updated_at": dcs_time(task.updated_at),
        "enable_show": True,
        "error_msg": task.error_msg,  # extension: why a task failed
    }


async def list_background_task(session: AsyncSession, instance: Instance, *, offset: int, limit: int,
                               start: datetime | None, end: datetime | None) -> tuple[int, list[dict]]:
    total, rows = await queries.tasks_page(session, instance.id, instance.project_id, offset=offset, limit=limit,
                                           start=start, end=end)
    return total, [task_item(t) for t in rows]


async def _task(session: AsyncSession, instance: Instance, task_id: str) -> Task:
    task = await queries.task_in_instance(session, instance.id, instance.project_id, task_id)
    if task is None:
        raise errors.NotFound("The background task does not exist.")
    return task


async def show_background_task_progress(session: AsyncSession, instance: Instance, task_id: str) -> dict:
    """``{progress, remain_time, step_details}`` of the instance's task ``task_id``.

    ``progress``: percent, as the run last reported it (``jobs.JobProgress``: bytes cut over the
    estimated total); 0 while queued, 100 once the task ended, succeed or failed. ``remain_time``:
    seconds left at the run's rate so far, 0 once ended, ``UNKNOWN_REMAIN_TIME`` while there is no
    estimate. ``step_details``: one step per day (file) of the collection, oldest first, as the
    worker cuts them; see ``_steps``."""
    task = await _task(session, instance, task_id)
    details = json.loads(task.details)
    days: list[str] = details.get("days", [])
    files = await queries.task_days(session, instance.id, task.replication_id, days)
    steps = _steps(task, details.get("replica_ip", ""), days, files)
    if task.status != TaskStatus.RUNNING:
        return {"progress": 100, "remain_time": 0, "step_details": steps}
    remain = task.remain_seconds if task.remain_seconds is not None else UNKNOWN_REMAIN_TIME
    return {"progress": task.progress, "remain_time": remain, "step_details": steps}


def _steps(task: Task, replica_ip: str, days: list[str], files: dict[str, LogFile]) -> list[dict]:
    """A step per day: FINISH (its file published), FAILED (its collection failed; ``detail`` says
    why), EXECUTING (being cut: ``detail`` says how many bytes so far), WAITING. A day whose file
    another task has collected since, or retention removed, is told from the task's own outcome.
    ``begin_time``: the end of the step before (days are cut one after the other), the task's
    creation for the first; ``end_time``: when its file was settled."""
    running = task.status == TaskStatus.RUNNING
    claimed = running and task.lease_owner is not None
    published_bytes = sum(f.size or 0 for f in files.values()
                          if f.task_id == task.id and f.content_task_id == task.id and f.status == FileStatus.SUCCEED)
    steps: list[dict] = []
    begin: str | None = dcs_time(task.created_at)
    executing_seen = False
    for day in days:
        row = files.get(day)
        end: str | None = None
        if row is not None and row.task_id == task.id:
            if row.status == FileStatus.CREATING:
                status = STEP_WAITING if executing_seen or not claimed else STEP_EXECUTING
                executing_seen = True
                cut = max(task.cut_bytes - published_bytes, 0)
                detail = f"{cut} bytes cut so far" if status == STEP_EXECUTING else "waiting"
            elif row.error_msg is not None:
                status, detail, end = STEP_FAILED, row.error_msg, dcs_time(row.updated_at)
            else:
                status, detail, end = STEP_FINISH, f"{row.size or 0} bytes", dcs_time(row.updated_at)
        elif running:
            status, detail = STEP_WAITING, "waiting"
        elif task.status == TaskStatus.FAILED and day in (task.error_msg or ""):
            status, detail, end = STEP_FAILED, task.error_msg or "", dcs_time(task.updated_at)
        else:
            status, detail, end = STEP_FINISH, "collected", dcs_time(task.updated_at)
        step_id = row.id if row is not None else f"{task.id}/{day}"
        step_begin = begin if status != STEP_WAITING else None
        sub_step = {"sub_step_id": f"{step_id}/{SUB_STEP_NAME}", "sub_step_name": SUB_STEP_NAME,
                    "sub_step_status": status, "begin_time": step_begin, "end_time": end, "detail": detail,
                    "error_code": None}
        steps.append({"step_id": step_id, "step_name": f"{STEP_NAME} {file_name(replica_ip, day)}",
                      "step_status": status, "begin_time": step_begin, "end_time": end, "error_code": None,
                      "sub_step_details": [sub_step]})
        begin = end
    return steps


async def delete_background_task(session: AsyncSession, actor: Actor, instance: Instance, task_id: str) -> str:
    """Delete the instance's task ``task_id``; a running one is cancelled first (``jobs.delete_task``:
    its unsettled files back to their previous copy or ``failed``, its run stopped, nothing of it
    published). The files it collected stay, each with its own retention. Returns DCS's
    ``message``."""
    task = await _task(session, instance, task_id)
    was_running = task.status == TaskStatus.RUNNING
    if not await jobs.delete_task(session, task.id):
        await session.rollback()
        raise errors.NotFound("The background task does not exist.")
    audit.record(session, actor, "task.delete", project_id=instance.project_id, instance_id=instance.id,
                 target=task.id)
    await session.commit()
    return "The task was cancelled and deleted." if was_running else "The task was deleted."
