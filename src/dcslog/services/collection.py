"""Running one CollectRunLog task: cut each requested day out of the node's run log and publish it.

A file becomes ``succeed`` only after its bytes are complete, fsynced and
renamed into place, with size and SHA-256 recorded in the same update; any
failure discards the staged bytes and ends the file ``failed`` with a reason —
or, when it held a complete copy before this collection, back to ``succeed``
with that copy: a re-collection never destroys a good copy. The previous
copy's bytes are deleted only after the new ones are recorded.

Every run publishes under a key of its own (file id, task id, attempt) and
records it only while it still holds the task's lease: a run that lost its
lease to another worker can neither overwrite nor settle what that worker
records.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
import re
import threading
import time
from datetime import date
from typing import Callable
from zoneinfo import ZoneInfo

from sqlalchemy import case, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dcslog.agent.client import AgentError, AgentStreamCut, fetch_day
from dcslog.db.models import Instance, LogFile, Replication, Task
from dcslog.keys import Keyring
from dcslog.observability import COLLECTED_BYTES, COLLECTION_SECONDS, COLLECTIONS
from dcslog.redis.addresses import node_entry
from dcslog.runlog.slicer import SourceChanged, UnknownLogFormat, write_day
from dcslog.services.common import utcnow
from dcslog.storage import ObjectStore

log = logging.getLogger(__name__)

HASH_CHUNK = 1 << 20


class Abandoned(Exception):
    """The run was told to stop (lease lost, worker stopping) before it published."""


def cut_day_retrying(store: ObjectStore, write: Callable[[int], int], key: str,
                     abandon: threading.Event) -> tuple[int, str]:
    """``cut_day``, once more if the log was rotated by copytruncate under the first try
    (slicing again finds the day's start in the rotated copy), or an agent's stream broke."""
    try:
        return cut_day(store, write, key, abandon)
    except (SourceChanged, AgentStreamCut) as exc:
        log.info("day cut short (%s); slicing %s again", exc, key)
        return cut_day(store, write, key, abandon)


def cut_day(store: ObjectStore, write: Callable[[int], int], key: str,
            abandon: threading.Event | None = None) -> tuple[int, str]:
    """``write(fd)`` one day into a staged file, hash it, fsync it, publish it under ``key``
    (unless ``abandon`` was set meanwhile). Returns (size, sha256)."""
    if abandon is not None and abandon.is_set():  # e.g. before the second try of cut_day_retrying
        raise Abandoned(key)
    fd, staged = store.staging.stage()
    try:
        try:
            size = write(fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        digest = hashlib.sha256()
        # Hash what actually landed on disk, not what we meant to write.
        with open(staged, "rb") as f:
            while chunk := f.read(HASH_CHUNK):
                digest.update(chunk)
        if os.path.getsize(staged) != size:
            raise OSError(f"staged file has {os.path.getsize(staged)} bytes, expected {size}")
        if abandon is not None and abandon.is_set():
            raise Abandoned(key)
        store.publish(staged, key)
        return size, digest.hexdigest()
    except BaseException:
        store.staging.discard(staged)
        raise


def describe_failure(exc: BaseException, log_file: str) -> str:
    if isinstance(exc, (AgentError, UnknownLogFormat)):
        return str(exc)
    if isinstance(exc, SourceChanged):
        return f"Log file {log_file} kept shrinking while it was read (copytruncate rotation?); collect again."
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "The object store is full (no space left on device)."
    if isinstance(exc, FileNotFoundError):
        return f"Log file {log_file} (and rotated copies) not found on this machine."
    if isinstance(exc, PermissionError):
        return (f"No permission to read log file {log_file}: run dcslog as a user who can read it "
                "(Debian's redis-server: group adm) or read it through `dcslog agent`.")
    if isinstance(exc, OSError):
        return f"Cannot read or store log file {log_file}: {exc.strerror or exc}."
    return f"Collection failed: {type(exc).__name__}."


def _object_key(row: LogFile, task_id: str, attempt: int) -> str:
    return f"{row.instance_id}/{row.id}/{task_id}-{attempt}.log"


_OBJECT_KEY = re.compile(r"[0-9a-f-]{36}/[0-9a-f-]{36}/[0-9a-f-]{36}-[0-9]+\.log")


def is_object_key(key: str) -> bool:
    """Whether a key (under the store's prefix) has the shape of ``_object_key``: the store's
    sweep touches nothing else, even in a bucket shared with other applications."""
    return _OBJECT_KEY.fullmatch(key) is not None


def failed_collection(reason: str) -> dict:
    """``UPDATE log_files`` values that end the collection of ``creating`` files as failed. A file
    that had a complete copy goes back to ``succeed`` with it — content, size, hash, backup_id
    (``content_task_id``) and expiry as they were; one that had none becomes ``failed``. Either
    way ``task_id`` keeps naming the task that failed and ``error_msg`` says why: that is how the
    task finds its failed days when it settles."""
    return {"status": case((LogFile.content_task_id.is_not(None), "succeed"), else_="failed"),
            "expires_at": func.coalesce(LogFile.content_expires_at, LogFile.expires_at),
            "error_msg": reason, "updated_at": utcnow()}


def _holds_lease(task_id: str, owner: str):
    return exists().where(Task.id == task_id, Task.lease_owner == owner)


def _day_writer(replication: Replication, instance: Instance, keyring: Keyring) -> Callable[[date], Callable[[int], int]]:
    """How to get a day of this node's log: from the local file, or from the node's `dcslog agent`."""
    agent_url = node_entry(json.loads(instance.agents), replication.host, replication.port)
    if agent_url:
        agent_key = keyring.decrypt(instance.agent_key_encrypted)
        return lambda day: lambda fd: fetch_day(agent_url, agent_key, replication.log_file, day, fd,
                                                instance.timezone)
    tz = ZoneInfo(instance.timezone)
    return lambda day: lambda fd: write_day(replication.log_file, day, fd, tz)


async def run_collect_task(sessionmaker: async_sessionmaker[AsyncSession], store: ObjectStore, keyring: Keyring,
                           task_id: str, owner: str, attempt: int, abandon: threading.Event | None = None) -> None:
    """Collect every file of the task, then settle the task's status. Safe to run again after a crash.
    Once ``abandon`` is set (lease lost, worker stopping) the run starts no other day and publishes
    nothing more; whoever holds the job next finishes it."""
    abandon = abandon or threading.Event()
    async with sessionmaker() as session:
        task = await session.get(Task, task_id)
        if task is None or task.status != "running":
            return
        instance = await session.get(Instance, task.instance_id)
        replication = await session.get(Replication, task.replication_id)
        files = list(await session.scalars(select(LogFile).where(
            LogFile.task_id == task.id, LogFile.status == "creating").order_by(LogFile.day)))

    if replication is None:
        failure = "The replica no longer belongs to the instance."
    elif replication.log_file is None:
        failure = f"No log file for {replication.host}:{replication.port}: {replication.log_file_error}"
    else:
        failure = None
        writer = _day_writer(replication, instance, keyring)

    for row in files:
        if abandon.is_set():
            log.info("task %s: stopping before %s %s (lease lost or worker stopping)", task_id, row.replication_ip, row.day)
            return
        # Earlier attempts of this task died after publishing, before recording: their bytes are nobody's.
        for earlier in range(1, attempt):
            await asyncio.to_thread(store.delete, _object_key(row, task_id, earlier))
        new_key = None
        if failure is None:
            new_key = _object_key(row, task_id, attempt)
            started = time.perf_counter()
            try:
                size, sha256 = await asyncio.to_thread(
                    cut_day_retrying, store, writer(date.fromisoformat(row.day)), new_key, abandon)
            except Abandoned:
                log.info("task %s: %s %s cut but not published (lease lost or worker stopping)",
                         task_id, row.replication_ip, row.day)
                return
            except Exception as exc:  # noqa: BLE001 - every failure must end as a readable reason
                log.warning("collection of %s %s failed: %r", row.replication_ip, row.day, exc)
                values = failed_collection(describe_failure(exc, replication.log_file))
                new_key = None
            else:
                # The content is now this task's, and lasts as long as this collection's retention.
                values = {"status": "succeed", "object_key": new_key, "size": size, "sha256": sha256,
                          "content_task_id": task_id, "content_expires_at": LogFile.expires_at,
                          "error_msg": None, "updated_at": utcnow()}
                COLLECTION_SECONDS.observe(time.perf_counter() - started)
                COLLECTED_BYTES.inc(size)
        else:
            values = failed_collection(failure)
        COLLECTIONS.labels("failed" if new_key is None else "succeed").inc()
        async with sessionmaker() as session:
            recorded = await session.execute(update(LogFile).where(
                LogFile.id == row.id, LogFile.task_id == task_id, LogFile.status == "creating",
                _holds_lease(task_id, owner),
            ).values(**values))
            await session.commit()
        if new_key is not None:
            if recorded.rowcount != 1:  # lease lost: what we published is nobody's
                await asyncio.to_thread(store.delete, new_key)
            elif row.object_key and row.object_key != new_key:  # the previous collection's bytes
                await asyncio.to_thread(store.delete, row.object_key)

    async with sessionmaker() as session:
        # From the records, not from this run alone: an earlier run of the task (stopped, or
        # taken over) may have settled some of its days already. A failed day is one with a
        # reason, whether it became `failed` or went back to its previous copy.
        failed = (await session.execute(select(LogFile.day, LogFile.error_msg).where(
            LogFile.task_id == task_id, LogFile.error_msg.is_not(None)).order_by(LogFile.day))).all()
        days_by_reason: dict[str, list[str]] = {}
        for day, reason in failed:
            days_by_reason.setdefault(reason, []).append(day)
        await session.execute(update(Task).where(Task.id == task_id, Task.lease_owner == owner).values(
            status="failed" if failed else "succeed",
            error_msg="; ".join(f"{', '.join(days)}: {reason}" for reason, days in days_by_reason.items()) or None,
            lease_owner=None, lease_until=None, updated_at=utcnow()))
        await session.commit()
