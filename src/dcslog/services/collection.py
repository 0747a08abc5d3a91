"""Running one collection job (CollectRunLog): cut each requested day out of the node's run log and publish it.

A file becomes ``succeed`` only after its bytes are complete, fsynced and
renamed into place, with size and SHA-256 recorded in the same update; any
failure discards the staged bytes and ends the file ``failed`` with a reason —
or, when it held a complete copy before this collection, back to ``succeed``
with that copy: a re-collection never destroys a good copy. The previous
copy's bytes are deleted only after the new ones are recorded.

Every run publishes under a key of its own (``storage.objectkeys``: file id,
task id, attempt) and records it only while it still holds the task's lease
(``services.jobs.record``): a run that lost its lease to another worker can
neither overwrite nor settle what that worker records.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dcslog.agent.client import AgentError, AgentStreamCut, fetch_day
from dcslog.db.models import Instance, Replication, Task
from dcslog.keys import Keyring
from dcslog.observability import COLLECTED_BYTES, COLLECTION_SECONDS, COLLECTIONS
from dcslog.redis.addresses import node_entry
from dcslog.runlog import journal
from dcslog.runlog.slicer import SourceChanged, UnknownLogFormat, day_size, write_day
from dcslog.runlog.sources import log_sources
from dcslog.services import jobs
from dcslog.statuses import FileStatus, TaskStatus
from dcslog.storage import ObjectStore
from dcslog.storage.objectkeys import object_key

log = logging.getLogger(__name__)

HASH_CHUNK = 1 << 20


class Abandoned(Exception):
    """The run was told to stop (lease lost, worker stopping) before it published."""


def cut_day_retrying(store: ObjectStore, write: Callable[[int], int], key: str,
                     abandon: threading.Event, progress: jobs.JobProgress | None = None) -> tuple[int, str]:
    """``cut_day``, once more if the log was rotated by copytruncate under the first try
    (slicing again finds the day's start in the rotated copy), or an agent's stream broke."""
    try:
        return cut_day(store, write, key, abandon, progress)
    except (SourceChanged, AgentStreamCut) as exc:
        log.info("day cut short (%s); slicing %s again", exc, key)
        return cut_day(store, write, key, abandon, progress)


def cut_day(store: ObjectStore, write: Callable[[int], int], key: str,
            abandon: threading.Event | None = None, progress: jobs.JobProgress | None = None) -> tuple[int, str]:
    """``write(fd)`` one day into a staged file, hash it, fsync it, publish it under ``key``
    (unless ``abandon`` was set meanwhile). Returns (size, sha256). ``progress`` is told the
    staged file, whose size is the bytes cut so far."""
    if abandon is not None and abandon.is_set():  # e.g. before the second try of cut_day_retrying
        raise Abandoned(key)
    fd, staged = store.staging.stage()
    if progress is not None:
        progress.stage(staged)
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
    finally:
        if progress is not None:
            progress.stage(None)


def describe_failure(exc: BaseException, log_file: str) -> str:
    if isinstance(exc, (AgentError, UnknownLogFormat, journal.JournalError)):
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


def estimate_day(log_file: str, day: date, timezone: str) -> int | None:
    """About how many bytes ``day`` holds in ``log_file`` and its rotated files, for progress: its
    range in each plain source (a few small reads each; in a container log, scaled to the share of
    the Redis log in its lines); gzip sources count 0 (finding the day
    means decompressing them). None when it cannot be told (no such file, a log we cannot read):
    the cut itself then says why."""
    if journal.parse(log_file) is not None:  # what journalctl would answer is not known before it runs
        return None
    tz = ZoneInfo(timezone)
    total = 0
    try:
        for path in log_sources(log_file):
            with contextlib.suppress(ValueError):  # gzip-compressed: not estimated
                total += day_size(path, day, tz)
    except Exception:  # noqa: BLE001 - an estimate; the cut reports what is wrong
        return None
    return total


def _day_writer(replication: Replication, log_file: str, instance: Instance,
                keyring: Keyring) -> Callable[[date], Callable[[int], int]]:
    """How to get a day of this node's log (``log_file``): from the local file or the host's journal
    (``journal:UNIT``), or from the node's `dcslog agent`."""
    agent_url = node_entry(json.loads(instance.agents), replication.host, replication.port)
    if agent_url:
        if instance.agent_key_encrypted is None:  # not from an import: it refuses agents without a key
            raise ValueError(f"instance {instance.id} names agents but holds no agent key")
        agent_key = keyring.decrypt(instance.agent_key_encrypted)
        return lambda day: lambda fd: fetch_day(agent_url, agent_key, log_file, day, fd, instance.timezone)
    tz = ZoneInfo(instance.timezone)
    in_journal = journal.parse(log_file)
    if in_journal is not None:
        return lambda day: lambda fd: journal.write_day(in_journal, day, fd, tz)
    return lambda day: lambda fd: write_day(log_file, day, fd, tz)


async def run_collect_task(sessionmaker: async_sessionmaker[AsyncSession], store: ObjectStore, keyring: Keyring,
                           lease: jobs.Lease) -> None:
    """Collect every file of the leased task, then settle the task (``jobs.settle``). Safe to run
    again after a crash. Once ``lease.abandon`` is set (lease lost, worker stopping) the run
    starts no other day and publishes nothing more; whoever holds the job next finishes it."""
    task_id = lease.task_id
    async with sessionmaker() as session:
        task = await session.get(Task, task_id)
        if task is None or task.status != TaskStatus.RUNNING:
            return
        instance = await session.get(Instance, task.instance_id)
        if instance is None:  # removed meanwhile: its tasks and files go with it
            return
        replication = await session.get(Replication, task.replication_id)
        files = await jobs.unsettled_files(session, task_id)
        settled_files, settled_bytes = await jobs.settled_bytes(session, task_id)
        floor = task.progress

    failure: str | None = None
    estimates: dict[str, int | None] = {}
    if replication is None:
        failure = "The replica no longer belongs to the instance."
    elif replication.log_file is None:
        failure = f"No log file for {replication.host}:{replication.port}: {replication.log_file_error}"
    else:
        log_file = replication.log_file
        writer = _day_writer(replication, log_file, instance, keyring)
        if not node_entry(json.loads(instance.agents), replication.host, replication.port):  # read here
            estimates = await asyncio.to_thread(
                lambda: {row.id: estimate_day(log_file, date.fromisoformat(row.day), instance.timezone)
                         for row in files})
    lease.progress.begin(files=settled_files + len(files), settled_files=settled_files, settled_bytes=settled_bytes,
                         estimates=estimates or dict.fromkeys((row.id for row in files), None), floor=floor)

    for row in files:
        if lease.abandon.is_set():
            log.info("task %s: stopping before %s %s (lease lost or worker stopping)",
                     task_id, row.replication_ip, row.day)
            return
        # Earlier attempts of this task died after publishing, before recording: their bytes are nobody's.
        for earlier in range(1, lease.attempt):
            await asyncio.to_thread(store.delete, object_key(row.instance_id, row.id, task_id, earlier))
        new_key = None
        lease.progress.start_file(row.id)
        if failure is None:
            new_key = object_key(row.instance_id, row.id, task_id, lease.attempt)
            started = time.perf_counter()
            try:
                size, sha256 = await asyncio.to_thread(
                    cut_day_retrying, store, writer(date.fromisoformat(row.day)), new_key, lease.abandon,
                    lease.progress)
            except Abandoned:
                log.info("task %s: %s %s cut but not published (lease lost or worker stopping)",
                         task_id, row.replication_ip, row.day)
                return
            except Exception as exc:  # noqa: BLE001 - every failure must end as a readable reason
                log.warning("collection of %s %s failed: %r", row.replication_ip, row.day, exc)
                values = jobs.failed_collection(describe_failure(exc, log_file))
                new_key = None
            else:
                values = jobs.published(task_id, new_key, size, sha256)
                COLLECTION_SECONDS.observe(time.perf_counter() - started)
                COLLECTED_BYTES.inc(size)
        else:
            values = jobs.failed_collection(failure)
        COLLECTIONS.labels(FileStatus.FAILED if new_key is None else FileStatus.SUCCEED).inc()
        recorded = await jobs.record(sessionmaker, lease, row.id, values)
        if recorded:
            lease.progress.settled(row.id, size if new_key is not None else 0)
        if new_key is not None:
            if not recorded:  # lease lost: what we published is nobody's
                await asyncio.to_thread(store.delete, new_key)
            elif row.object_key and row.object_key != new_key:  # the previous collection's bytes
                await asyncio.to_thread(store.delete, row.object_key)

    await jobs.settle(sessionmaker, lease)
