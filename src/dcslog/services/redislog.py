"""Run-log files: collection requests, the file list, download links (DCS Log Management)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.db import queries
from dcslog.db.models import Instance, LogFile, Replication, RevokedLink, Task
from dcslog.keys import RAW, Keyring
from dcslog.services import audit, jobs, records
from dcslog.services.audit import Actor
from dcslog.services.common import utcnow
from dcslog.statuses import FileStatus
from dcslog.storage import ObjectStore
from dcslog.storage.local import LocalObjectStore
from dcslog.storage.objectkeys import rekeyed

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


async def create_redislog(session: AsyncSession, actor: Actor, instance: Instance, *, log_type: str,
                          query_time: int, replication_id: str | None, retention_days: float) -> Task:
    """Queue a collection of the replica's ``query_time`` days (``jobs.queue_collection``: one
    task, one file per day in status ``creating``, refreshed in place if held; DCS.4017 if any
    of those days is being collected right now). The worker is woken when it commits."""
    replication = await _replication(session, instance, replication_id)
    days = days_to_collect(query_time, instance.timezone, utcnow())
    return await jobs.queue_collection(
        session, instance, replication, days, name=jobs.COLLECT_RUN_LOG, actor=actor,
        retention_days=retention_days,
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
                                        journal: audit.Journal, actor: Actor, instance: Instance, file_id: str, *,
                                        public_url: str, link_ttl: int, link_format: str = RAW) -> dict:
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
    # Nothing is written: the id is bound to the file and format by a MAC (revocation knows it by that).
    link_id = keyring.new_link_id(row.id, link_format)
    link = store.link(object_key, file_name(row.replication_ip, row.day), expires_at) if by_store else None
    if link is None:  # dcslog serves the file itself (local store, or converted) behind its own signed link
        # The format is in the token, under the MAC; the query only says it to whoever reads the URL.
        token = keyring.sign_link(row.id, int((expires_at - datetime(1970, 1, 1)).total_seconds()), link_format,
                                  link_id=link_id, generation=row.link_generation)
        link = f"{public_url}/downloads/{token}" + ("" if by_store else f"?format={link_format}")
    # The link is handed out only once its making is recorded (its id, never the token). Making
    # one writes nothing else: the record is the action's whole transaction (in a group commit).
    await journal.record(actor, "link.create", project_id=instance.project_id, instance_id=instance.id,
                         target=audit.link_target(row.id, link_id))
    return {"id": row.id, "backup_id": row.content_task_id, "link": link,
            "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "link_id": link_id}


async def file_for_download(session: AsyncSession, keyring: Keyring, token: str,
                            link_format: str = RAW) -> tuple[LogFile, str | None]:
    """The file a link names, if the link is authentic, unexpired, signed for ``link_format`` (the
    format the download asks for), and the file still has a complete copy: its content, or while
    it is being refreshed, its previous content. Returns it with the link's id (None for a link
    made before links had ids)."""
    claims = keyring.read_link(token, link_format=link_format)
    if claims is None:
        raise errors.LinkForbidden()
    row = await queries.log_file(session, claims.file_id)
    if row is not None and await _revoked(session, row, claims.link_id, claims.generation):
        raise errors.LinkForbidden("The download link has been revoked.")
    if row is None or _content(row, utcnow()) is None:
        raise errors.NotFound("The log file no longer exists.")
    return row, claims.link_id


async def record_download(journal: audit.Journal, row: LogFile, link_id: str | None, *, source_ip: str | None,
                          request_id: str | None) -> None:
    """Record a download through a link (``link.download``, attributed to the link) and return
    once it is committed: called before the first byte goes out, so a download that cannot be
    recorded is refused."""
    await journal.record(Actor.of_link(link_id, source_ip, request_id), "link.download",
                         project_id=row.project_id, instance_id=row.instance_id, target=row.id)


async def _revoked(session: AsyncSession, row: LogFile, link_id: str | None, generation: int) -> bool:
    """Whether the link was revoked: all the file's links since it was made (the file is at a later
    generation), or this one (by its id; links made before ids existed have none). Both are read
    as every look-up of a download is (``queries``): on SQLite from the read cache, exact while no
    process has committed since; on PostgreSQL from the database. So every API process refuses a
    revoked link from the request after the revocation commits."""
    if generation != row.link_generation:
        return True
    return link_id is not None and link_id in await queries.revoked_link_ids(session, row.id)


async def records_for_download(session: AsyncSession, keyring: Keyring, token: str
                               ) -> tuple[LogFile, str | None, Instance, records.NodePlan]:
    """What a records (``ndjson``) link downloads: the file, its instance (whose time zone reads
    it) and the file as a node with nothing but that one day (``records.plan_file``), with the
    link's id."""
    row, link_id = await file_for_download(session, keyring, token, NDJSON)
    instance = await queries.instance_in_project(session, row.project_id, row.instance_id)
    # (A file whose instance is gone goes with it; object_key is never None past file_for_download.)
    if instance is None or row.object_key is None:
        raise errors.NotFound("The log file no longer exists.")
    return row, link_id, instance, await records.plan_file(session, instance, row, row.object_key)


# --- Revocable links (SPEC §8) ---------------------------------------------------------------------


async def delete_redislog_download_link(session: AsyncSession, keyring: Keyring, store: ObjectStore, actor: Actor,
                                        instance: Instance, file_id: str, link_id: str) -> None:
    """Revoke one link of the file (``link_id`` as CreateRedislogDownloadLink answered it): 404
    for an unknown file, or an id dcslog made for no link of this file. Revoking it again is no
    error. A link dcslog serves is refused from then on (403 on every API process); a raw link on
    a store that presigns its own (S3) cannot be told from the file's other raw links, so the object
    is re-keyed, which ends all of them (``_rekey``)."""
    row = await _log_file(session, instance, file_id)
    link_format = keyring.link_format_of(row.id, link_id, LINK_FORMATS)
    if link_format is None:
        raise errors.NotFound("The log file has no link with that link_id.")
    target = audit.link_target(row.id, link_id)
    session.add(RevokedLink(link_id=link_id, file_id=row.id, revoked_at=utcnow(), revoked_by=actor.actor))
    audit.record(session, actor, "link.revoke", project_id=instance.project_id, instance_id=instance.id,
                 target=target)
    try:
        await session.commit()
    except IntegrityError:  # revoked already (or the file went meanwhile: then its links went with it)
        await session.rollback()
        audit.record(session, actor, "link.revoke", project_id=instance.project_id, instance_id=instance.id,
                     target=target, outcome=audit.UNCHANGED)
        await session.commit()
    if link_format == RAW:
        await _rekey(session, store, row.id)


async def delete_redislog_download_links(session: AsyncSession, store: ObjectStore, actor: Actor,
                                         instance: Instance, file_id: str) -> None:
    """Revoke every link of the file made so far: its link generation moves on, so every token
    signed with an earlier one is refused (403), and the one-by-one revocations it supersedes go;
    on a store that presigns its own links (S3) the object is re-keyed as well. Links made
    afterwards work."""
    row = await _log_file(session, instance, file_id)
    await session.execute(update(LogFile).where(LogFile.id == row.id)
                          .values(link_generation=LogFile.link_generation + 1))
    await session.execute(delete(RevokedLink).where(RevokedLink.file_id == row.id))
    audit.record(session, actor, "link.revoke", project_id=instance.project_id, instance_id=instance.id,
                 target=audit.link_target(row.id))
    await session.commit()
    await _rekey(session, store, row.id)


async def _rekey(session: AsyncSession, store: ObjectStore, file_id: str) -> None:
    """End the store's presigned links to the file's content: copy the object to a new key
    (``objectkeys.rekeyed``), point the file at it (only if it still points at the old one), and
    delete the old one — links presigned for it then get the store's answer for a missing object
    (404 NoSuchKey on MinIO and Ceph, and on AWS when the credentials may list the bucket, else 403
    AccessDenied there; moto_server answers 403). Nothing to do where dcslog serves the bytes
    itself (a local directory).

    Races: if a refresh published new content meanwhile, or another revocation re-keyed first,
    the file no longer points at the old key, the copy is nobody's and is deleted; the old key is
    deleted either way (whoever replaced it deletes it too; deleting a missing key is no error).
    A copy left by a crash between the copy and the update is the retention sweep's (an object no
    record points to, ``Retention.delete_unrecorded``)."""
    if isinstance(store, LocalObjectStore):
        return
    old_key = await queries.stored_key(session, file_id)
    await session.rollback()  # no transaction held open during the copy
    if old_key is None:
        return
    new_key = rekeyed(old_key)
    await asyncio.to_thread(store.copy, old_key, new_key)
    moved = cast(CursorResult[Any], await session.execute(
        update(LogFile).where(LogFile.id == file_id, LogFile.object_key == old_key).values(object_key=new_key)))
    await session.commit()
    if moved.rowcount != 1:
        await asyncio.to_thread(store.delete, new_key)
    await asyncio.to_thread(store.delete, old_key)
