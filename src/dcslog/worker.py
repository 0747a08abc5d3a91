"""Background jobs: claim queued collections, run them under a lease, sweep expired files.

A job is a ``tasks`` row in status ``running``. A worker claims it with a
conditional UPDATE (free, or its lease expired) and renews the lease every third
of ``DCSLOG_JOB_LEASE`` while it works, so a job whose worker died is taken over
once the lease runs out (within a lease: 30 s by default). A worker of the same
host and staging directory does not even wait for that: each process marks its
staged files and lists its lease owners in a presence file it holds locked
(``storage.staging``), and every worker looks for presence files whose lock is
free (their process died) at start and before each round of claims, removes
their staged files and frees their jobs at once (``_take_over_dead_runs``). A
run that finds its lease gone (it stalled past the lease, and another worker
took the job over) stops: it starts no further day and publishes nothing more.
A stopping worker (SIGTERM) claims nothing new, lets its jobs finish for up
to ``STOP_GRACE`` seconds, and hands back the leases of those that did not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dcslog.config import Settings
from dcslog.db.models import Instance, LogFile, Task
from dcslog.keys import Keyring, load_server_key
from dcslog.services.collection import failed_collection, is_object_key, run_collect_task
from dcslog.services.slowlog import harvest_all, sweep_slowlog
from dcslog.services.common import new_id, utcnow
from dcslog.services.redislog import COLLECT_TASK
from dcslog.db.session import JOBS_CHANNEL, create_engine, create_sessionmaker, is_postgresql, libpq_url
from dcslog.storage import ObjectStore, open_object_store

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


async def run_worker(settings: Settings) -> None:
    """`dcslog worker`: the worker alone, on the configured database and object store."""
    engine = create_engine(settings.effective_database_url)
    try:
        worker = Worker(settings, create_sessionmaker(engine), open_object_store(settings),
                        Keyring(load_server_key(settings)))
        running = asyncio.current_task()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)

        def on_signal() -> None:
            log.info("worker stopping: no new jobs; running ones get %ss to finish", STOP_GRACE)
            worker.stop()
            for signum in signals:  # a second signal skips the grace (leases still handed back)…
                loop.remove_signal_handler(signum)
                loop.add_signal_handler(signum, on_second_signal)

        def on_second_signal() -> None:
            for signum in signals:  # …and a third one ends the process as the default handlers do
                loop.remove_signal_handler(signum)
            running.cancel()
        for signum in signals:
            loop.add_signal_handler(signum, on_signal)
        log.info("dcslog worker running (data in %s); SIGTERM or Ctrl-C stops it gracefully",
                 settings.data_dir.resolve())
        await worker.run()
    finally:
        await engine.dispose()


LISTEN_START_TIMEOUT = 10.0  # seconds a starting worker waits to be listening before it polls anyway
LISTEN_RETRY_SECONDS = 5.0
# Age after which a staged file or an S3 multipart upload is taken for a crash's leftover:
# far beyond any live upload of one day's log (a live one is never touched).
ABANDONED_AFTER = 24 * 3600.0
STOP_GRACE = 30.0  # seconds a stopping worker lets its running jobs finish
HAND_BACK_WAIT = 10.0  # seconds a stopping worker waits for its jobs to stop at a day's end
# Seconds before a failed lease renewal is tried again (at most a third of the lease): a
# database busy for a moment must not cost the lease.
RENEW_RETRY = 1.0
# How often a worker lists the store for objects no record points to (a full listing of the bucket).
UNRECORDED_EVERY = 6 * 3600.0
# lease_owner is VARCHAR(64), which PostgreSQL enforces: a cloud host's long FQDN must not
# make every claim fail. Host (cut), pid and a random part keep owners unique.
OWNER_HOST_CHARS = 40


class Worker:
    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], store: ObjectStore,
                 keyring: Keyring):
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.store = store
        self.keyring = keyring
        self.owner = f"{socket.gethostname()[:OWNER_HOST_CHARS]}:{os.getpid()}:{new_id()[:8]}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._registered = False  # self.owner is in this process's presence file (storage.staging)
        self._next_unrecorded_sweep = 0.0  # loop time

    def stop(self) -> None:
        """Claim no more jobs; ``run()`` returns once the running ones finish, or after STOP_GRACE
        once the others stopped at the end of their day (up to HAND_BACK_WAIT more) and were handed back."""
        self._stopping = True
        self._wake.set()

    def wake(self) -> None:
        """Look for jobs now instead of at the next poll (called after a collection request)."""
        self._wake.set()

    async def run(self) -> None:
        """Collection jobs and sweeps here; slow-log harvests in a task of their own, so neither waits on the other.
        On PostgreSQL a third task listens for new jobs announced by any process."""
        helpers = [asyncio.create_task(self._harvest_forever())]
        if is_postgresql(self.settings.effective_database_url):
            listening = asyncio.Event()
            helpers.append(asyncio.create_task(self._listen_forever(listening)))
            # Listen before the first look for jobs, so that no request falls between the two.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(listening.wait(), LISTEN_START_TIMEOUT)
        try:
            await self._jobs_forever()
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _listen_forever(self, listening: asyncio.Event) -> None:
        """Wake on ``NOTIFY dcslog_jobs`` (``db.session.announce_jobs``, sent by the request that queued
        the jobs), whichever process made the request. The poll stays the fallback: a notification
        sent while this connection is down is lost, the next poll finds the job."""
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        libpq_url(self.settings.effective_database_url), autocommit=True) as connection:
                    await connection.execute(f"LISTEN {JOBS_CHANNEL}")
                    listening.set()
                    log.info("worker listening for jobs on PostgreSQL channel %s", JOBS_CHANNEL)
                    self.wake()  # whatever was queued while nobody listened
                    async for _ in connection.notifies():
                        self.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - polling goes on; listening is retried
                log.warning("no job notifications (%s); polling every %ss until they are back",
                            exc, self.settings.worker_poll_interval)
                listening.set()  # do not hold up the start any longer
            await asyncio.sleep(LISTEN_RETRY_SECONDS)

    async def _harvest_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                # Claims a node only if nobody did for most of an interval: with several workers,
                # each node is still read about once per interval.
                await harvest_all(self.sessionmaker, self.keyring, self.settings.redis_timeout,
                                  min_interval=0.8 * self.settings.slowlog_interval)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed round is retried at the next interval
                log.exception("slow-log harvest failed")
            await asyncio.sleep(max(0.0, self.settings.slowlog_interval - (loop.time() - started)))

    async def _jobs_forever(self) -> None:
        """Up to DCSLOG_WORKER_CONCURRENCY jobs at once: slicing waits on disk and hashing on CPU,
        so one job rarely uses a whole machine, and a big day must not hold up small ones."""
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        running: dict[asyncio.Task, threading.Event] = {}  # job -> its "stop" flag
        try:
            while not self._stopping:
                try:
                    # Before the sweep, which may take long on a big bucket: a dead run of this
                    # host (a restart after a crash) is taken over at once.
                    try:
                        await self._take_over_dead_runs()
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # noqa: BLE001 - the leases still run out; claims go on
                        log.warning("could not look for dead runs of this host's processes", exc_info=True)
                    if loop.time() >= next_sweep:
                        # Set first: a sweep that fails is retried at the next interval, and
                        # meanwhile jobs are still claimed.
                        next_sweep = loop.time() + self.settings.sweep_interval
                        await self.sweep()
                    while len(running) < self.settings.worker_concurrency and (task_id := await self.claim()):
                        abandon = threading.Event()
                        job = asyncio.create_task(self._run_job_logged(task_id, abandon))
                        running[job] = abandon
                        job.add_done_callback(lambda done: (running.pop(done, None), self._wake.set()))
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the loop must outlive a bad job or a database hiccup
                    log.exception("worker iteration failed")
                self._wake.clear()
                if self._stopping:
                    break
                try:
                    await asyncio.wait_for(self._wake.wait(), self.settings.worker_poll_interval)
                except asyncio.TimeoutError:
                    pass
            if running:
                await asyncio.wait(list(running), timeout=STOP_GRACE)
        finally:
            await self._hand_back(running)

    async def _hand_back(self, running: dict[asyncio.Task, threading.Event]) -> None:
        """Stop the jobs still running and free their leases, so another worker takes them over
        now rather than after the lease. Each job sees its flag after the day it is cutting (a
        thread cannot be interrupted), publishes nothing and returns; HAND_BACK_WAIT bounds the
        wait for that, so the leases are freed once no run of ours can still record."""
        jobs = {job: abandon for job, abandon in running.items() if not job.done()}
        if not jobs:
            return
        for abandon in jobs.values():
            abandon.set()
        _, late = await asyncio.wait(list(jobs), timeout=HAND_BACK_WAIT)
        for job in late:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        try:
            async with self.sessionmaker() as session:
                await session.execute(update(Task).where(Task.lease_owner == self.owner, Task.status == "running")
                                      .values(lease_owner=None, lease_until=None, handed_back=Task.handed_back + 1,
                                              updated_at=utcnow()))
                await session.commit()
            log.info("worker stopped; %d unfinished job(s) handed back", len(jobs))
        except Exception:  # noqa: BLE001 - the leases then simply run out
            log.warning("could not hand back the leases of %d job(s); they are taken over when the leases run out",
                        len(jobs), exc_info=True)

    async def _run_job_logged(self, task_id: str, abandon: threading.Event) -> None:
        try:
            await self.run_job(task_id, abandon)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the lease runs out and the job is retried
            log.exception("collection job %s failed", task_id)

    async def _register(self) -> None:
        """Put this worker's lease owner in the process's presence file before it claims
        anything, so that whoever finds the process dead frees its jobs at once."""
        if not self._registered:
            await asyncio.to_thread(self.store.staging.register, self.owner)
            self._registered = True

    async def _take_over_dead_runs(self) -> int:
        """Free the jobs of the dead processes of this host (``Staging.dead_processes``, which
        also removes their staged files), so that they are claimed now rather than when their
        leases run out. Returns how many jobs were freed. A freed run counts as an attempt, as
        any crash does (it was not handed back), so a job that kills its worker every time is
        still given up after MAX_ATTEMPTS."""
        await self._register()  # ours is then never taken for dead
        staging = self.store.staging
        dead = await asyncio.to_thread(staging.dead_processes)
        if not dead:
            return 0
        owners = sorted({owner for process in dead for owner in process.owners})
        try:
            freed = 0
            if owners:
                async with self.sessionmaker() as session:
                    result = await session.execute(
                        update(Task).where(Task.lease_owner.in_(owners), Task.status == "running")
                        .values(lease_owner=None, lease_until=None, updated_at=utcnow()))
                    await session.commit()
                    freed = result.rowcount
        except BaseException:
            staging.keep(dead)  # found again at the next look
            raise
        staging.forget(dead)
        staged_files = sum(process.staged_files for process in dead)
        if freed or staged_files:
            log.info("a dcslog process of this host died (%s): %d staged file(s) removed, %d job(s) taken over",
                     ", ".join(owners) or ", ".join(process.mark for process in dead), staged_files, freed)
            self._wake.set()
        return freed

    async def claim(self) -> str | None:
        """Take one runnable collection job, or None."""
        await self._register()
        now = utcnow()
        async with self.sessionmaker() as session:
            # PostgreSQL: FOR UPDATE SKIP LOCKED hands concurrent workers different
            # rows. SQLite ignores it (one writer at a time anyway); the conditional
            # UPDATE below is what makes a claim exclusive on both.
            candidates = list(await session.scalars(
                select(Task.id).where(Task.name == COLLECT_TASK, Task.status == "running",
                                      or_(Task.lease_until.is_(None), Task.lease_until < now))
                .order_by(Task.created_at).limit(10).with_for_update(skip_locked=True)))
            for task_id in candidates:
                claimed = await session.execute(
                    update(Task).where(Task.id == task_id, Task.status == "running",
                                       or_(Task.lease_until.is_(None), Task.lease_until < now))
                    .values(lease_owner=self.owner, lease_until=now + timedelta(seconds=self.settings.job_lease),
                            attempts=Task.attempts + 1, updated_at=now))
                await session.commit()
                if claimed.rowcount == 1:
                    return task_id
        return None

    async def run_job(self, task_id: str, abandon: threading.Event | None = None) -> None:
        """Run one claimed job. ``abandon`` is set when the run must stop: its lease is gone,
        or the worker is stopping."""
        abandon = abandon or threading.Event()
        async with self.sessionmaker() as session:
            task = await session.get(Task, task_id)
            # Runs a stopping worker handed back were not failures of the job.
            if task.attempts - task.handed_back > MAX_ATTEMPTS:
                await self._give_up(session, task)
                return
        heartbeat = asyncio.create_task(self._heartbeat(task_id, abandon))
        try:
            await run_collect_task(self.sessionmaker, self.store, self.keyring, task_id, self.owner, task.attempts,
                                   abandon)
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, task_id: str, abandon: threading.Event) -> None:
        """Renew the lease every third of it; when it is gone (another worker holds the job, or
        renewals failed for a whole lease), set ``abandon``: the run stops before its next day
        or publish. This runs on the event loop while the day is cut in a thread, so a cut of
        any length keeps its lease; a failed renewal is retried after RENEW_RETRY."""
        loop = asyncio.get_running_loop()
        lease = self.settings.job_lease
        renewed = loop.time()  # the claim has just set the lease
        wait = lease / 3
        while True:
            await asyncio.sleep(wait)
            attempted = loop.time()  # the new expiry counts from before the update, not after its commit
            try:
                async with self.sessionmaker() as session:
                    kept = await session.execute(update(Task).where(Task.id == task_id, Task.lease_owner == self.owner)
                                                 .values(lease_until=utcnow() + timedelta(seconds=lease)))
                    await session.commit()
            except Exception:  # noqa: BLE001 - one failed renewal must not end the renewals
                log.warning("could not renew the lease of task %s", task_id, exc_info=True)
                if loop.time() - renewed < lease:
                    wait = min(RENEW_RETRY, lease / 3)
                    continue
                log.warning("lease of task %s not renewed for %ss: stopping this run", task_id, lease)
            else:
                if kept.rowcount == 1:
                    renewed, wait = attempted, lease / 3
                    continue
                log.warning("lease of task %s was taken over: stopping this run", task_id)
            abandon.set()
            return

    async def _give_up(self, session: AsyncSession, task: Task) -> None:
        reason = f"Gave up after {MAX_ATTEMPTS} attempts: the worker running it stopped each time."
        now = utcnow()
        # Files that had a complete copy go back to it (a re-collection never destroys a good copy).
        await session.execute(update(LogFile).where(LogFile.task_id == task.id, LogFile.status == "creating")
                              .values(**failed_collection(reason)))
        await session.execute(update(Task).where(Task.id == task.id).values(
            status="failed", error_msg=reason, lease_owner=None, lease_until=None, updated_at=now))
        await session.commit()

    async def sweep(self) -> int:
        """Delete files (objects first, then records) past retention, and finished tasks as old. Returns files deleted."""
        now = utcnow()
        deleted = 0
        async with self.sessionmaker() as session:
            expired = list(await session.execute(
                select(LogFile.id, LogFile.object_key).where(LogFile.expires_at < now, LogFile.status != "creating")))
            for file_id, object_key in expired:
                # Record first, bytes after, and only if the row is still expired: a
                # collection may have just claimed it for a refresh (new expiry, creating).
                gone = await session.execute(delete(LogFile).where(
                    LogFile.id == file_id, LogFile.expires_at < now, LogFile.status != "creating"))
                await session.commit()
                if gone.rowcount == 1:
                    deleted += 1
                    if object_key:
                        await asyncio.to_thread(self.store.delete, object_key)
            task_cutoff = now - timedelta(days=self.settings.retention_days)
            await session.execute(delete(Task).where(Task.status != "running", Task.updated_at < task_cutoff))
            await session.commit()
            await sweep_slowlog(session, self.settings.slowlog_retention_days)
        if deleted:
            log.info("retention: deleted %d expired file(s)", deleted)
        try:
            abandoned = await asyncio.to_thread(self.store.clean_abandoned, ABANDONED_AFTER, is_object_key)
        except Exception as exc:  # noqa: BLE001 - e.g. no s3:ListBucketMultipartUploads: retention went on
            log.warning("could not look for half-written uploads left by a crash: %s", exc)
        else:
            if abandoned:
                log.info("retention: removed %d half-written upload(s) or staged file(s) left by a crash", abandoned)
        try:
            unrecorded = await self._delete_unrecorded()
        except Exception as exc:  # noqa: BLE001 - retried at the next sweep
            log.warning("could not look for stored files no record points to: %s", exc)
        else:
            if unrecorded:
                log.info("retention: deleted %d stored file(s) no record points to", unrecorded)
        return deleted

    async def _delete_unrecorded(self) -> int:
        """Delete dcslog's objects that no file record points to and that are ABANDONED_AFTER old:
        bytes whose delete failed after their record went (retention, a refresh's old copy), or that
        a run published just before it died. A live run records its object seconds after publishing.
        Only objects of instances this database knows are touched: another deployment's database
        pointed at the same bucket (a test setup, a wrong URL) must not take its files for garbage."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_unrecorded_sweep:
            return 0
        old_keys = await asyncio.to_thread(
            lambda: [key for key in self.store.keys(ABANDONED_AFTER) if is_object_key(key)])
        self._next_unrecorded_sweep = loop.time() + UNRECORDED_EVERY  # a failed listing is tried next sweep
        removed = 0
        for start in range(0, len(old_keys), 500):
            batch = old_keys[start:start + 500]
            instance_ids = {key.split("/")[0] for key in batch}
            file_ids = {key.split("/")[1] for key in batch}
            async with self.sessionmaker() as session:
                known = set(await session.scalars(select(Instance.id).where(Instance.id.in_(instance_ids))))
                recorded = set(await session.scalars(  # by primary key, then the key it records
                    select(LogFile.object_key).where(LogFile.id.in_(file_ids))))
            for key in batch:
                if key.split("/")[0] in known and key not in recorded:
                    await asyncio.to_thread(self.store.delete, key)
                    removed += 1
        return removed
