"""Prometheus metrics: this process's own (requests, collections: ``observability.REGISTRY``), then
those read from the database at scrape time (harvests, the job queue, files), which every API process
and worker share, so any one process answers for them. Labels are ids and route templates, never
addresses, names or tokens.

The per-node series carry every project's instance and replica ids, which only whoever runs the
service may see. They are served to a scrape that shows DCSLOG_METRICS_TOKEN as a bearer token
(Prometheus's ``authorization`` or ``bearer_token_file``), or on the metrics-only listener of
DCSLOG_METRICS_PORT, an address of its own (the usual exporter habit: scrape a port the clients
cannot reach). The API port's ``/metrics`` without a token set shows totals only, with no id.
With a token set, every ``/metrics`` of the process asks for it.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dcslog import errors
from dcslog.api.operations import Fail, Reply, operation
from dcslog.config import Settings
from dcslog.db import queries
from dcslog.observability import REGISTRY
from dcslog.services.common import utcnow
from dcslog.state import SESSIONMAKER, SETTINGS
from dcslog.statuses import FileStatus

# Set on the metrics-only listener's application: its address is its protection.
METRICS_LISTENER = web.AppKey("metrics_listener", bool)
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dcslog metrics"'}
TOTALS_ONLY = (b"# Totals only: per-node series (instance_id, replication_id) need DCSLOG_METRICS_TOKEN "
               b"or DCSLOG_METRICS_PORT (docs/configuration.md).\n")


class _Snapshot:
    """A collector that yields metric families computed beforehand (collectors are synchronous)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def _sees_every_series(request: web.Request, settings: Settings) -> bool:
    """Whether this scrape may see the per-node series (every project's ids); raises 401 when
    DCSLOG_METRICS_TOKEN is set and the request does not show it."""
    if settings.metrics_token is None:
        return request.app.get(METRICS_LISTENER, False)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not given.strip():
        error: errors.DcsError = errors.MissingCredentials(
            "No credentials in the request: /metrics needs Authorization: Bearer <DCSLOG_METRICS_TOKEN>.")
    # Digests of both sides: the comparison takes the same time whatever the lengths.
    elif scheme.lower() == "bearer" and hmac.compare_digest(
            _digest(given.strip()), _digest(settings.metrics_token.get_secret_value())):
        return True
    else:
        error = errors.Unauthorized("Invalid metrics token.")
    error.headers = BEARER_CHALLENGE
    raise error


@operation("GET", "/metrics", role=None, tag="operations", summary="Prometheus metrics (text format 0.0.4)",
           description="Without DCSLOG_METRICS_TOKEN: totals only, no instance or replica ids. With it: "
                       "`Authorization: Bearer <token>` required, every series. See docs/api.md.",
           ok={200: Reply({"type": "string"}, "The metrics", media_type="text/plain")},
           errors=[Fail(401, "DCSLOG_METRICS_TOKEN is set and the request does not show it", ("DCS.1001", "DCS.1003"),
                        headers={"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}})])
async def metrics(request: web.Request) -> web.Response:
    every_series = _sees_every_series(request, request.app[SETTINGS])
    now = utcnow()
    async with request.app[SESSIONMAKER]() as session:
        snapshot = await queries.metrics_snapshot(session)
    cursors = snapshot.nodes

    labels = ["instance_id", "replication_id"]
    lost = CounterMetricFamily("dcslog_slowlog_lost_entries", "Slow-log entries a node's ring dropped (or a SLOWLOG "
                               "RESET cleared) before a harvest saw them.", labels=labels)
    harvested = CounterMetricFamily("dcslog_slowlog_harvested_entries", "Slow-log entries stored.", labels=labels)
    age = GaugeMetricFamily("dcslog_slowlog_harvest_age_seconds", "Seconds since a node's slow log was last read "
                            "successfully (the harvest lag).", labels=labels)
    up = GaugeMetricFamily("dcslog_slowlog_node_up", "1 if the last harvest of the node succeeded, else 0.",
                           labels=labels)
    nodes = GaugeMetricFamily("dcslog_slowlog_nodes", "Nodes whose slow log is harvested, by the outcome of "
                              "their last harvest (untried: not yet).", labels=["state"])
    oldest = GaugeMetricFamily("dcslog_slowlog_max_harvest_age_seconds", "The largest harvest age of any node "
                               "(seconds since its slow log was last read successfully).")
    lost_all = GaugeMetricFamily("dcslog_slowlog_lost_entries_all_nodes", "Slow-log entries lost, summed over the "
                                 "nodes dcslog harvests now.")
    states = {"up": 0, "down": 0, "untried": 0}
    ages = []
    for c in cursors:
        ids = [c.instance_id, c.replication_id]
        lost.add_metric(ids, c.lost_entries)
        harvested.add_metric(ids, c.harvested_entries)
        if c.last_harvest_at is not None:
            ages.append((now - c.last_harvest_at).total_seconds())
            age.add_metric(ids, ages[-1])
        if c.last_harvest_at is not None or c.last_error:  # a node not tried yet is neither up nor down
            up.add_metric(ids, 0 if c.last_error else 1)
        states["down" if c.last_error else "up" if c.last_harvest_at is not None else "untried"] += 1
    for state, count in states.items():
        nodes.add_metric([state], count)
    if ages:
        oldest.add_metric([], max(ages))
    lost_all.add_metric([], sum(c.lost_entries for c in cursors))
    queue = GaugeMetricFamily("dcslog_collection_jobs", "Collection jobs not finished, by state.", labels=["state"])
    queue.add_metric(["queued"], snapshot.queued_jobs)
    queue.add_metric(["running"], snapshot.running_jobs)
    by_status = GaugeMetricFamily("dcslog_log_files", "Collected run-log files, by status.", labels=["status"])
    for status in FileStatus:
        by_status.add_metric([status], snapshot.files_by_status.get(status, 0))

    families: list[Metric] = [nodes, oldest, lost_all, queue, by_status]
    if every_series:
        families = [lost, harvested, age, up, *families]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    body = generate_latest(REGISTRY) + generate_latest(registry) + (b"" if every_series else TOTALS_ONLY)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def start_listener(app: web.Application) -> web.AppRunner:
    """The metrics-only listener on DCSLOG_METRICS_HOST:DCSLOG_METRICS_PORT, sharing ``app``'s
    database: ``/metrics`` with every series (and the token, if one is set), nothing else."""
    from dcslog.httpserver import RUNNER_OPTIONS, DcsRunner, dcs_envelope

    settings = app[SETTINGS]
    listener = web.Application(middlewares=[dcs_envelope])
    listener[SETTINGS] = settings
    listener[SESSIONMAKER] = app[SESSIONMAKER]
    listener[METRICS_LISTENER] = True
    listener.router.add_get("/metrics", metrics)
    runner = DcsRunner(listener, **RUNNER_OPTIONS)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
