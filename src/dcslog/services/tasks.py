"""Background tasks of an instance (DCS ListBackgroundTask)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dcslog.db import queries
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
    total, rows = await queries.tasks_page(session, instance.id, instance.project_id, offset=offset, limit=limit,
                                           start=start, end=end)
    return total, [task_item(t) for t in rows]
