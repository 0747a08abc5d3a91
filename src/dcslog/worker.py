"""The worker: the loop that schedules background jobs, slow-log harvests and retention sweeps.

What a job's life is — queue, claim, lease, give up, hand back, take over, settle — is decided
in ``services/jobs.py``; what a collection does, in ``services/collection.py``; what retention
deletes, in ``services/retention.py``. This module only decides *when*: it claims jobs up to
``DCSLOG_WORKER_CONCURRENCY`` at once (woken by this process's requests, by ``NOTIFY`` on
PostgreSQL, or by the poll), renews each running job's lease every third of
``DCSLOG_JOB_LEASE`` (a heartbeat on the event loop, so a cut of any length in a thread keeps
it) and writes its progress every ``jobs.PROGRESS_INTERVAL``, looks for dead processes' runs
before each round of claims, sweeps every ``DCSLOG_SWEEP_INTERVAL`` and harvests slow logs every
``DCSLOG_SLOWLOG_INTERVAL``. A stopping worker (SIGTERM) claims nothing new, lets its jobs finish
for up to ``STOP_GRACE`` seconds, and hands back the leases of those that did not.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dcslog.config import Settings
from dcslog.db.session import create_engine, create_sessionmaker, is_postgresql, libpq_url
from dcslog.keys import Keyring, load_server_key
from dcslog.services import auto_capture, jobs
from dcslog.services.collection import run_collect_task
from dcslog.services.retention import Retention
from dcslog.services.slowlog_harvest import harvest_all
from dcslog.storage import ObjectStore, open_object_store

log = logging.getLogger(__name__)

# What runs a job of each kind (a task name): a new kind that the worker runs is one line here.
RUNNERS: dict[str, jobs.Runner] = {jobs.COLLECT_RUN_LOG: run_collect_task, jobs.AUTO_COLLECT_RUN_LOG: run_collect_task}


async def run_worker(settings: Settings) -> None:
    """`dcslog worker`: the worker alone, on the configured database and object store."""
    engine = create_engine(settings.effective_database_url)
    try:
        worker = Worker(settings, create_sessionmaker(engine), open_object_store(settings),
                        Keyring(load_server_key(settings)))
        running = asyncio.current_task()
        assert running is not None
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
STOP_GRACE = 30.0  # seconds a stopping worker lets its running jobs finish
HAND_BACK_WAIT = 10.0  # seconds a stopping worker waits for its jobs to stop at a day's end
# Seconds before a failed lease renewal is tried again (at most a third of the lease): a
# database busy for a moment must not cost the lease.
RENEW_RETRY = 1.0


class Worker:
    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], store: ObjectStore,
                 keyring: Keyring):
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.store = store
        self.keyring = keyring
        self.jobs = jobs.Leaseholder(sessionmaker, store.staging, settings.job_lease)
        self.retention = Retention(settings, sessionmaker, store)
        self._wake = asyncio.Event()
        self._stopping = False

    @property
    def owner(self) -> str:
        """This worker's lease owner."""
        return self.jobs.owner

    def stop(self) -> None:
        """Claim no more jobs; ``run()`` returns once the running ones finish, or after STOP_GRACE
        once the others stopped at the end of their day (up to HAND_BACK_WAIT more) and were handed back."""
        self._stopping = True
        self._wake.set()

    def wake(self) -> None:
        """Look for jobs now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Collection jobs and sweeps here; slow-log harvests in a task of their own, so neither waits on the other.
        On PostgreSQL a third task listens for new jobs announced by any process; this process's own
        requests wake it directly (``jobs.on_queued``)."""
        unregister = jobs.on_queued(self.settings.effective_database_url, self.wake)
        helpers = [asyncio.create_task(self._harvest_forever())]
        try:
            if is_postgresql(self.settings.effective_database_url):
                listening = asyncio.Event()
                helpers.append(asyncio.create_task(self._listen_forever(listening)))
                # Listen before the first look for jobs, so that no request falls between the two.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(listening.wait(), LISTEN_START_TIMEOUT)
            await self._jobs_forever()
        finally:
            unregister()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _listen_forever(self, listening: asyncio.Event) -> None:
        """Wake on ``NOTIFY dcslog_jobs`` (``jobs.announce``, sent by the transaction that queued
        the jobs), whichever process made the request. The poll stays the fallback: a notification
        sent while this connection is down is lost, the next poll finds the job."""
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        libpq_url(self.settings.effective_database_url), autocommit=True) as connection:
                    await connection.execute(f"LISTEN {jobs.CHANNEL}")
                    listening.set()
                    log.info("worker listening for jobs on PostgreSQL channel %s", jobs.CHANNEL)
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
                                  min_interval=0.8 * self.settings.slowlog_interval,
                                  fingerprints_only=self.settings.slowlog_fingerprints_only, store=self.store,
                                  capture=auto_capture.policy(self.settings))
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
        running: dict[asyncio.Task[None], jobs.Lease] = {}
        try:
            while not self._stopping:
                try:
                    # Before the sweep, which may take long on a big bucket: a dead run of this
                    # host (a restart after a crash) is taken over at once.
                    try:
                        if await self.jobs.take_over_dead_runs():
                            self._wake.set()
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # noqa: BLE001 - the leases still run out; claims go on
                        log.warning("could not look for dead runs of this host's processes", exc_info=True)
                    if loop.time() >= next_sweep:
                        # Set first: a sweep that fails is retried at the next interval, and
                        # meanwhile jobs are still claimed.
                        next_sweep = loop.time() + self.settings.sweep_interval
                        await self.retention.sweep()
                    while len(running) < self.settings.worker_concurrency and (lease := await self.claim()):
                        job = asyncio.create_task(self._run_job_logged(lease))
                        running[job] = lease
                        job.add_done_callback(functools.partial(self._job_done, running))
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the loop must outlive a bad job or a database hiccup
                    log.exception("worker iteration failed")
                self._wake.clear()
                if self._stopping:
                    break
                try:
                    await asyncio.wait_for(self._wake.wait(), self.settings.worker_poll_interval)
                except TimeoutError:
                    pass
            if running:
                await asyncio.wait(list(running), timeout=STOP_GRACE)
        finally:
            await self._hand_back(running)

    def _job_done(self, running: dict[asyncio.Task[None], jobs.Lease], job: asyncio.Task[None]) -> None:
        running.pop(job, None)
        self._wake.set()  # room for another claim

    async def _hand_back(self, running: dict[asyncio.Task[None], jobs.Lease]) -> None:
        """Stop the jobs still running and free their leases, so another worker takes them over
        now rather than after the lease. Each job sees its flag after the day it is cutting (a
        thread cannot be interrupted), publishes nothing and returns; HAND_BACK_WAIT bounds the
        wait for that, so the leases are freed once no run of ours can still record."""
        unfinished = {job: lease for job, lease in running.items() if not job.done()}
        if not unfinished:
            return
        for lease in unfinished.values():
            lease.abandon.set()
        _, late = await asyncio.wait(list(unfinished), timeout=HAND_BACK_WAIT)
        for job in late:
            job.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        try:
            await self.jobs.hand_back()
            log.info("worker stopped; %d unfinished job(s) handed back", len(unfinished))
        except Exception:  # noqa: BLE001 - the leases then simply run out
            log.warning("could not hand back the leases of %d job(s); they are taken over when the leases run out",
                        len(unfinished), exc_info=True)

    async def _run_job_logged(self, lease: jobs.Lease) -> None:
        try:
            await self.run_job(lease)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the lease runs out and the job is retried
            log.exception("%s job %s failed", lease.kind, lease.task_id)

    async def claim(self) -> jobs.Lease | None:
        """Take one runnable job of a kind this worker runs, or None."""
        return await self.jobs.claim(list(RUNNERS))

    async def run_job(self, lease: jobs.Lease) -> None:
        """Run one claimed job, its lease renewed meanwhile; or give it up if it was run too often."""
        if await jobs.give_up_if_exhausted(self.sessionmaker, lease):
            return
        helpers = [asyncio.create_task(self._heartbeat(lease)), asyncio.create_task(self._report_progress(lease))]
        try:
            await RUNNERS[lease.kind](self.sessionmaker, self.store, self.keyring, lease)
        finally:
            for helper in helpers:
                helper.cancel()

    async def _heartbeat(self, lease: jobs.Lease) -> None:
        """Renew the lease every third of it; when it is gone (another worker holds the job, or
        renewals failed for a whole lease), set ``lease.abandon``: the run stops before its next
        day or publish. This runs on the event loop while the day is cut in a thread, so a cut of
        any length keeps its lease; a failed renewal is retried after RENEW_RETRY."""
        loop = asyncio.get_running_loop()
        seconds = self.settings.job_lease
        renewed = loop.time()  # the claim has just set the lease
        wait = seconds / 3
        while True:
            await asyncio.sleep(wait)
            attempted = loop.time()  # the new expiry counts from before the update, not after its commit
            try:
                kept = await self.jobs.renew(lease)
            except Exception:  # noqa: BLE001 - one failed renewal must not end the renewals
                log.warning("could not renew the lease of task %s", lease.task_id, exc_info=True)
                if loop.time() - renewed < seconds:
                    wait = min(RENEW_RETRY, seconds / 3)
                    continue
                log.warning("lease of task %s not renewed for %ss: stopping this run", lease.task_id, seconds)
            else:
                if kept:
                    renewed, wait = attempted, seconds / 3
                    continue
                log.warning("lease of task %s was taken over: stopping this run", lease.task_id)
            lease.abandon.set()
            return

    async def _report_progress(self, lease: jobs.Lease) -> None:
        """Write the run's progress every ``jobs.PROGRESS_INTERVAL`` (``jobs.report_progress``): a
        bounded rate, however many blocks the cut writes. A report that finds the lease gone (the
        task was deleted: DeleteBackgroundTask) sets ``lease.abandon`` at once, rather than at the
        next renewal; a failed report is only logged (renewals decide about database outages)."""
        while True:
            await asyncio.sleep(jobs.PROGRESS_INTERVAL)
            try:
                held = await jobs.report_progress(self.sessionmaker, lease)
            except Exception:  # noqa: BLE001 - progress is best effort; the next report tries again
                log.debug("could not report the progress of task %s", lease.task_id, exc_info=True)
                continue
            if not held:
                log.info("task %s was deleted or taken over: stopping this run", lease.task_id)
                lease.abandon.set()
                return
