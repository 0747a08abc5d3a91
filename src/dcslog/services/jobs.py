"""A background job's life, from the request that queues it to its final status: every rule of it is here.

A job is a ``tasks`` row in status ``running`` (``TaskStatus``) together with the ``log_files``
rows it settles, in status ``creating`` (``FileStatus``) until it does. The worker
(``worker.py``) decides *when* each step happens; *what* each step does is decided here:

* **Queue** (``queue_collection``): in one transaction the task is added and its files are
  claimed — a held file is flipped to ``creating`` in place (a refresh: same id, its previous
  copy kept), a missing one inserted — or, if any of them is being collected, nothing changes
  and ``DCS.4017`` is raised. **Announce** (``announce``): PostgreSQL ``NOTIFY`` in that
  transaction (delivered at commit) wakes every process's worker; this process's own worker is
  woken right after the commit (``on_queued``), on any database.
* **Claim** (``Leaseholder.claim``): a conditional UPDATE takes a job whose lease is free or
  expired; every claim counts an attempt. **Renew** (``Leaseholder.renew``) extends the lease;
  a run whose renewal finds the lease gone must stop (``Lease.abandon``).
* **Give up** (``give_up_if_exhausted``): a job run ``MAX_ATTEMPTS`` times without ending (it
  kills its worker each time) ends ``failed``, its files back to their previous copy.
* **Hand back** (``Leaseholder.hand_back``): a stopping worker frees its leases at once; those
  runs do not count against ``MAX_ATTEMPTS``.
* **Take over** (``Leaseholder.take_over_dead_runs``): the leases of this host's dead
  processes (found by their presence files, ``storage.staging``) are freed by owner, at once.
* **Settle** (``record``, ``settle``): a file's outcome (``published`` or
  ``failed_collection``) is recorded only while the run holds the lease; the task's final
  status comes from all its files' records, so a job split across runs reports every failed day.
* **Progress** (``JobProgress``, ``report_progress``): the run counts the bytes it has cut; the
  worker writes the task's percent, bytes and estimated seconds left every ``PROGRESS_INTERVAL``
  (one guarded UPDATE), and a report that finds the lease gone stops the run, as a renewal does.
* **Cancel** (``delete_task``, DeleteBackgroundTask): in one transaction the task's unsettled
  files are failed as ``failed_collection`` says (reason ``CANCELLED``) and its row — its lease
  with it — is deleted; its run, if any, finds the lease gone at its next report or renewal and
  stops, recording and leaving nothing.

Job kinds are task names (``COLLECT_RUN_LOG``); ``worker.RUNNERS`` says which function runs
each. ``docs/design.md`` ("How to add a job kind") says where a new kind plugs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ColumnElement, CursorResult, Result, case, delete, event, exists, func, or_, select, text, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from dcslog import errors
from dcslog.db.models import Instance, LogFile, Replication, Task
from dcslog.services import audit
from dcslog.services.audit import Actor
from dcslog.services.common import new_id, utcnow
from dcslog.statuses import FileStatus, TaskStatus
from dcslog.storage.staging import Staging

if TYPE_CHECKING:
    from dcslog.keys import Keyring
    from dcslog.storage import ObjectStore

log = logging.getLogger(__name__)

# Job kinds: the task's DCS name.
COLLECT_RUN_LOG = "CollectRunLog"  # a user's CreateRedislog
AUTO_COLLECT_RUN_LOG = "AutoCollectRunLog"  # dcslog's own, after an event (services/auto_capture.py)

MAX_ATTEMPTS = 3
# Seconds between two progress reports of a running job: each is one small UPDATE of its task row.
PROGRESS_INTERVAL = 1.0
# Why the unsettled files of a deleted task stopped being collected (their error_msg).
CANCELLED = "Cancelled: the task was deleted before it finished."
# PostgreSQL channel on which a transaction that queued jobs wakes every worker.
CHANNEL = "dcslog_jobs"
# lease_owner is VARCHAR(64), which PostgreSQL enforces: a cloud host's long FQDN must not
# make every claim fail. Host (cut), pid and a random part keep owners unique.
OWNER_HOST_CHARS = 40

Sessions = async_sessionmaker[AsyncSession]


def _rowcount(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount


# --- Queue and announce -------------------------------------------------------------------------

async def queue_collection(session: AsyncSession, instance: Instance, replication: Replication, days: list[date], *,
                           name: str, actor: Actor, params: dict[str, Any], retention_days: float) -> Task:
    """Queue a collection of ``days`` of ``replication``'s run log and commit: one task of kind
    ``name`` (``params``: the request's query, as DCS shows it), one file per day in ``creating``,
    and its ``runlog.collect`` audit record (the task's user is the actor: an access key, a token
    id, or ``dcslog`` for automatic capture).

    Files already held for those days are refreshed in place (same id): ``creating`` until the
    new content is published, their previous copy (``content_*``, left as it is here)
    downloadable meanwhile and back if the refresh fails. If any of those days is being
    collected for the replica right now, nothing changes and ``errors.CollectionRunning`` is
    raised; the check is a conditional UPDATE, so two requests racing each other cannot both
    win. ``errors.InstanceNotFound`` if the instance was removed meanwhile.
    """
    now = utcnow()
    task = Task(
        id=new_id(), instance_id=instance.id, project_id=instance.project_id, name=name,
        replication_id=replication.id,
        details=json.dumps({"group_name": replication.group_name, "replica_ip": replication.host,
                            "replication_id": replication.id, "days": [d.isoformat() for d in days]}),
        params=json.dumps(params), user_name=actor.actor, user_id=actor.actor, status=TaskStatus.RUNNING, attempts=0,
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
            .where(*replica_files, LogFile.day.in_(day_texts), LogFile.status != FileStatus.CREATING)
            .values(status=FileStatus.CREATING, task_id=task.id, error_msg=None, updated_at=now,
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
                status=FileStatus.CREATING, task_id=task.id, created_at=now, updated_at=now, expires_at=expires_at)
                for day in new_days])
        audit.record(session, actor, "runlog.collect", project_id=instance.project_id, instance_id=instance.id,
                     target=task.id)
        await announce(session)
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


async def announce(session: AsyncSession) -> None:
    """Wake the workers once this session's transaction commits (nothing if it rolls back):
    on PostgreSQL every process's, by ``NOTIFY`` (delivered at commit; workers elsewhere find the
    jobs at their next poll), and this process's own on any database (``on_queued``)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {CHANNEL}"))
    sync_session = session.sync_session
    sync_session.info[_WAKE_AFTER_COMMIT] = True
    if not event.contains(sync_session, "after_commit", _after_commit):
        event.listen(sync_session, "after_commit", _after_commit)
        event.listen(sync_session, "after_rollback", _after_rollback)


# Wakers of this process, by database: (the loop a waker runs on, the waker).
_wakers: dict[str, list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]]] = {}
_wakers_lock = threading.Lock()  # apps in threads of one process (tests, benchmarks) register and wake
_WAKE_AFTER_COMMIT = "dcslog.jobs.wake_after_commit"  # Session.info: this transaction queued jobs


def _database(url: str | URL) -> str:
    return make_url(url).render_as_string(hide_password=False)


def on_queued(database_url: str, wake: Callable[[], None]) -> Callable[[], None]:
    """Call ``wake`` each time a transaction of this process that queued jobs in the database at
    ``database_url`` commits: how the worker embedded in `dcslog serve` hears of its own
    process's requests at once, on any database. ``wake`` runs on the loop this is called from,
    whichever thread commits. Returns the function that unregisters it."""
    entry = (asyncio.get_running_loop(), wake)
    key = _database(database_url)
    with _wakers_lock:
        _wakers.setdefault(key, []).append(entry)

    def unregister() -> None:
        with _wakers_lock:
            remaining = [other for other in _wakers.get(key, []) if other is not entry]
            if remaining:
                _wakers[key] = remaining
            else:
                _wakers.pop(key, None)
    return unregister


def _after_commit(session: Session) -> None:
    if not session.info.pop(_WAKE_AFTER_COMMIT, False):
        return
    with _wakers_lock:
        wakers = list(_wakers.get(_database(session.get_bind().engine.url), ()))
    try:
        current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    for loop, wake in wakers:
        if loop is current:
            wake()
        else:
            with contextlib.suppress(RuntimeError):  # that loop closed meanwhile: its worker is gone
                loop.call_soon_threadsafe(wake)


def _after_rollback(session: Session) -> None:
    session.info.pop(_WAKE_AFTER_COMMIT, None)


# --- Claim, renew, hand back, take over ---------------------------------------------------------

def new_owner() -> str:
    """A worker's lease owner: ``host:pid:random``, unique across hosts and restarts."""
    return f"{socket.gethostname()[:OWNER_HOST_CHARS]}:{os.getpid()}:{new_id()[:8]}"


@dataclass(frozen=True)
class Lease:
    """A claimed job, as the run that holds it knows it. ``abandon`` is set when the run must stop
    (its lease is gone, or its worker is stopping): it then starts no other step and records nothing."""

    task_id: str
    kind: str  # the task's name
    owner: str
    attempt: int  # claims of the job so far, this one included: names this run's objects
    handed_back: int = 0  # of those, runs a stopping worker handed back
    abandon: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)
    progress: JobProgress = field(default_factory=lambda: JobProgress(), compare=False, repr=False)

    @property
    def exhausted(self) -> bool:
        """Run MAX_ATTEMPTS times already without ending. Handed-back runs were not failures of the job."""
        return self.attempt - self.handed_back > MAX_ATTEMPTS

    def held(self) -> ColumnElement[bool]:
        """SQL: this run's owner still holds the task's lease. The guard on everything a run records."""
        return exists().where(Task.id == self.task_id, Task.lease_owner == self.owner)


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(Task.lease_until.is_(None), Task.lease_until < now)


class Leaseholder:
    """One worker's side of the jobs: its lease owner, and the claims, renewals, hand-back and
    take-overs made under it. ``staging`` is the store's: the owner is registered in this
    process's presence file there before the first claim, so that whoever finds the process
    dead frees its jobs at once."""

    def __init__(self, sessionmaker: Sessions, staging: Staging, lease_seconds: float):
        self.sessionmaker = sessionmaker
        self.staging = staging
        self.lease_seconds = lease_seconds
        self.owner = new_owner()
        self._registered = False  # self.owner is in this process's presence file

    async def _register(self) -> None:
        if not self._registered:
            await asyncio.to_thread(self.staging.register, self.owner)
            self._registered = True

    async def claim(self, kinds: Collection[str]) -> Lease | None:
        """Take one runnable job of ``kinds``, oldest first, or None."""
        await self._register()
        now = utcnow()
        async with self.sessionmaker() as session:
            # PostgreSQL: FOR UPDATE SKIP LOCKED hands concurrent workers different
            # rows. SQLite ignores it (one writer at a time anyway); the conditional
            # UPDATE below is what makes a claim exclusive on both.
            candidates = list(await session.scalars(
                select(Task.id).where(Task.name.in_(kinds), Task.status == TaskStatus.RUNNING, _lease_free(now))
                .order_by(Task.created_at).limit(10).with_for_update(skip_locked=True)))
            for task_id in candidates:
                claimed = (await session.execute(
                    update(Task).where(Task.id == task_id, Task.status == TaskStatus.RUNNING, _lease_free(now))
                    .values(lease_owner=self.owner, lease_until=now + timedelta(seconds=self.lease_seconds),
                            attempts=Task.attempts + 1, updated_at=now)
                    .returning(Task.name, Task.attempts, Task.handed_back))).first()
                await session.commit()
                if claimed is not None:
                    return Lease(task_id, claimed.name, self.owner, claimed.attempts, claimed.handed_back)
        return None

    async def renew(self, lease: Lease) -> bool:
        """Extend the lease to a whole lease from now. False when this worker no longer holds it
        (another took the job over); a database error raises (the caller decides to retry)."""
        async with self.sessionmaker() as session:
            kept = await session.execute(update(Task).where(Task.id == lease.task_id, Task.lease_owner == self.owner)
                                         .values(lease_until=utcnow() + timedelta(seconds=self.lease_seconds)))
            await session.commit()
        return _rowcount(kept) == 1

    async def hand_back(self) -> int:
        """Free every lease this worker still holds (it is stopping, and its runs stopped without
        recording), so that another worker takes the jobs over now rather than after the lease.
        These runs do not count against MAX_ATTEMPTS. Returns how many jobs were handed back."""
        async with self.sessionmaker() as session:
            result = await session.execute(
                update(Task).where(Task.lease_owner == self.owner, Task.status == TaskStatus.RUNNING)
                .values(lease_owner=None, lease_until=None, handed_back=Task.handed_back + 1, updated_at=utcnow()))
            await session.commit()
        return _rowcount(result)

    async def take_over_dead_runs(self) -> int:
        """Free the jobs of the dead processes of this host (``Staging.dead_processes``, which
        also removes their staged files), so that they are claimed now rather than when their
        leases run out. Returns how many jobs were freed. A freed run counts as an attempt, as
        any crash does (it was not handed back), so a job that kills its worker every time is
        still given up after MAX_ATTEMPTS."""
        await self._register()  # ours is then never taken for dead
        dead = await asyncio.to_thread(self.staging.dead_processes)
        if not dead:
            return 0
        owners = sorted({owner for process in dead for owner in process.owners})
        try:
            freed = 0
            if owners:
                async with self.sessionmaker() as session:
                    result = await session.execute(
                        update(Task).where(Task.lease_owner.in_(owners), Task.status == TaskStatus.RUNNING)
                        .values(lease_owner=None, lease_until=None, updated_at=utcnow()))
                    await session.commit()
                    freed = _rowcount(result)
        except BaseException:
            self.staging.keep(dead)  # found again at the next look
            raise
        self.staging.forget(dead)
        staged_files = sum(process.staged_files for process in dead)
        if freed or staged_files:
            log.info("a dcslog process of this host died (%s): %d staged file(s) removed, %d job(s) taken over",
                     ", ".join(owners) or ", ".join(process.mark for process in dead), staged_files, freed)
        return freed


# --- Progress -----------------------------------------------------------------------------------

class JobProgress:
    """How far a run is, as the run tells it and the worker's reporter reads it (``report_progress``).

    The run says which files it has (``begin``: the task's days, those settled by earlier runs,
    an estimate of each unsettled day's bytes), which staged file it is cutting (``stage``: the
    slicer or the agent writes it, so its size is the bytes cut of that day so far — read with
    ``stat`` by the reporter, never counted per block) and what each file came to (``settled``).
    Written from the cut's thread and read on the event loop: plain attributes, each write whole;
    an estimate tolerates a read between two of them.

    ``percent``: bytes cut over the estimated total (``settled`` bytes plus each unsettled day's
    estimate, or the bytes cut of it when more) when any day has an estimate, else settled files
    over files; never lower than any percent reported before (``floor``, the task's), and 99 at
    most until the task settles (then 100). ``remain_seconds``: what is left at this run's rate so
    far, None before the run has cut anything (or settled a file, when counting files).
    """

    def __init__(self) -> None:
        self.files = 0  # the task's files (days)
        self.settled_files = 0  # of them, settled (by this run or earlier ones)
        self.settled_bytes = 0  # their bytes
        self.estimates: dict[str, int] = {}  # unsettled file id -> estimated bytes (0: unknown)
        self.by_bytes = False  # any estimate known: percent counts bytes, else files
        self.floor = 0  # the percent reported before this run
        self.current: str | None = None  # the file being cut
        self._staged: str | None = None  # its staged file
        self._staged_bytes = 0  # that file's size when last looked at
        self._started = time.monotonic()
        self._bytes_at_start = 0
        self._files_at_start = 0

    def begin(self, *, files: int, settled_files: int, settled_bytes: int, estimates: dict[str, int | None],
              floor: int) -> None:
        """The run starts: the task's ``files``, those already settled and their bytes, an estimate
        of each unsettled file's bytes (None: unknown), and the task's percent so far."""
        self.files, self.settled_files, self.settled_bytes, self.floor = files, settled_files, settled_bytes, floor
        self.estimates = {file_id: estimate or 0 for file_id, estimate in estimates.items()}
        self.by_bytes = any(self.estimates.values())
        self._started = time.monotonic()
        self._bytes_at_start, self._files_at_start = settled_bytes, settled_files

    def start_file(self, file_id: str) -> None:
        self.current, self._staged, self._staged_bytes = file_id, None, 0

    def stage(self, path: str | None) -> None:
        """The current file is being cut into ``path`` (None: that staged file is done with)."""
        if path is not None:
            self._staged_bytes = 0  # a second try starts over
        self._staged = path

    def settled(self, file_id: str, size: int) -> None:
        """``file_id`` is settled with ``size`` bytes (0 when it failed)."""
        self.settled_files += 1
        self.settled_bytes += size
        self.estimates.pop(file_id, None)
        self.current, self._staged, self._staged_bytes = None, None, 0

    def _cutting_bytes(self) -> int:
        staged = self._staged
        if staged is not None:
            with contextlib.suppress(OSError):  # published (renamed) or discarded meanwhile: as last seen
                self._staged_bytes = os.stat(staged).st_size
        return self._staged_bytes

    def snapshot(self) -> tuple[int, int, int | None]:
        """(percent, bytes cut so far, estimated seconds left or None), as described above."""
        cutting = self._cutting_bytes() if self.current is not None else 0
        cut = self.settled_bytes + cutting
        elapsed = time.monotonic() - self._started
        if self.by_bytes:
            left = sum(estimate for file_id, estimate in self.estimates.items() if file_id != self.current)
            if self.current is not None:
                left += max(self.estimates.get(self.current, 0) - cutting, 0)
            total = cut + left
            percent = 100 * cut // total if total else 0
            done = cut - self._bytes_at_start
            remain = math.ceil(left * elapsed / done) if done > 0 else None
        else:
            percent = 100 * self.settled_files // self.files if self.files else 0
            done = self.settled_files - self._files_at_start
            remain = math.ceil((self.files - self.settled_files) * elapsed / done) if done > 0 else None
        self.floor = max(self.floor, min(percent, 99))
        return self.floor, cut, remain


async def report_progress(sessionmaker: Sessions, lease: Lease) -> bool:
    """Write the run's progress (``JobProgress.snapshot``) on its task, only while the run holds
    the lease: one UPDATE, the percent never lowered. False: the lease is gone (the task was
    deleted, settled, or taken over) and nothing was written."""
    percent, cut, remain = lease.progress.snapshot()
    async with sessionmaker() as session:
        written = await session.execute(update(Task).where(Task.id == lease.task_id, Task.lease_owner == lease.owner)
                                        .values(progress=case((Task.progress < percent, percent),
                                                              else_=Task.progress),
                                                cut_bytes=cut, remain_seconds=remain, progress_at=utcnow()))
        await session.commit()
    return _rowcount(written) == 1


async def settled_bytes(session: AsyncSession, task_id: str) -> tuple[int, int]:
    """How many of the task's files are settled, and the bytes of those it published: what earlier
    runs of the task did (``JobProgress.begin``)."""
    row = (await session.execute(select(
        func.count(), func.coalesce(func.sum(case((LogFile.content_task_id == task_id, LogFile.size), else_=0)), 0))
        .where(LogFile.task_id == task_id, LogFile.status != FileStatus.CREATING))).one()
    return int(row[0]), int(row[1])


# --- Cancel -------------------------------------------------------------------------------------

async def delete_task(session: AsyncSession, task_id: str) -> bool:
    """Delete the task in the session's transaction (the caller commits it, with whatever else
    belongs to the action: its audit record). A running one is cancelled: its files not
    settled yet are failed as ``failed_collection`` says, with reason ``CANCELLED`` (back to their
    previous copy, if they had one), in the same transaction as the row — and its lease — goes.
    Its run, if one is cutting, finds the lease gone at its next report (``report_progress``) or
    renewal and stops: it publishes nothing more, and whatever it published and could not record
    it deletes (``record`` is guarded by the lease). Files the task settled stay, with their own
    retention. False: no such task (deleted meanwhile)."""
    await session.execute(update(LogFile).where(LogFile.task_id == task_id, LogFile.status == FileStatus.CREATING)
                          .values(**failed_collection(CANCELLED)))
    deleted = await session.execute(delete(Task).where(Task.id == task_id))
    return _rowcount(deleted) == 1


# --- Give up and settle -------------------------------------------------------------------------

async def give_up_if_exhausted(sessionmaker: Sessions, lease: Lease) -> bool:
    """End a job that was run MAX_ATTEMPTS times without ending (``Lease.exhausted``): the task
    ``failed`` with the reason, its unsettled files failed as ``failed_collection`` says (back to
    their previous copy, if they had one). True if it was given up."""
    if not lease.exhausted:
        return False
    reason = f"Gave up after {MAX_ATTEMPTS} attempts: the worker running it stopped each time."
    async with sessionmaker() as session:
        await session.execute(update(LogFile).where(LogFile.task_id == lease.task_id,
                                                    LogFile.status == FileStatus.CREATING)
                              .values(**failed_collection(reason)))
        await session.execute(update(Task).where(Task.id == lease.task_id).values(
            status=TaskStatus.FAILED, error_msg=reason, lease_owner=None, lease_until=None, updated_at=utcnow(),
            **_finished_progress()))
        await session.commit()
    return True


async def unsettled_files(session: AsyncSession, task_id: str) -> list[LogFile]:
    """The task's files still to collect (``creating``), oldest day first."""
    return list(await session.scalars(select(LogFile).where(
        LogFile.task_id == task_id, LogFile.status == FileStatus.CREATING).order_by(LogFile.day)))


def published(task_id: str, object_key: str, size: int, sha256: str) -> dict[str, Any]:
    """``UPDATE log_files`` values of a file whose new content is published under ``object_key``:
    the content is now ``task_id``'s, and lasts as long as this collection's retention."""
    return {"status": FileStatus.SUCCEED, "object_key": object_key, "size": size, "sha256": sha256,
            "content_task_id": task_id, "content_expires_at": LogFile.expires_at,
            "error_msg": None, "updated_at": utcnow()}


def failed_collection(reason: str) -> dict[str, Any]:
    """``UPDATE log_files`` values that end the collection of ``creating`` files as failed. A file
    that had a complete copy goes back to ``succeed`` with it — content, size, hash, backup_id
    (``content_task_id``) and expiry as they were; one that had none becomes ``failed``. Either
    way ``task_id`` keeps naming the task that failed and ``error_msg`` says why: that is how the
    task finds its failed days when it settles."""
    return {"status": case((LogFile.content_task_id.is_not(None), FileStatus.SUCCEED), else_=FileStatus.FAILED),
            "expires_at": func.coalesce(LogFile.content_expires_at, LogFile.expires_at),
            "error_msg": reason, "updated_at": utcnow()}


async def record(sessionmaker: Sessions, lease: Lease, file_id: str, values: dict[str, Any]) -> bool:
    """Settle one file of the job with ``values`` (``published`` or ``failed_collection``) — only
    if it is still this task's and being collected, and the run still holds the lease. False:
    nothing was recorded (the lease went to another worker, whose run records instead)."""
    async with sessionmaker() as session:
        recorded = await session.execute(update(LogFile).where(
            LogFile.id == file_id, LogFile.task_id == lease.task_id, LogFile.status == FileStatus.CREATING,
            lease.held(),
        ).values(**values))
        await session.commit()
    return _rowcount(recorded) == 1


async def settle(sessionmaker: Sessions, lease: Lease) -> None:
    """End the job: the task's status and message from all its files' records, its lease freed
    (only while the run holds it). From the records, not from this run alone: an earlier run of
    the task (stopped, or taken over) may have settled some of its days already. A failed day is
    one with a reason, whether it became ``failed`` or went back to its previous copy."""
    async with sessionmaker() as session:
        failed = (await session.execute(select(LogFile.day, LogFile.error_msg).where(
            LogFile.task_id == lease.task_id, LogFile.error_msg.is_not(None)).order_by(LogFile.day))).all()
        days_by_reason: dict[str, list[str]] = {}
        for day, reason in failed:
            days_by_reason.setdefault(str(reason), []).append(day)
        await session.execute(update(Task).where(Task.id == lease.task_id, Task.lease_owner == lease.owner).values(
            status=TaskStatus.FAILED if failed else TaskStatus.SUCCEED,
            error_msg="; ".join(f"{', '.join(days)}: {reason}" for reason, days in days_by_reason.items()) or None,
            lease_owner=None, lease_until=None, updated_at=utcnow(), **_finished_progress(lease.progress)))
        await session.commit()


def _finished_progress(progress: JobProgress | None = None) -> dict[str, Any]:
    """``UPDATE tasks`` values of a task that ended, succeed or failed: nothing is left to do."""
    values: dict[str, Any] = {"progress": 100, "remain_seconds": 0, "progress_at": utcnow()}
    if progress is not None:
        values["cut_bytes"] = progress.settled_bytes
    return values


# What runs a job of a kind (``worker.RUNNERS``): the run records each of its files with
# ``record`` under its lease, stops once ``lease.abandon`` is set, and ends with ``settle``.
Runner = Callable[[Sessions, "ObjectStore", "Keyring", Lease], Awaitable[None]]
