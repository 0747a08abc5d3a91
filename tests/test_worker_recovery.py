"""A worker that died mid-collection: its job is taken over after the lease and completes; nothing partial is published."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta, timezone

from huaweicloudsdkdcs.v2 import CreateRedislogRequest, ListRedislogRequest

from dcslog.db.session import create_engine, create_sessionmaker
from dcslog.keys import Keyring, load_server_key
from dcslog.services.collection import run_collect_task
from dcslog.storage import open_object_store
from tests.dcslog_fixtures import wait_for
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
    lease_until = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=2)
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
                                   Keyring(load_server_key(settings)), task_id, owner, 1)
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
