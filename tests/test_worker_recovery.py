"""A worker that died mid-collection: its job is taken over after the lease and completes;
nothing partial is published."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from huaweicloudsdkdcs.v2 import CreateRedislogRequest, ListRedislogRequest

from dcslog import worker as worker_module
from dcslog.db.session import create_engine, create_sessionmaker, libpq_url
from dcslog.keys import Keyring, load_server_key
from dcslog.services import jobs
from dcslog.services.collection import run_collect_task
from dcslog.storage import open_object_store
from dcslog.testing.waiting import wait_for
from dcslog.worker import Worker
from tests.test_redislog import day_lines, download, today_utc


def test_job_of_a_dead_worker_is_taken_over(dcslog_server_factory, redis_standalone, tmp_path):
    log_file = tmp_path / "r.log"
    log_file.write_bytes(day_lines(today_utc(), 50))
    with dcslog_server_factory(run_worker=False) as server:
        imported = server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                          f"{redis_standalone.address}={log_file}")
        credential = server.credentials()
        server.sdk(credential=credential).create_redislog(
            CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
        data_dir = server.settings.data_dir

    # As a worker that claimed the job and was SIGKILLed would leave it: a live-looking
    # lease in the database and a half-written staged file on disk.
    lease_until = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=2)
    with sqlite3.connect(data_dir / "dcslog.db") as db:
        db.execute("UPDATE tasks SET lease_owner='dead-worker', lease_until=?, attempts=1",
                   (lease_until.isoformat(sep=" "),))
    staged = data_dir / "files" / ".staging" / "half.part"
    staged.write_bytes(b"half a file")

    with dcslog_server_factory(job_lease="2") as server:
        client = server.sdk(credential=credential)

        def settled():
            listing = client.list_redislog(ListRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
            return listing.file_list[0] if listing.file_list[0].status != "creating" else None
        item = wait_for(settled, timeout=30, what="the job to be taken over")
        assert item.status == "succeed"
        assert download(client, imported["instance_id"], item.id).content == log_file.read_bytes()
    with sqlite3.connect(data_dir / "dcslog.db") as db:
        assert db.execute("SELECT status, attempts FROM tasks").fetchall() == [("succeed", 2)]


def test_a_request_wakes_the_worker_of_its_own_process_at_once(dcslog_server_factory, redis_standalone, tmp_path):
    """`dcslog serve` on the embedded default (no NOTIFY), its worker polling only every 10
    minutes: the collection still runs at once, because the commit that queued it wakes the
    worker of its own process (``jobs.on_queued``)."""
    log_file = tmp_path / "r.log"
    log_file.write_bytes(day_lines(today_utc(), 20))
    with dcslog_server_factory(worker_poll_interval="600") as server:
        imported = server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                          f"{redis_standalone.address}={log_file}")
        staging = server.settings.data_dir / "files" / ".staging"
        # The worker's first look for jobs (it registers its owner first) is behind it: from now
        # on only a wake, or the poll in 10 minutes, makes it look again.
        wait_for(lambda: any(b"owner " in p.read_bytes() for p in staging.glob("*.lock")),
                 what="the worker's first look")
        time.sleep(0.5)
        client = server.sdk()
        client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))

        def settled():
            listing = client.list_redislog(ListRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
            return listing.file_list[0] if listing.file_list[0].status != "creating" else None
        assert wait_for(settled, timeout=20, what="the collection, woken in-process (the poll is 600 s)").status \
            == "succeed"


def test_a_run_that_lost_its_lease_records_and_leaves_nothing(dcslog_server_factory, redis_standalone, tmp_path):
    log_file = tmp_path / "r.log"
    log_file.write_bytes(day_lines(today_utc(), 20))
    with dcslog_server_factory(run_worker=False) as server:
        imported = server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                          f"{redis_standalone.address}={log_file}")
        server.sdk().create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
        settings = server.settings
    with sqlite3.connect(settings.data_dir / "dcslog.db") as db:
        [(task_id,)] = db.execute("SELECT id FROM tasks").fetchall()
        db.execute("UPDATE tasks SET lease_owner='the-new-owner', attempts=2")

    async def run_as(owner: str) -> None:
        engine = create_engine(settings.effective_database_url)
        try:
            await run_collect_task(create_sessionmaker(engine), open_object_store(settings),
                                   Keyring(load_server_key(settings)),
                                   jobs.Lease(task_id, jobs.COLLECT_RUN_LOG, owner, attempt=1))
        finally:
            await engine.dispose()

    asyncio.run(run_as("the-old-owner"))
    with sqlite3.connect(settings.data_dir / "dcslog.db") as db:
        assert db.execute("SELECT status, object_key FROM log_files").fetchall() == [("creating", None)]
        assert db.execute("SELECT status FROM tasks").fetchall() == [("running",)]
    assert not list((settings.data_dir / "files").rglob("*.log"))

    asyncio.run(run_as("the-new-owner"))
    with sqlite3.connect(settings.data_dir / "dcslog.db") as db:
        [(status, key, size)] = db.execute("SELECT status, object_key, size FROM log_files").fetchall()
    assert status == "succeed" and size == log_file.stat().st_size
    assert [p.name for p in (settings.data_dir / "files").rglob("*.log")] == [key.rsplit("/", 1)[1]]


def queued_job(dcslog_server_factory, redis_standalone, tmp_path, query_time: int = 0):
    """Settings of a server that queued one collection (nobody ran it) and the log behind it."""
    log_file = tmp_path / "r.log"
    log_file.write_bytes(day_lines(today_utc(), 20))
    with dcslog_server_factory(run_worker=False, job_lease="1") as server:
        imported = server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                          f"{redis_standalone.address}={log_file}")
        server.sdk().create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run",
                                                           query_time=query_time))
        return server.settings, log_file


def slow_cuts(monkeypatch, seconds: float = 0.0, before=lambda: None, until: threading.Event | None = None) -> None:
    """Every day cut takes ``seconds`` longer, or lasts ``until`` the event is set (``before()``
    runs first): a big day, a slow disk."""
    from dcslog.services import collection

    real = collection.write_day

    def slow(*args, **kwargs):
        before()
        if until is not None:
            until.wait(30)
        time.sleep(seconds)
        return real(*args, **kwargs)
    monkeypatch.setattr(collection, "write_day", slow)


def publishes(store) -> list[str]:
    """Keys ``store`` publishes from now on (the real publish still runs)."""
    published = []
    real = store.publish
    store.publish = lambda staged, key: (published.append(key), real(staged, key))[1]
    return published


def db_rows(settings, query: str) -> list[tuple]:
    with sqlite3.connect(settings.data_dir / "dcslog.db") as db:
        return db.execute(query).fetchall()


def claim_and_run(settings, store=None) -> None:
    """One worker claims the queued job and runs it to its end, as `dcslog worker` would."""
    async def run() -> None:
        engine = create_engine(settings.effective_database_url)
        try:
            worker = Worker(settings, create_sessionmaker(engine), store or open_object_store(settings),
                            Keyring(load_server_key(settings)))
            await worker.run_job(await worker.claim())
        finally:
            await engine.dispose()
    asyncio.run(run())


def test_a_run_whose_lease_is_taken_over_mid_cut_publishes_nothing(dcslog_server_factory, redis_standalone,
                                                                   tmp_path, monkeypatch):
    """The worker stalls past its lease (here: a slow cut), another takes the job over: the
    heartbeat finds the lease gone and the stalled run stops before publishing."""
    settings, _ = queued_job(dcslog_server_factory, redis_standalone, tmp_path)

    def taken_over():
        with sqlite3.connect(settings.data_dir / "dcslog.db") as db:
            db.execute("UPDATE tasks SET lease_owner='another-worker'")
    slow_cuts(monkeypatch, 1.5, before=taken_over)
    store = open_object_store(settings)
    published = publishes(store)
    claim_and_run(settings, store)
    assert published == []
    assert db_rows(settings, "SELECT status, object_key FROM log_files") == [("creating", None)]
    assert not list((settings.data_dir / "files").rglob("*.log"))
    assert not list((settings.data_dir / "files" / ".staging").glob("*.part"))


@pytest.mark.parametrize("finishes", [True, False], ids=["finishes within the grace", "handed back"])
def test_a_stopping_worker_finishes_or_hands_back_its_jobs(dcslog_server_factory, redis_standalone, tmp_path,
                                                           monkeypatch, finishes):
    """stop() (SIGTERM): no new claims; a job that ends within STOP_GRACE is recorded, one that does
    not stops unpublished at the end of its day's cut and its lease is freed at once, so the next
    worker need not wait it out; that run does not count against the job's retry limit."""
    settings, log_file = queued_job(dcslog_server_factory, redis_standalone, tmp_path)
    monkeypatch.setattr(worker_module, "STOP_GRACE", 5.0 if finishes else 0.5)
    cut_may_end = threading.Event()
    slow_cuts(monkeypatch, 0.2 if finishes else 0.0, until=None if finishes else cut_may_end)
    store = open_object_store(settings)
    published = publishes(store)

    async def run_then_stop() -> None:
        engine = create_engine(settings.effective_database_url)
        try:
            worker = Worker(settings, create_sessionmaker(engine), store, Keyring(load_server_key(settings)))
            running = asyncio.create_task(worker.run())
            while not db_rows(settings, "SELECT 1 FROM tasks WHERE lease_owner IS NOT NULL"):
                await asyncio.sleep(0.05)
            worker.stop()
            if not finishes:
                await asyncio.sleep(1.0)  # past STOP_GRACE, the cut still going: the lease is kept…
                assert db_rows(settings, "SELECT lease_owner FROM tasks") == [(worker.owner,)]
                cut_may_end.set()  # …until the day's cut ends (unpublished): then it is handed back
            await asyncio.wait_for(running, 20)
        finally:
            await engine.dispose()
    asyncio.run(run_then_stop())
    if finishes:
        assert db_rows(settings, "SELECT status FROM log_files") == [("succeed",)]
        assert db_rows(settings, "SELECT status, lease_owner FROM tasks") == [("succeed", None)]
    else:
        assert published == []
        assert db_rows(settings, "SELECT status, object_key FROM log_files") == [("creating", None)]
        assert db_rows(settings, "SELECT status, lease_owner, lease_until, attempts, handed_back FROM tasks") \
            == [("running", None, None, 1, 1)]
        assert not list((settings.data_dir / "files" / ".staging").glob("*.part"))


def test_dcslog_worker_exits_cleanly_on_sigterm(tmp_path):
    env = {**os.environ, "DCSLOG_DATA_DIR": str(tmp_path / "data")}
    worker = subprocess.Popen([sys.executable, "-m", "dcslog.cli", "worker"], env=env, stderr=subprocess.PIPE,
                              text=True)
    try:
        for line in worker.stderr:
            if "stops it gracefully" in line:  # logged once the signal handlers are in place
                break
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0
    finally:
        worker.kill()
        worker.wait()


def test_a_long_hostname_still_makes_a_claimable_owner(postgres, monkeypatch, tmp_path):
    """Cloud hosts' FQDNs reach 60+ characters; lease_owner is VARCHAR(64), which PostgreSQL enforces."""
    from dcslog.config import Settings
    from dcslog.db.session import upgrade

    monkeypatch.setattr(socket, "gethostname", lambda: "ip-172-31-145-123.ap-southeast-1.compute.internal.example")
    monkeypatch.setenv("DCSLOG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DCSLOG_DATABASE_URL", postgres.create_database())
    settings = Settings()
    upgrade(settings.effective_database_url)
    now = datetime.utcnow()
    with psycopg.connect(libpq_url(settings.effective_database_url), autocommit=True) as db:
        db.execute("SET session_replication_role = replica")  # a task without its instance: no FK check
        db.execute("INSERT INTO tasks (id, instance_id, project_id, name, replication_id, details, params, user_name, "
                   "user_id, status, attempts, created_at, updated_at) VALUES ('t', 'i', 'p', %s, 'r', '{}', '{}', "
                   "'u', 'u', 'running', 0, %s, %s)", (jobs.COLLECT_RUN_LOG, now, now))

    async def claim() -> str | None:
        engine = create_engine(settings.effective_database_url)
        try:
            lease = await Worker(settings, create_sessionmaker(engine), open_object_store(settings), None).claim()
            return lease and lease.task_id
        finally:
            await engine.dispose()
    assert asyncio.run(claim()) == "t"


def test_handed_back_runs_do_not_count_against_the_retry_limit(dcslog_server_factory, redis_standalone, tmp_path):
    """Four claims, one of them handed back by a stopping worker: three real attempts, so the
    next claim runs the job instead of giving up on it."""
    settings, log_file = queued_job(dcslog_server_factory, redis_standalone, tmp_path)
    with sqlite3.connect(settings.data_dir / "dcslog.db") as db:
        db.execute("UPDATE tasks SET attempts = 3, handed_back = 1")
    claim_and_run(settings)
    assert db_rows(settings, "SELECT status, attempts FROM tasks") == [("succeed", 4)]


def test_a_task_ends_failed_if_any_of_its_days_failed_in_an_earlier_run(dcslog_server_factory, redis_standalone,
                                                                      tmp_path):
    """A job split across runs (a hand-back, a takeover): the task's status and message come from
    all its days' records, not from the last run's days alone."""
    settings, _ = queued_job(dcslog_server_factory, redis_standalone, tmp_path, query_time=3)
    earlier_day = (today_utc() - timedelta(days=2)).isoformat()
    with sqlite3.connect(settings.data_dir / "dcslog.db") as db:  # as the earlier run left it
        db.execute("UPDATE log_files SET status = 'failed', error_msg = 'The disk was full.' WHERE day = ?",
                   (earlier_day,))
    claim_and_run(settings)
    assert sorted(db_rows(settings, "SELECT status FROM log_files")) == [("failed",), ("succeed",), ("succeed",)]
    assert db_rows(settings, "SELECT status, error_msg FROM tasks") == [
        ("failed", f"{earlier_day}: The disk was full.")]
