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


async def _replication(session: AsyncSession, instance: Instance, replication_id: str | None) -> Replication:
    replications = list(await session.scalars(select(Replication).where(Replication.instance_id == instance.id)))
    if replication_id is None:
        # Only a single-node instance may leave the replica implicit.
        if len(replications) == 1:
            return replications[0]
        raise errors.InvalidParameter("replication_id")
    for replication in replications:
        if replication.id == replication_id:
            return replication
    raise errors.InvalidParameter("replication_id")


async def create_redislog(session: AsyncSession, caller: Caller, instance: Instance, *, log_type: str,
                          query_time: int, replication_id: str | None, retention_days: float) -> Task:
    """Queue a collection: one task, one file per day in status ``creating``.

    Files already held for those days are refreshed in place (same id). If any
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


def runlog_item(row) -> dict:
    """A FileObject from a ``LogFile`` or a row of its columns."""
    item = {
        "id": row.id,
        "file_name": file_name(row.replication_ip, row.day),
        "group_name": row.group_name,
        "replication_ip": row.replication_ip,
        "status": row.status,
        "time": row.day,
        "backup_id": row.task_id,
    }
    # Extensions: what a user needs to trust or diagnose a file.
    if row.status == "succeed":
        item["size"], item["sha256"] = row.size, row.sha256
    if row.error_msg:
        item["error_msg"] = row.error_msg
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
    if row.status != "succeed":
        raise errors.FileNotReady(row.status)
    now = utcnow()
    # Never past retention (the file is gone then anyway), nor past what the store's own
    # links can last (S3 presigns at most 7 days): expires_at must be the truth.
    ttl = min(link_ttl, store.max_link_seconds or link_ttl)
    expires_at = min(now + timedelta(seconds=ttl), row.expires_at)
    link = store.link(row.object_key, file_name(row.replication_ip, row.day), expires_at)
    if link is None:  # the local store: dcslog serves the file behind its own signed link
        token = keyring.sign_link(row.id, int((expires_at - datetime(1970, 1, 1)).total_seconds()))
        link = f"{public_url}/downloads/{token}"
    return {"id": row.id, "backup_id": row.task_id, "link": link,
            "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")}


async def file_for_download(session: AsyncSession, keyring: Keyring, token: str) -> LogFile:
    """The file a link names, if the link is authentic, unexpired, and the file still there and complete."""
    file_id = keyring.verify_link(token)
    if file_id is None:
        raise errors.LinkForbidden()
    row = await cached(session, ("log_file", file_id), lambda: read(session, lambda s: s.get(LogFile, file_id)))
    if row is None or row.expires_at <= utcnow() or row.status != "succeed" or row.object_key is None:
        raise errors.NotFound("The log file no longer exists or is being collected again.")
    return row
