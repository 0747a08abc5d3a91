"""Faults: a dead Redis node, copytruncate mid-read, a full object store, a SIGKILLed service.

In every case no file is `succeed` with bytes other than the source day's; a
collection ends `failed` with a reason a user can read, or completes after a
restart; and the service goes on answering other requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from huaweicloudsdkdcs.v2 import CreateRedislogRequest, ListGroupReplicationInfoRequest, ListInstancesRequest

from dcslog.testing.ports import free_port
from dcslog.testing.processes import stop_processes
from dcslog.testing.waiting import answers, wait_for
from tests.test_redislog import download, log_line, today_utc, wait_settled

DCSLOG = [sys.executable, "-m", "dcslog.cli"]


def big_day(day, mib: int, tag: str = "") -> bytes:
    """About ``mib`` MiB of lines, all inside ``day``: a burst of identical lines each second (fast to make)."""
    start = datetime(day.year, day.month, day.day, 0, 5)
    sample = log_line(start, f"{tag}padding-padding-padding")
    lines = mib * 1024 * 1024 // len(sample)
    seconds = min(80_000, lines)
    per_second = lines // seconds
    return b"".join(log_line(start + timedelta(seconds=s), f"{tag}padding-padding-padding") * per_second
                    for s in range(seconds))


def test_a_node_that_dies_mid_collection(dcslog_server, redis_standalone, tmp_path):
    log = tmp_path / "node.log"
    content = big_day(today_utc(), 64)
    log.write_bytes(content)
    imported = dcslog_server.import_instance(redis_standalone.url, "proj-a", "dying", "--log-file",
                                             f"{redis_standalone.address}={log}")
    client = dcslog_server.sdk()
    client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
    redis_standalone.proc.send_signal(signal.SIGKILL)
    redis_standalone.proc.wait()
    # The service goes on answering meanwhile.
    assert client.list_instances(ListInstancesRequest()).instance_num == 1
    [item] = wait_settled(client, imported["instance_id"])
    # A dead node's log is still its log: collected whole.
    assert item.status == "succeed"
    assert download(client, imported["instance_id"], item.id).content == content


def test_a_failover_during_a_collection(dcslog_server, redis_replicated, tmp_path):
    """The replica whose day is being collected is promoted meanwhile, and a harvest round sees it
    (events, roles, an automatic capture that may not join the running collection): every file
    still ends with the day's exact bytes."""
    primary, (replica, _) = redis_replicated.primary, redis_replicated.replicas
    log = tmp_path / "replica.log"
    content = big_day(today_utc(), 64)
    log.write_bytes(content)
    instance_id = dcslog_server.import_instance(primary.url, "proj-a", "failing-over", "--log-file",
                                                f"{replica.address}={log}")["instance_id"]
    client = dcslog_server.sdk()
    dcslog_server.harvest()  # the first look
    groups = client.list_group_replication_info(ListGroupReplicationInfoRequest(instance_id=instance_id))
    [rid] = [r.replication_id for r in groups.group_list[0].replication_list if r.replication_ip == replica.host]
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run", replication_id=rid))
    with contextlib.closing(replica.client()) as redis_client:
        redis_client.execute_command("REPLICAOF", "NO", "ONE")
    dcslog_server.harvest()
    files = wait_settled(client, instance_id)
    mine = [f for f in files if f.replication_ip == replica.host]
    assert [f.status for f in mine] == ["succeed"]
    assert download(client, instance_id, mine[0].id).content == content
    # The automatic capture of the master it followed (its own log file) is whole too.
    assert {f.status for f in files} == {"succeed"}


def copytruncate_while_collecting(log: Path, staging: Path) -> threading.Thread:
    """logrotate's copytruncate (copy the log to redis.log.1, then truncate it in place), timed
    to land while dcslog writes the day into ``staging``: the copy is made beforehand, the
    rename and truncate happen (in the returned, started thread) once a staged file has bytes."""
    copy = log.with_name(log.name + ".1.tmp")
    shutil.copyfile(log, copy)

    def rotate_when_reading() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(p.stat().st_size > 0 for p in staging.glob("*.part")):
            pass
        os.rename(copy, log.with_name(log.name + ".1"))
        os.truncate(log, 0)
    rotator = threading.Thread(target=rotate_when_reading)
    rotator.start()
    return rotator


def test_copytruncate_rotation_mid_read(dcslog_server, redis_standalone, tmp_path):
    log = tmp_path / "redis.log"
    content = big_day(today_utc(), 256)
    log.write_bytes(content)
    imported = dcslog_server.import_instance(redis_standalone.url, "proj-a", "rotating", "--log-file",
                                             f"{redis_standalone.address}={log}")
    client = dcslog_server.sdk()
    staging = dcslog_server.settings.data_dir / "files" / ".staging"

    rotator = copytruncate_while_collecting(log, staging)
    client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
    rotator.join()
    [item] = wait_settled(client, imported["instance_id"])
    if item.status == "succeed":  # sliced again after the rotation: the day is in redis.log.1 now
        assert download(client, imported["instance_id"], item.id).content == content
    else:
        token = dcslog_server.cli("token", "create", "--project-id", "proj-a")["token"]
        task = httpx.get(f"{dcslog_server.url}/v2/proj-a/instances/{imported['instance_id']}/tasks",
                         headers={"X-Auth-Token": token}).json()["tasks"][0]
        assert "copytruncate" in task["error_msg"]


@pytest.fixture
def tiny_store(tmp_path):
    """A 2 MiB tmpfs as the object store. Mounting it takes root: CI runs as root and fails the
    test without it; elsewhere (a developer's `./dev test` as a normal user) it is skipped."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("this test mounts a tmpfs: run it as root (CI does)")
        pytest.skip("mounts a tmpfs: needs root (CI runs it)")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_object_store_disk_full(dcslog_server_factory, redis_standalone, tmp_path, tiny_store):
    log = tmp_path / "node.log"
    small = big_day(today_utc() - timedelta(days=1), 1, "small ")
    large = big_day(today_utc(), 4, "large ")
    log.write_bytes(small + large)
    with dcslog_server_factory(object_store=f"file://{tiny_store}") as server:
        imported = server.import_instance(redis_standalone.url, "proj-a", "full", "--log-file",
                                          f"{redis_standalone.address}={log}")
        client = server.sdk()
        client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run",
                                                     query_time=3))
        files = {f.time: f for f in wait_settled(client, imported["instance_id"])}
        assert files[today_utc().isoformat()].status == "failed"
        yesterday = files[(today_utc() - timedelta(days=1)).isoformat()]
        assert yesterday.status == "succeed"
        assert download(client, imported["instance_id"], yesterday.id).content == small
        token = server.cli("token", "create", "--project-id", "proj-a")["token"]
        task = httpx.get(f"{server.url}/v2/proj-a/instances/{imported['instance_id']}/tasks",
                         headers={"X-Auth-Token": token}).json()["tasks"][0]
        assert task["status"] == "failed" and "full" in task["error_msg"]
        # Nothing half-written is left behind, and the service still answers.
        assert not list((tiny_store / ".staging").glob("*.part"))
        assert client.list_instances(ListInstancesRequest()).instance_num == 1


def test_service_sigkilled_mid_collection_then_restarted(tmp_path, redis_standalone):
    log = tmp_path / "node.log"
    days = {today_utc() - timedelta(days=back): big_day(today_utc() - timedelta(days=back), 24, f"d{back} ")
            for back in range(6, -1, -1)}
    log.write_bytes(b"".join(days.values()))
    port = free_port()
    env = {**os.environ, "DCSLOG_DATA_DIR": str(tmp_path / "data"), "DCSLOG_PORT": str(port),
           "DCSLOG_JOB_LEASE": "2", "DCSLOG_WORKER_POLL_INTERVAL": "0.2", "DCSLOG_SLOWLOG_INTERVAL": "3600"}

    def cli(*args):
        done = subprocess.run([*DCSLOG, *args, "--json"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def serve() -> subprocess.Popen:
        proc = subprocess.Popen([*DCSLOG, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: answers(f"http://127.0.0.1:{port}"), timeout=30, what="dcslog serve")
        return proc

    cli("db", "upgrade")  # admin commands never create the database themselves
    instance = cli("instances", "import", "--project-id", "demo", "--name", "n", "--redis", redis_standalone.url,
                   "--log-file", f"{redis_standalone.address}={log}")
    token = cli("token", "create", "--project-id", "demo")["token"]
    api = f"http://127.0.0.1:{port}/v2/demo/instances/{instance['instance_id']}"
    headers = {"X-Auth-Token": token}
    db_path = tmp_path / "data" / "dcslog.db"

    def statuses() -> list[str]:
        with sqlite3.connect(db_path) as db:
            return [s for (s,) in db.execute("SELECT status FROM log_files")]

    proc = serve()
    try:
        assert httpx.post(f"{api}/redislog", params={"log_type": "run", "query_time": 7},
                          headers=headers).status_code == 204
        wait_for(lambda: "succeed" in statuses() and "creating" in statuses(), interval=0.005,
                 what="the collection to be half done")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert "creating" in statuses()
        proc = serve()
        wait_for(lambda: statuses() and "creating" not in statuses(), timeout=60, what="the job to complete")
        listing = httpx.get(f"{api}/redislog", params={"log_type": "run", "limit": 10}, headers=headers).json()
        assert {f["status"] for f in listing["file_list"]} == {"succeed"}
        for item in listing["file_list"]:
            link = httpx.post(f"{api}/redislog/{item['id']}/links", headers=headers).json()["link"]
            assert httpx.get(link).content == days[datetime.strptime(item["time"], "%Y-%m-%d").date()]
    finally:
        stop_processes(proc)

