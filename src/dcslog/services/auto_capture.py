"""Automatic capture (SPEC §7): when a node restarts, crashes, changes role or is promoted in a
failover, dcslog collects the affected nodes' run log for the event's day by itself — a background
task named ``AutoCollectRunLog`` by the user ``dcslog`` — so the evidence outlives log rotation.

* **Who**: the event's node; for a failover also the master it followed (its log tells why it
  was replaced), when that is a node of the instance.
* **Once per storm**: events of one round on one node are one collection per day; a node's day
  collected automatically less than ``quiet`` seconds ago is not collected again (a flapping
  node restarting every minute makes one collection per quiet period, not one per restart).
* **Never beside a manual one**: the collection is queued as the user's are
  (``jobs.queue_collection``), whose conditional update refuses a day being collected; such a day
  is left to the collection already running, which holds what the node wrote until then.

The harvester calls ``capture`` after the transaction that recorded the events: only the
harvester whose insert recorded an event queues its collection.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dcslog import errors
from dcslog.config import Settings
from dcslog.db import queries
from dcslog.db.models import Instance, Replication, Task
from dcslog.services import audit, jobs
from dcslog.services.common import utcnow
from dcslog.services.node_state import Recorded

log = logging.getLogger(__name__)

TRIGGERS = frozenset({"restart", "failover", "crash", "role_change"})
SYSTEM_USER = audit.SERVICE_USER  # the tasks' user, and the audit trail's actor (type system)


@dataclass(frozen=True)
class Policy:
    """How automatic collections are made (from ``config.Settings``)."""

    quiet_seconds: float  # a node's day collected automatically this recently is not collected again
    retention_days: float  # the files' retention, as the user's collections'


def policy(settings: Settings) -> Policy | None:
    """The settings' policy; None when automatic capture is off (``DCSLOG_AUTO_COLLECT=false``)."""
    return Policy(settings.auto_collect_quiet_seconds, settings.retention_days) if settings.auto_collect else None


async def capture(sessionmaker: async_sessionmaker[AsyncSession], instance: Instance, node: Replication,
                  events: list[Recorded], policy: Policy) -> list[Task]:
    """Queue the collections the node's newly recorded ``events`` call for; returns the tasks."""
    triggers = [e for e in events if e.type in TRIGGERS]
    if not triggers:
        return []
    zone = ZoneInfo(instance.timezone)
    async with sessionmaker() as session:
        nodes = {(n.host, n.port): n for n in await queries.replications(session, instance.id)}
    wanted: dict[tuple[str, date], tuple[Replication, Recorded]] = {}
    for event in triggers:
        day = datetime.fromtimestamp(event.time_ms / 1000, zone).date()
        affected = [node]
        if event.type == "failover":
            host, _, port = event.details.get("previous_master", "").rpartition(":")
            if port.isdigit() and (previous := nodes.get((host, int(port)))) is not None:
                affected.append(previous)
        for replication in affected:
            wanted.setdefault((replication.id, day), (replication, event))
    tasks = []
    for (_, day), (replication, event) in wanted.items():
        task = await _collect(sessionmaker, instance, replication, day, event, policy)
        if task is not None:
            tasks.append(task)
    return tasks


async def _collect(sessionmaker: async_sessionmaker[AsyncSession], instance: Instance, replication: Replication,
                   day: date, event: Recorded, policy: Policy) -> Task | None:
    if replication.log_file is None:
        log.info("no automatic capture of %s:%s after its %s: no log file known (%s)",
                 replication.host, replication.port, event.type, replication.log_file_error)
        return None
    async with sessionmaker() as session:
        if await _captured_lately(session, replication, day, policy.quiet_seconds):
            return None
        try:
            task = await jobs.queue_collection(
                session, instance, replication, [day], name=jobs.AUTO_COLLECT_RUN_LOG, actor=audit.SERVICE,
                retention_days=policy.retention_days,
                params={"log_type": "run", "replication_id": replication.id, "day": day.isoformat(),
                        "event_id": event.id, "event_type": event.type, "event_time": event.time_ms})
        except errors.CollectionRunning:  # that day is being collected (a user's, or a capture's)
            log.info("no automatic capture of %s:%s %s after its %s: that day is being collected",
                     replication.host, replication.port, day, event.type)
            return None
        except errors.InstanceNotFound:
            return None
    log.info("automatic capture of %s:%s %s after its %s (task %s)",
             replication.host, replication.port, day, event.type, task.id)
    return task


async def _captured_lately(session: AsyncSession, replication: Replication, day: date, quiet_seconds: float) -> bool:
    """Whether an automatic collection of the node's ``day`` was queued in the last ``quiet_seconds``."""
    since = utcnow() - timedelta(seconds=quiet_seconds)
    return bool(await session.scalar(select(func.count()).select_from(Task).where(
        Task.instance_id == replication.instance_id, Task.replication_id == replication.id,
        Task.name == jobs.AUTO_COLLECT_RUN_LOG, Task.created_at >= since,
        Task.details.contains(json.dumps(day.isoformat())))))
