"""Several processes on PostgreSQL + S3: two API processes, two workers, one worker SIGKILLed mid-collection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta

import boto3
import httpx
import psycopg
import pytest

from dcslog.testing.ports import free_port
from dcslog.testing.processes import stop_processes
from dcslog.testing.waiting import answers, wait_for
from tests.test_redislog import log_line, today_utc

DCSLOG = [sys.executable, "-m", "dcslog.cli"]
INSTANCES = 6
DAYS = 7
LINES_PER_DAY = 25_000  # ≈ 2 MB a day: collections take long enough to be caught mid-way


def busy_day(day, tag: str) -> bytes:
    """LINES_PER_DAY lines 3 s apart, all inside the day."""
    start = datetime(day.year, day.month, day.day, 0, 10)
    return b"".join(log_line(start + timedelta(seconds=3 * i), f"{tag}entry {i}") for i in range(LINES_PER_DAY))


def run_cli(env, *args) -> dict:
    import json
    done = subprocess.run([*DCSLOG, *args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def cluster_env(tmp_path, postgres, s3_server):
    database_url = postgres.create_database()
    env = {**os.environ, "DCSLOG_DATA_DIR": str(tmp_path / "data"), "DCSLOG_DATABASE_URL": database_url,
           "DCSLOG_OBJECT_STORE": s3_server.store_url(s3_server.create_bucket()),
           "DCSLOG_S3_ACCESS_KEY_ID": "test", "DCSLOG_S3_SECRET_ACCESS_KEY": "test",
           # Every process must share the server key: generate it once, as an operator would.
           "DCSLOG_SERVER_KEY": "4d2yIHNGdcI2O8sGc1XyM7YQ3ZhfJm7XvAD5KJ8HBNc=",
           "DCSLOG_JOB_LEASE": "3", "DCSLOG_WORKER_POLL_INTERVAL": "0.2", "DCSLOG_SLOWLOG_INTERVAL": "3600"}
    run_cli(env, "db", "upgrade")  # a new database: admin commands never create one themselves
    return env


def test_two_apis_two_workers_one_killed(cluster_env, redis_standalone, tmp_path):
    env = cluster_env
    expected: dict[tuple[str, str], bytes] = {}
    instances = []
    for n in range(INSTANCES):
        log = tmp_path / f"node{n}.log"
        with open(log, "wb") as f:
            for back in range(DAYS - 1, -1, -1):
                day = today_utc() - timedelta(days=back)
                content = busy_day(day, f"node{n} ")
                expected[(str(n), day.isoformat())] = content
                f.write(content)
        # One Redis, one instance per synthetic log: --force, the import refuses a second instance of a deployment.
        instance = run_cli(env, "instances", "import", "--project-id", "demo", "--name", f"node{n}", "--force",
                           "--redis", redis_standalone.url, "--log-file", f"{redis_standalone.address}={log}")
        instances.append(instance["instance_id"])
    token = run_cli(env, "token", "create", "--project-id", "demo")["token"]

    ports = [free_port(), free_port()]
    procs: dict[str, subprocess.Popen] = {}
    try:
        for i, port in enumerate(ports):
            procs[f"api{i}"] = subprocess.Popen([*DCSLOG, "serve", "--no-worker", "--port", str(port)], env=env,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        apis = [f"http://127.0.0.1:{p}" for p in ports]
        for api in apis:
            wait_for(lambda api=api: answers(api), timeout=30, what=f"{api} to answer")
        headers = {"X-Auth-Token": token}
        for n, instance_id in enumerate(instances):
            api = apis[n % 2]  # requests spread over both API processes
            response = httpx.post(f"{api}/v2/demo/instances/{instance_id}/redislog",
                                  params={"log_type": "run", "query_time": DAYS}, headers=headers)
            assert response.status_code == 204, response.text

        def start_worker(name: str) -> subprocess.Popen:
            procs[name] = subprocess.Popen([*DCSLOG, "worker"], env=env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
            return procs[name]
        # The victim starts first, so that it surely holds a job (started together, the other worker
        # could take or finish them all before it); the second starts once it is mid-collection.
        victim = start_worker("worker0")

        db = psycopg.connect(env["DCSLOG_DATABASE_URL"].replace("postgresql+psycopg", "postgresql"), autocommit=True)

        def victim_mid_job() -> bool:
            # A task the victim holds with some of its files done and some not: it is mid-collection.
            row = db.execute(
                "SELECT count(*) FROM tasks t WHERE t.lease_owner LIKE %s AND t.status = 'running'"
                " AND EXISTS (SELECT 1 FROM log_files f WHERE f.task_id = t.id AND f.status = 'succeed')"
                " AND EXISTS (SELECT 1 FROM log_files f WHERE f.task_id = t.id AND f.status = 'creating')",
                (f"%:{victim.pid}:%",)).fetchone()
            return row[0] > 0
        wait_for(victim_mid_job, timeout=60, interval=0.01, what="the victim to be mid-collection")
        start_worker("worker1")
        victim.send_signal(signal.SIGKILL)
        victim.wait()

        def settled() -> bool:
            return db.execute("SELECT count(*) FROM log_files WHERE status = 'creating'").fetchone()[0] == 0
        wait_for(settled, timeout=120, what="the surviving worker to finish every job")

        rows = db.execute(
            "SELECT f.id, f.instance_id, f.day, f.status, f.object_key, f.size FROM log_files f").fetchall()
        assert len(rows) == INSTANCES * DAYS
        assert {r[3] for r in rows} == {"succeed"}
        attempts = db.execute("SELECT max(attempts) FROM tasks").fetchone()[0]
        assert attempts == 2  # the victim's job was taken over once
        # Exactly the recorded objects are in the bucket: nothing half-written, nothing orphaned.
        bucket = env["DCSLOG_OBJECT_STORE"].split("://")[1].split("?")[0]
        s3 = boto3.client("s3", endpoint_url=env["DCSLOG_OBJECT_STORE"].split("endpoint=")[1].split("&")[0],
                          region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        stored = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
        assert stored == {r[4] for r in rows}
        # Every file holds exactly its day, fetched through links from either API process.
        for i, (file_id, instance_id, day, _, _, size) in enumerate(rows):
            link = httpx.post(f"{apis[i % 2]}/v2/demo/instances/{instance_id}/redislog/{file_id}/links",
                              headers=headers).json()["link"]
            body = httpx.get(link).content
            assert body == expected[(str(instances.index(instance_id)), day)] and len(body) == size
        db.close()
    finally:
        stop_processes(*procs.values())



def test_a_request_to_another_process_wakes_the_worker_at_once(cluster_env, redis_standalone, tmp_path):
    """API and worker in separate processes, the worker polling only every 10 minutes: the
    collection still completes, because the request announces its jobs (NOTIFY) and the worker listens."""
    env = {**cluster_env, "DCSLOG_WORKER_POLL_INTERVAL": "600", "DCSLOG_JOB_LEASE": "60"}
    log = tmp_path / "node.log"
    content = busy_day(today_utc(), "notify ")[:200_000]
    content = content[:content.rindex(b"\n") + 1]
    log.write_bytes(content)
    instance_id = run_cli(env, "instances", "import", "--project-id", "demo", "--name", "n", "--redis",
                          redis_standalone.url, "--log-file", f"{redis_standalone.address}={log}")["instance_id"]
    token = run_cli(env, "token", "create", "--project-id", "demo")["token"]
    port = free_port()
    worker_log = tmp_path / "worker.log"
    procs = []
    try:
        procs.append(subprocess.Popen([*DCSLOG, "serve", "--no-worker", "--port", str(port)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with open(worker_log, "wb") as out:
            procs.append(subprocess.Popen([*DCSLOG, "worker"], env=env, stdout=out, stderr=out))
        api = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(api), timeout=30, what="the API to answer")
        # Its first look for jobs is behind it once it listens: from now on only a notification wakes it.
        wait_for(lambda: b"listening for jobs" in worker_log.read_bytes(), what="the worker to listen")
        headers = {"X-Auth-Token": token}
        response = httpx.post(f"{api}/v2/demo/instances/{instance_id}/redislog", params={"log_type": "run"},
                              headers=headers)
        assert response.status_code == 204, response.text

        def done():
            files = httpx.get(f"{api}/v2/demo/instances/{instance_id}/redislog", params={"log_type": "run"},
                              headers=headers).json()["file_list"]
            return files[0] if files and files[0]["status"] != "creating" else None
        item = wait_for(done, timeout=60, what="the collection, woken by NOTIFY (the poll is 600 s)")
        assert item["status"] == "succeed" and item["size"] == len(content)
    finally:
        stop_processes(*procs)


def s3_worker_settings(monkeypatch, tmp_path, store_url: str):
    """Settings of a worker on the embedded database and the S3 store at ``store_url``."""
    from dcslog.config import Settings

    monkeypatch.setenv("DCSLOG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DCSLOG_OBJECT_STORE", store_url)
    monkeypatch.setenv("DCSLOG_S3_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("DCSLOG_S3_SECRET_ACCESS_KEY", "test")
    return Settings()


def run_sweep(settings, store) -> int:
    """One retention sweep of a worker, as `dcslog worker` runs it."""
    import asyncio

    from dcslog.db.session import create_engine, create_sessionmaker, upgrade
    from dcslog.services.retention import Retention

    async def sweep() -> int:
        upgrade(settings.effective_database_url)
        engine = create_engine(settings.effective_database_url)
        try:
            return await Retention(settings, create_sessionmaker(engine), store).sweep()
        finally:
            await engine.dispose()
    return asyncio.run(sweep())


def staged_by_a_process_that_is_gone(staging_dir) -> str:
    """A staged file left by a process that staged it and ended without removing it."""
    script = ("import os, sys\nfrom dcslog.storage.staging import Staging\n"
              "fd, path = Staging(sys.argv[1]).stage(); os.close(fd); print(path)")
    done = subprocess.run([sys.executable, "-c", script, str(staging_dir)], capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout.strip()


@pytest.mark.parametrize("prefix", ["fleet", ""], ids=["under a prefix", "bucket root"])
def test_the_sweep_removes_what_a_crash_left_half_written(s3_server, tmp_path, monkeypatch, prefix):
    """A worker killed mid-upload leaves a multipart upload (parts billed, never visible) and a
    staged file. The retention sweep aborts uploads of dcslog's keys and removes staged files
    once they are ABANDONED_AFTER old — fresh ones may be a live collection's — and leaves
    other applications' uploads alone, even in the same bucket, even under no prefix.
    A staged file of a process that still runs is never removed, however old; one of a dead
    process that no worker took for dead (one of another host: see storage/staging.py) goes
    by the age rule.
    (moto reports every upload as initiated in 2010, so only the staged file shows the age
    rule; real stores report the real time.)"""
    import uuid

    from dcslog.services import retention
    from dcslog.storage import open_object_store

    bucket = s3_server.create_bucket()
    under = f"{prefix}/" if prefix else ""
    settings = s3_worker_settings(monkeypatch, tmp_path,
                                  s3_server.store_url(bucket).replace(f"s3://{bucket}?", f"s3://{bucket}/{prefix}?"))
    store = open_object_store(settings)
    s3 = store.client
    ours = f"{under}{uuid.uuid4()}/{uuid.uuid4()}/{uuid.uuid4()}-1.log"
    upload = s3.create_multipart_upload(Bucket=bucket, Key=ours)
    s3.upload_part(Bucket=bucket, Key=ours, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 1024)
    foreign = {"another-app/big.bin", f"{under}backups/dump.rdb"}
    for key in foreign:  # never touched
        s3.create_multipart_upload(Bucket=bucket, Key=key)
    staged = staged_by_a_process_that_is_gone(store.staging.directory)
    fd, live = store.staging.stage()  # this process's: alive
    os.close(fd)

    def uploads() -> set[str]:
        return {u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
    assert uploads() == {ours, *foreign}
    run_sweep(settings, store)
    assert uploads() == foreign  # ours, "initiated in 2010": abandoned
    assert os.path.exists(staged)  # a second old: maybe a collection being written right now
    monkeypatch.setattr(retention, "ABANDONED_AFTER", -1.0)  # now it counts as old
    run_sweep(settings, store)
    assert not os.path.exists(staged)
    assert os.path.exists(live)  # its process is alive: a collection being written, however long it takes
    assert uploads() == foreign


def test_a_sweep_that_cannot_list_uploads_still_does_retention(s3_server, tmp_path, monkeypatch, caplog):
    """The store refuses the listing (here: the bucket is gone; elsewhere: no
    s3:ListBucketMultipartUploads): a warning, and the sweep returns normally."""
    import logging

    from dcslog.storage import open_object_store

    settings = s3_worker_settings(monkeypatch, tmp_path, s3_server.store_url("no-such-bucket-here"))
    with caplog.at_level(logging.WARNING, logger="dcslog"):
        assert run_sweep(settings, open_object_store(settings)) == 0
    assert any("half-written uploads" in r.getMessage() for r in caplog.records)
