"""Background tasks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog.db.models import Task


async def tasks_page(session: AsyncSession, instance_id: str, project_id: str, *, offset: int, limit: int,
                     start: datetime | None = None, end: datetime | None = None) -> tuple[int, list[Task]]:
    """The instance's tasks created between ``start`` and ``end`` (when given): how many, and one page,
    newest first. Session."""
    where = [Task.instance_id == instance_id, Task.project_id == project_id]
    if start is not None:
        where.append(Task.created_at >= start)
    if end is not None:
        where.append(Task.created_at <= end)
    total = await session.scalar(select(func.count()).select_from(Task).where(*where)) or 0
    rows = await session.scalars(select(Task).where(*where)
                                 .order_by(Task.created_at.desc(), Task.id).offset(offset).limit(limit))
    return total, list(rows)
