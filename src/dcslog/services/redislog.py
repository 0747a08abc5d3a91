"""Run-log files: collection requests, the file list, download links (DCS Log Management)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.db import queries
from dcslog.db.models import Instance, LogFile, Replication, Task
from dcslog.keys import RAW, Keyring
from dcslog.roles import Caller
from dcslog.services import jobs, records
from dcslog.services.common import utcnow
from dcslog.statuses import FileStatus
from dcslog.storage import ObjectStore

QUERY_TIMES = (0, 1, 3, 7)
#: What a download link serves: the file as stored (DCS's), or its records, one JSON object a line.
NDJSON = "ndjson"
LINK_FORMATS = (RAW, NDJSON)


def file_name(replication_ip: str, day: str) -> str:
    return f"redis_{replication_ip}_{day}.log"


def records_file_name(replication_ip: str, day: str) -> str:
    """The name a records (``ndjson``) download is saved as."""
    return f"redis_{replication_ip}_{day}.ndjson"


def days_to_collect(query_time: int, tz: str, now: datetime) -> list[date]:
    """The N calendar days ending today in the instance's time zone (0 and 1 both mean today), newest first."""
    today = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(tz)).date()
    return [today - timedelta(days=i) for i in range(max(query_time, 1))]


#: Nodes named in a "which replication_id?" hint; a big cluster's list ends in "…".
HINT_NODES = 12


async def _replication(session: AsyncSession, instance: Instance, replication_id: str | None) -> Replication:
    replications = list(await session.scalars(select(Replication).where(Replication.instance_id == instance.id)
                                              .order_by(Replication.group_index, Replication.position)))
    if replication_id is None:
        # Only a single-node instance may leave the replica implicit.
        if len(replications) == 1:
            return replications[0]
        raise errors.InvalidParameter("replication_id", f"replication_id is required for this {instance.cache_mode} "
                                      f"instance of {len(replications)} nodes: {_nodes_hint(replications)}")
    for replication in replications:
        if replication.id == replication_id:
            return replication
    raise errors.InvalidParameter("replication_id", f"No node of this instance has that replication_id: "
                                  f"{_nodes_hint(replications)}")


def _nodes_hint(replications: list[Replication]) -> str:
    """The instance's nodes as a user picks one: id, address, group and role (replicas are what DCS collects)."""
    named = [f"{r.id} ({r.host}:{r.port}, {r.group_name} {r.role})" for r in replications[:HINT_NODES]]
    more = ", …" if len(replications) > HINT_NODES else ""
    return f"one of {', '.join(named)}{more} (ListGroupReplicationInfo lists them all)."


async def create_redislog(session: AsyncSession, caller: Caller, instance: Instance, *, log_type: str,
                          query_time: int, replication_id: str | None, retention_days: float) -> Task:
    """Queue a collection of the replica's ``query_time`` days (``jobs.queue_collection``: one
    task, one file per day in status ``creating``, refreshed in place if held; DCS.4017 if any
    of those days is being collected right now). The worker is woken when it commits."""
    replication = await _replication(session, instance, replication_id)
    days = days_to_collect(query_time, instance.timezone, utcnow())
    return await jobs.queue_collection(
        session, instance, replication, days, name=jobs.COLLECT_RUN_LOG, user_id=caller.user_id,
        user_name=caller.user_id, retention_days=retention_days,
        params={"log_type": log_type, "query_time": query_time, "replication_id": replication.id})


def _backup_id(row) -> str:
    """DCS's backup_id: the task that produced a succeed file's content (after a refresh that failed,
    the collection before it), else the task collecting the file, or that failed to."""
    return (row.content_task_id or row.task_id) if row.status == FileStatus.SUCCEED else row.task_id


def _content(row: LogFile, now: datetime) -> tuple[str, datetime] | None:
    """The complete copy the file has to serve, as (object key, end of its retention): it is
    ``succeed``, or being refreshed with its previous copy still there (and within that copy's
    retention). None when it has none."""
    if row.content_task_id is None or row.object_key is None or row.content_expires_at is None \
            or row.content_expires_at <= now:
        return None
    return row.object_key, row.content_expires_at


def runlog_item(row) -> dict:
    """A FileObject from a ``LogFile`` or a row of its columns."""
    item = {
        "id": row.id,
        "file_name": file_name(row.replication_ip, row.day),
        "group_name": row.group_name,
        "replication_ip": row.replication_ip,
        "status": row.status,
        "time": row.day,
        "backup_id": _backup_id(row),
    }
    # Extensions: what a user needs to trust or diagnose a file. size and sha256 are those of the
    # content a link serves (while a refresh runs: the previous copy's); error_msg is why the last
    # collection failed (on a succeed file: a refresh failed and the previous copy stayed);
    # last_task_id is the task that last collected the file, which differs from backup_id
    # only then (clients follow their collection by it).
    if row.content_task_id is not None:
        item["size"], item["sha256"] = row.size, row.sha256
    if row.error_msg:
        item["error_msg"] = row.error_msg
    item["last_task_id"] = row.task_id
    return item


async def list_redislog(session: AsyncSession, instance: Instance, *, offset: int,
                        limit: int) -> tuple[int, list[dict]]:
    """(how many files, one page of FileObjects): files past retention are gone for users at once,
    whenever the sweeper gets to their bytes."""
    total, rows = await queries.files_page(session, instance.id, instance.project_id, now=utcnow(), offset=offset,
                                           limit=limit)
    return total, [runlog_item(row) for row in rows]


async def _log_file(session: AsyncSession, instance: Instance, file_id: str) -> LogFile:
    row = await queries.log_file(session, file_id)
    # Checked here, not in the query, so that a cached row is checked at every use.
    if row is None or row.instance_id != instance.id or row.project_id != instance.project_id \
            or row.expires_at <= utcnow():
        raise errors.NotFound("The log file does not exist.")
    return row


async def file_content(session: AsyncSession, instance: Instance, file_id: str) -> tuple[LogFile, str]:
    """The instance's file and the key of the complete copy it serves: 404 for no such file, 400
    for one without a complete copy (as a link to it)."""
    row = await _log_file(session, instance, file_id)
    content = _content(row, utcnow())
    if content is None:
        raise errors.FileNotReady(row.status, needs="reading its records")
    return row, content[0]


async def create_redislog_download_link(session: AsyncSession, keyring: Keyring, store: ObjectStore,
                                        instance: Instance, file_id: str, *, public_url: str, link_ttl: int,
                                        link_format: str = RAW) -> dict:
    """A link to the file's content: as stored (``raw``, what DCS hands out), or converted to
    records (``ndjson``). A raw link is the store's own URL where the store makes one (S3
    presigns); a records link is always dcslog's, since dcslog converts."""
    row = await _log_file(session, instance, file_id)
    now = utcnow()
    # A file being refreshed still has its previous copy to serve; one with no complete copy
    # (first collection running, or failed) has nothing.
    content = _content(row, now)
    if content is None:
        raise errors.FileNotReady(row.status)
    object_key, content_expires_at = content
    # Never past the content's retention (it is gone then anyway), nor past what the store's own
    # links can last (S3 presigns at most 7 days): expires_at must be the truth.
    by_store = link_format == RAW
    ttl = min(link_ttl, store.max_link_seconds or link_ttl) if by_store else link_ttl
    expires_at = min(now + timedelta(seconds=ttl), content_expires_at)
    link = store.link(object_key, file_name(row.replication_ip, row.day), expires_at) if by_store else None
    if link is None:  # dcslog serves the file itself (local store, or converted) behind its own signed link
        # The format is in the token, under the MAC; the query only says it to whoever reads the URL.
        token = keyring.sign_link(row.id, int((expires_at - datetime(1970, 1, 1)).total_seconds()), link_format)
        link = f"{public_url}/downloads/{token}" + ("" if by_store else f"?format={link_format}")
    return {"id": row.id, "backup_id": row.content_task_id, "link": link,
            "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")}


async def file_for_download(session: AsyncSession, keyring: Keyring, token: str, link_format: str = RAW) -> LogFile:
    """The file a link names, if the link is authentic, unexpired, signed for ``link_format`` (the
    format the download asks for), and the file still has a complete copy: its content, or while
    it is being refreshed, its previous content."""
    file_id = keyring.verify_link(token, link_format=link_format)
    if file_id is None:
        raise errors.LinkForbidden()
    row = await queries.log_file(session, file_id)
    if row is None or _content(row, utcnow()) is None:
        raise errors.NotFound("The log file no longer exists.")
    return row


async def records_for_download(session: AsyncSession, keyring: Keyring, token: str
                               ) -> tuple[LogFile, Instance, records.NodePlan]:
    """What a records (``ndjson``) link downloads: the file, its instance (whose time zone reads
    it) and the file as a node with nothing but that one day (``records.plan_file``)."""
    row = await file_for_download(session, keyring, token, NDJSON)
    instance = await queries.instance_in_project(session, row.project_id, row.instance_id)
    # (A file whose instance is gone goes with it; object_key is never None past file_for_download.)
    if instance is None or row.object_key is None:
        raise errors.NotFound("The log file no longer exists.")
    return row, instance, await records.plan_file(session, instance, row, row.object_key)
