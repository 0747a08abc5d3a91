"""What the operations endpoints read: the metrics scraped from the database, and readiness."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog.db.models import LogFile, SlowlogCursor, Task
from dcslog.statuses import TaskStatus


@dataclass(frozen=True)
class NodeHarvest:
    """How the harvest of one node's slow log stands."""

    instance_id: str
    replication_id: str
    lost_entries: int
    harvested_entries: int
    last_harvest_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class MetricsSnapshot:
    """What every process shares, read at scrape time."""

    nodes: list[NodeHarvest]  # every harvested node
    queued_jobs: int  # collection jobs waiting for a worker
    running_jobs: int  # collection jobs a worker holds
    files_by_status: dict[str, int]  # run-log files, by status


async def metrics_snapshot(session: AsyncSession) -> MetricsSnapshot:
    """Harvest cursors, the job queue and the files, read together. Session."""
    nodes = [NodeHarvest(*row) for row in await session.execute(select(
        SlowlogCursor.instance_id, SlowlogCursor.replication_id, SlowlogCursor.lost_entries,
        SlowlogCursor.harvested_entries, SlowlogCursor.last_harvest_at, SlowlogCursor.last_error))]
    queued, running = (await session.execute(select(
        func.count().filter(Task.lease_owner.is_(None)), func.count().filter(Task.lease_owner.is_not(None)),
    ).where(Task.status == TaskStatus.RUNNING))).one()
    files = (await session.execute(select(LogFile.status, func.count()).group_by(LogFile.status))).all()
    return MetricsSnapshot(nodes, queued, running, {status: count for status, count in files})


async def database_answers(session: AsyncSession) -> None:
    """Ask the database the simplest question (readiness); raises when it cannot answer. Session."""
    await session.execute(text("SELECT 1"))
