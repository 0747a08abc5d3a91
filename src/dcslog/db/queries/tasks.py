"""Background tasks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog.db.models import LogFile, Task


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


async def task_in_instance(session: AsyncSession, instance_id: str, project_id: str, task_id: str) -> Task | None:
    """The instance's task ``task_id`` (None when it has none such: unknown, deleted, or another
    instance's or project's). Session."""
    return await session.scalar(select(Task).where(Task.id == task_id, Task.instance_id == instance_id,
                                                   Task.project_id == project_id))


async def task_days(session: AsyncSession, instance_id: str, replication_id: str,
                    days: list[str]) -> dict[str, LogFile]:
    """The replica's files of ``days``, by day, whichever task last collected them (past
    retention too: the task's steps still tell what happened). Session."""
    rows = await session.scalars(select(LogFile).where(
        LogFile.instance_id == instance_id, LogFile.replication_id == replication_id, LogFile.day.in_(days)))
    return {row.day: row for row in rows}
