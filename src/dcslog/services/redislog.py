"""Run-log files: collection requests, the file list, download links (DCS Log Management)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.db.models import Instance, LogFile, Replication, Task
from dcslog.db.inline import read
from dcslog.db.readcache import cached
from dcslog.db.session import announce_jobs
from dcslog.keys import Keyring
from dcslog.roles import Caller
from dcslog.services.common import new_id, utcnow
from dcslog.storage import ObjectStore

QUERY_TIMES = (0, 1, 3, 7)
COLLECT_TASK = "CollectRunLog"


def file_name(replication_ip: str, day: str) -> str:
    return f"redis_{replication_ip}_{day}.log"


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
    """Queue a collection: one task, one file per day in status ``creating``.

    Files already held for those days are refreshed in place (same id): ``creating``
    until the new content is published, their previous copy (``content_*``, left
    as it is here) downloadable meanwhile and back if the refresh fails. If any
    of those days is being collected for the replica right now, nothing
    changes and DCS.4017 is raised; the check is a conditional UPDATE, so two
    requests racing each other cannot both win.
    """
    replication = await _replication(session, instance, replication_id)
    now = utcnow()
    days = days_to_collect(query_time, instance.timezone, now)
    task = Task(
        id=new_id(), instance_id=instance.id, project_id=instance.project_id, name=COLLECT_TASK,
        replication_id=replication.id,
        details=json.dumps({"group_name": replication.group_name, "replica_ip": replication.host,
                            "replication_id": replication.id, "days": [d.isoformat() for d in days]}),
        params=json.dumps({"log_type": log_type, "query_time": query_time, "replication_id": replication.id}),
        user_name=caller.user_id, user_id=caller.user_id, status="running", attempts=0,
        created_at=now, updated_at=now,
    )
    session.add(task)
    expires_at = now + timedelta(days=retention_days)
    replica_files = (LogFile.instance_id == instance.id, LogFile.replication_id == replication.id)
    day_texts = [day.isoformat() for day in days]
    try:
        # One statement takes every day already held and not being collected (refresh in place)…
        refreshed = set((await session.execute(
            update(LogFile)
            .where(*replica_files, LogFile.day.in_(day_texts), LogFile.status != "creating")
            .values(status="creating", task_id=task.id, error_msg=None, updated_at=now,
                    expires_at=expires_at, group_name=replication.group_name,
                    group_index=replication.group_index, replication_ip=replication.host)
            .returning(LogFile.day))).scalars())
        new_days = [day for day in day_texts if day not in refreshed]
        if new_days:
            # …and of the others, any that exists is being collected right now.
            if await session.scalar(select(func.count()).select_from(LogFile).where(
                    *replica_files, LogFile.day.in_(new_days))):
                raise errors.CollectionRunning()
            session.add_all([LogFile(
                id=new_id(), instance_id=instance.id, project_id=instance.project_id,
                replication_id=replication.id, group_name=replication.group_name,
                group_index=replication.group_index, replication_ip=replication.host, day=day,
                status="creating", task_id=task.id, created_at=now, updated_at=now, expires_at=expires_at)
                for day in new_days])
        await announce_jobs(session)
        await session.commit()
    except IntegrityError:
        await session.rollback()
        if await session.get(Instance, instance.id) is None:  # removed meanwhile: the foreign key failed
            raise errors.InstanceNotFound() from None
        raise errors.CollectionRunning() from None  # another request inserted the same (replica, day) first
    except errors.CollectionRunning:
        await session.rollback()
        raise
    return task


def _backup_id(row) -> str:
    """DCS's backup_id: the task that produced a succeed file's content (after a refresh that failed,
    the collection before it), else the task collecting the file, or that failed to."""
    return (row.content_task_id or row.task_id) if row.status == "succeed" else row.task_id


def _has_content(row, now: datetime) -> bool:
    """Whether the file has a complete copy to serve: it is ``succeed``, or being refreshed
    with its previous copy still there (and within that copy's retention)."""
    return row.content_task_id is not None and row.object_key is not None and row.content_expires_at > now


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


_FILES = LogFile.__table__.c
# Files past retention are gone for users at once, whenever the sweeper gets to their bytes.
_LISTED = (_FILES.instance_id == bindparam("instance_id"), _FILES.project_id == bindparam("project_id"),
           _FILES.expires_at > bindparam("now"))
# One statement for the page and the total (a window count), built once: the console and
# `logs collect --wait` poll this list. Past the last page no row carries the total, which
# is then counted on its own.
_LIST_PAGE = (select(*_FILES, func.count().over().label("total")).where(*_LISTED)
              .order_by(_FILES.day.desc(), _FILES.group_index, _FILES.replication_ip, _FILES.id)
              .offset(bindparam("offset")).limit(bindparam("limit")))
_COUNT = select(func.count()).select_from(LogFile.__table__).where(*_LISTED)


async def list_redislog(session: AsyncSession, instance: Instance, *, offset: int, limit: int) -> tuple[int, list[dict]]:
    where = {"instance_id": instance.id, "project_id": instance.project_id, "now": utcnow()}

    def page(s) -> tuple[int, list[dict]]:
        rows = s.execute(_LIST_PAGE, {**where, "offset": offset, "limit": limit}).all()
        total = rows[0].total if rows else (s.scalar(_COUNT, where) if offset else 0)
        return total, [runlog_item(row) for row in rows]
    return await read(session, page)


async def _log_file(session: AsyncSession, instance: Instance, file_id: str) -> LogFile:
    row = await cached(session, ("log_file", file_id), lambda: read(session, lambda s: s.get(LogFile, file_id)))
    # Checked here, not in the query, so that a cached row is checked at every use.
    if row is None or row.instance_id != instance.id or row.project_id != instance.project_id \
            or row.expires_at <= utcnow():
        raise errors.NotFound("The log file does not exist.")
    return row


async def create_redislog_download_link(session: AsyncSession, keyring: Keyring, store: ObjectStore,
                                        instance: Instance, file_id: str, *, public_url: str, link_ttl: int) -> dict:
    row = await _log_file(session, instance, file_id)
    now = utcnow()
    # A file being refreshed still has its previous copy to serve; one with no complete copy
    # (first collection running, or failed) has nothing.
    if not _has_content(row, now):
        raise errors.FileNotReady(row.status)
    # Never past the content's retention (it is gone then anyway), nor past what the store's own
    # links can last (S3 presigns at most 7 days): expires_at must be the truth.
    ttl = min(link_ttl, store.max_link_seconds or link_ttl)
    expires_at = min(now + timedelta(seconds=ttl), row.content_expires_at)
    link = store.link(row.object_key, file_name(row.replication_ip, row.day), expires_at)
    if link is None:  # the local store: dcslog serves the file behind its own signed link
        token = keyring.sign_link(row.id, int((expires_at - datetime(1970, 1, 1)).total_seconds()))
        link = f"{public_url}/downloads/{token}"
    return {"id": row.id, "backup_id": row.content_task_id, "link": link,
            "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")}


async def file_for_download(session: AsyncSession, keyring: Keyring, token: str) -> LogFile:
    """The file a link names, if the link is authentic, unexpired, and the file still has a complete
    copy: its content, or while it is being refreshed, its previous content."""
    file_id = keyring.verify_link(token)
    if file_id is None:
        raise errors.LinkForbidden()
    row = await cached(session, ("log_file", file_id), lambda: read(session, lambda s: s.get(LogFile, file_id)))
    if row is None or not _has_content(row, utcnow()):
        raise errors.NotFound("The log file no longer exists.")
    return row
