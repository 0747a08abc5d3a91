"""Prometheus metrics: this process's own (requests, collections: ``observability.REGISTRY``), then
those read from the database at scrape time (harvests, the job queue, files), which every API process
and worker share, so any one process answers for them. Labels are ids and route templates, never
addresses, names or tokens.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select

from dcslog.db.models import LogFile, SlowlogCursor, Task
from dcslog.observability import REGISTRY
from dcslog.services.common import utcnow
from dcslog.state import SESSIONMAKER


class _Snapshot:
    """A collector that yields metric families computed beforehand (collectors are synchronous)."""

    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


async def metrics(request: web.Request) -> web.Response:
    now = utcnow()
    async with request.app[SESSIONMAKER]() as session:
        cursors = list(await session.scalars(select(SlowlogCursor)))
        jobs = (await session.execute(select(
            func.count().filter(Task.lease_owner.is_(None)), func.count().filter(Task.lease_owner.is_not(None)),
        ).where(Task.status == "running"))).one()
        files = (await session.execute(select(LogFile.status, func.count()).group_by(LogFile.status))).all()

    labels = ["instance_id", "replication_id"]
    lost = CounterMetricFamily("dcslog_slowlog_lost_entries", "Slow-log entries a node's ring dropped (or a SLOWLOG "
                               "RESET cleared) before a harvest saw them.", labels=labels)
    harvested = CounterMetricFamily("dcslog_slowlog_harvested_entries", "Slow-log entries stored.", labels=labels)
    age = GaugeMetricFamily("dcslog_slowlog_harvest_age_seconds", "Seconds since a node's slow log was last read "
                            "successfully (the harvest lag).", labels=labels)
    up = GaugeMetricFamily("dcslog_slowlog_node_up", "1 if the last harvest of the node succeeded, else 0.",
                           labels=labels)
    for c in cursors:
        ids = [c.instance_id, c.replication_id]
        lost.add_metric(ids, c.lost_entries)
        harvested.add_metric(ids, c.harvested_entries)
        if c.last_harvest_at is not None:
            age.add_metric(ids, (now - c.last_harvest_at).total_seconds())
        if c.last_harvest_at is not None or c.last_error:  # a node not tried yet is neither up nor down
            up.add_metric(ids, 0 if c.last_error else 1)
    queue = GaugeMetricFamily("dcslog_collection_jobs", "Collection jobs not finished, by state.", labels=["state"])
    queue.add_metric(["queued"], jobs[0])
    queue.add_metric(["running"], jobs[1])
    by_status = GaugeMetricFamily("dcslog_log_files", "Collected run-log files, by status.", labels=["status"])
    for status in ("creating", "succeed", "failed"):
        by_status.add_metric([status], dict(files).get(status, 0))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot([lost, harvested, age, up, queue, by_status]))
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
