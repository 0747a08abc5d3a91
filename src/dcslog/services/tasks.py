"""Background tasks of an instance (DCS ListBackgroundTask)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog.db.models import Instance, Task
from dcslog.services.common import dcs_time


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
    where = [Task.instance_id == instance.id, Task.project_id == instance.project_id]
    if start is not None:
        where.append(Task.created_at >= start)
    if end is not None:
        where.append(Task.created_at <= end)
    total = await session.scalar(select(func.count()).select_from(Task).where(*where)) or 0
    rows = await session.scalars(select(Task).where(*where)
                                 .order_by(Task.created_at.desc(), Task.id).offset(offset).limit(limit))
    return total, [task_item(t) for t in rows]
