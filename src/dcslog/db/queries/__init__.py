"""Every read of the database the services, the auth layer and the operations endpoints make, each a named
async function taking the session: ``from dcslog.db import queries``, then ``await queries.log_file(session,
file_id)``. Writes stay in the services, through the session.

How each query reads is decided here, once per query, never by its caller:

* **cached** (``db/readcache.py``): the look-ups every request repeats — the caller, the instance, the
  file — answered again while the database is unchanged (``PRAGMA data_version``; SQLite in the API).
  A cached ORM object is detached and shared: read it, never change it.
* **inline** (``db/inline.py``): short, index-backed reads run on the event loop's own thread
  through a read-only connection (SQLite in the API), through the session when SQLite is busy and
  wherever there is no inline reader (PostgreSQL, the worker, the CLI). Objects read inline come back
  detached, and an inline read does not see the session's own uncommitted changes.
* **prebuilt** (``db/prebuilt.py``): statements built once and run on the driver's cursor, for the
  hottest short read, ListSlowlog's first pages (inline, too).
* **session**: everything else — open-ended reads (a filtered slow-log count, a deep page), the
  CLI's, and objects loaded to be changed and committed in the same session.

Each query's docstring ends with the path it takes. A new read goes into the module of its subject,
and is added to the names below.
"""

from __future__ import annotations

from dcslog.db.queries.audit import audit_page, link_makers
from dcslog.db.queries.callers import (
    caller_by_token_hash,
    caller_row,
    credential,
    credential_for_update,
    credentials,
    token_for_update,
    tokens,
)
from dcslog.db.queries.events import EventsPage, events_page, group_masters, node_state, runlog_positions
from dcslog.db.queries.instances import (
    GroupSizes,
    InstancesPage,
    group_sizes,
    instance_by_id,
    instance_in_project,
    instances,
    instances_page,
    nodes_at_hosts,
    replications,
    replications_for_update,
)
from dcslog.db.queries.links import revoked_link_ids, stored_key
from dcslog.db.queries.logfiles import FilesPage, collected_days, files_page, log_file, object_keys
from dcslog.db.queries.operations import MetricsSnapshot, NodeHarvest, database_answers, metrics_snapshot
from dcslog.db.queries.slowlog import (
    SlowlogPage,
    harvest_cursors,
    harvest_status,
    harvestable_nodes,
    is_node_of,
    slowlog_page,
)
from dcslog.db.queries.slowlog_top import TopGroup, TopPage, slowlog_top
from dcslog.db.queries.tasks import task_days, task_in_instance, tasks_page
from dcslog.db.queries.timeline import timeline_events, timeline_slowlog

__all__ = [
    "TopGroup", "TopPage", "slowlog_top", "audit_page", "link_makers",
    "EventsPage", "FilesPage", "GroupSizes", "InstancesPage", "MetricsSnapshot", "NodeHarvest", "SlowlogPage",
    "caller_by_token_hash", "caller_row", "collected_days", "credential", "credential_for_update", "credentials",
    "database_answers", "events_page",
    "files_page", "group_masters", "group_sizes", "harvest_cursors", "harvest_status", "harvestable_nodes",
    "instance_by_id", "instance_in_project", "instances", "instances_page", "is_node_of", "log_file",
    "metrics_snapshot", "node_state", "nodes_at_hosts", "object_keys", "replications", "replications_for_update",
    "runlog_positions", "slowlog_page", "task_days", "task_in_instance", "tasks_page", "timeline_events",
    "timeline_slowlog", "token_for_update",
    "tokens", "revoked_link_ids", "stored_key",
]
