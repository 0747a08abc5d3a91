"""End to end through the official huaweicloudsdkdcs SDK: import → groups → collect → list → link → download."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import httpx
import pytest
from huaweicloudsdkdcs.v2 import (
    CreateRedislogDownloadLinkRequest,
    CreateRedislogRequest,
    ListBackgroundTaskRequest,
    ListGroupReplicationInfoRequest,
    ListInstancesRequest,
    ListRedislogRequest,
    ListSlowlogRequest,
    ShowInstanceRequest,
)

from dcslog.testing.waiting import wait_for
from tests.backend_fixtures import BACKENDS
from tests.dcslog_fixtures import started_server
from tests.runlog_reference import parse, reference_day

# Every test here runs on the embedded default and on PostgreSQL + S3.
pytestmark = pytest.mark.parametrize("backend_env", BACKENDS, indirect=True)


@pytest.fixture
def dcslog_server(backend_env, dcslog_env, monkeypatch):
    with started_server(monkeypatch) as server:
        yield server


def expected_day(log_file: str, day: date) -> bytes:
    """Reference slicer: a plain line filter keeping continuation lines with their entry."""
    return reference_day([log_file], day)


def logged_at(line: bytes) -> datetime:
    """When a prefixed line was logged: "PID:R DD Mon YYYY HH:MM:SS.mmm …", to the second."""
    return datetime.strptime(b" ".join(line.split(b" ")[1:5]).decode()[:20], "%d %b %Y %H:%M:%S")


def collect_and_download(server, client, instance_id: str, replication_id: str | None, log_file: str) -> None:
    today = datetime.now(UTC).date()
    requested_at = datetime.now().replace(microsecond=0)  # Redis logs local time, to the millisecond
    request = CreateRedislogRequest(instance_id=instance_id, log_type="run", query_time=0,
                                    replication_id=replication_id)
    client.create_redislog(request)

    def finished():
        listing = client.list_redislog(ListRedislogRequest(instance_id=instance_id, log_type="run", limit=100))
        files = [f for f in listing.file_list or [] if f.status != "creating"]
        return files if len(files) == (listing.total_num or 0) and files else None

    files = wait_for(finished, what="collection to finish")
    mine = [f for f in files if f.time == today.isoformat()]
    assert mine, files
    item = mine[0]
    assert item.status == "succeed", item
    assert item.file_name == f"redis_{item.replication_ip}_{today.isoformat()}.log"

    link = client.create_redislog_download_link(
        CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=item.id))
    assert link.id == item.id and link.backup_id == item.backup_id
    # Plain HTTP, no credentials: the link is its own authority.
    response = httpx.get(link.link)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{item.file_name}"'
    body = response.content
    reference = expected_day(log_file, today)
    # The node keeps logging after collection: the file is the day up to that moment, whole
    # entries only, and what the node's log has beyond it was logged after the request.
    assert body.endswith(b"\n") and reference.startswith(body), (len(body), len(reference))
    later = [line for line in reference[len(body):].splitlines() if parse(line)]
    assert all(logged_at(line) >= requested_at for line in later), later[:3]
    assert b"Ready to accept connections" in body


def test_standalone_end_to_end(dcslog_server, redis_standalone):
    imported = dcslog_server.import_instance(redis_standalone.url)
    assert imported["cache_mode"] == "single"
    client = dcslog_server.sdk()
    instance_id = imported["instance_id"]

    listed = client.list_instances(ListInstancesRequest())
    assert listed.instance_num == 1 and listed.instances[0].instance_id == instance_id
    shown = client.show_instance(ShowInstanceRequest(instance_id=instance_id))
    assert shown.status == "RUNNING" and shown.engine == "Redis" and shown.port == redis_standalone.port

    groups = client.list_group_replication_info(ListGroupReplicationInfoRequest(instance_id=instance_id))
    assert groups.group_count == 1
    replica = groups.group_list[0].replication_list[0]
    assert replica.replication_role == "master" and replica.replication_ip == redis_standalone.host

    # Single node: replication_id may be left out.
    collect_and_download(dcslog_server, client, instance_id, None, redis_standalone.log_file)

    tasks = client.list_background_task(ListBackgroundTaskRequest(instance_id=instance_id))
    assert tasks.tasks[0].name == "CollectRunLog" and tasks.tasks[0].status == "succeed"


def _replicas(client, instance_id):
    groups = client.list_group_replication_info(ListGroupReplicationInfoRequest(instance_id=instance_id))
    return groups, [r for g in groups.group_list for r in g.replication_list]


def test_primary_with_two_replicas_end_to_end(dcslog_server, redis_replicated):
    # Importing through a replica finds the primary.
    imported = dcslog_server.import_instance(redis_replicated.replicas[0].url)
    assert imported["cache_mode"] == "ha"
    assert (imported["ip"], imported["port"]) == (redis_replicated.primary.host, redis_replicated.primary.port)
    client = dcslog_server.sdk()
    instance_id = imported["instance_id"]
    groups, replicas = _replicas(client, instance_id)
    assert groups.group_count == 1 and len(replicas) == 3
    assert [r.replication_role for r in replicas] == ["master", "slave", "slave"]

    replica = replicas[2]
    node = next(n for n in redis_replicated.nodes if n.host == replica.replication_ip)
    collect_and_download(dcslog_server, client, instance_id, replica.replication_id, node.log_file)


def test_cluster_end_to_end(dcslog_server, redis_cluster_session):
    cluster = redis_cluster_session
    imported = dcslog_server.import_instance(cluster.url)
    assert imported["cache_mode"] == "cluster" and imported["sharding_count"] == 3
    client = dcslog_server.sdk()
    instance_id = imported["instance_id"]
    groups, _ = _replicas(client, instance_id)
    assert [g.group_name for g in groups.group_list] == ["group-0", "group-1", "group-2"]
    for index, group in enumerate(groups.group_list):
        master, replica = group.replication_list
        assert master.replication_role == "master" and replica.replication_role == "slave"
        assert master.replication_ip == cluster.masters[index].host
        assert replica.replication_ip == cluster.replicas[index].host

    replica = groups.group_list[1].replication_list[1]
    node = next(n for n in cluster.nodes if n.host == replica.replication_ip)
    collect_and_download(dcslog_server, client, instance_id, replica.replication_id, node.log_file)


def test_ids_are_stable_across_refresh(dcslog_server, redis_replicated):
    imported = dcslog_server.import_instance(redis_replicated.primary.url)
    refreshed = dcslog_server.cli("instances", "refresh", imported["instance_id"])
    assert refreshed["group_list"] == imported["group_list"]


def test_a_replica_that_died_stays_listed_inactive_and_collectable(dcslog_server, redis_replicated):
    imported = dcslog_server.import_instance(redis_replicated.primary.url)
    dead = redis_replicated.replicas[1]
    dead.stop()
    refreshed = dcslog_server.cli("instances", "refresh", imported["instance_id"])
    replicas = refreshed["group_list"][0]["replication_list"]
    [entry] = [r for r in replicas if r["replication_ip"] == dead.host]
    assert entry["status"] == "Inactive"
    client = dcslog_server.sdk()
    collect_and_download(dcslog_server, client, imported["instance_id"], entry["replication_id"], dead.log_file)
    pruned = dcslog_server.cli("instances", "refresh", imported["instance_id"], "--prune")
    assert dead.host not in [r["replication_ip"] for r in pruned["group_list"][0]["replication_list"]]
    assert len(pruned["group_list"][0]["replication_list"]) == 2


def test_an_upgrade_from_an_older_schema_keeps_every_record(backend_env, dcslog_env, monkeypatch, redis_standalone):
    """The deployment guide's upgrade path: data written under an older schema (here 0003, before
    the slow log's hourly counts and duration index) is all there, and right, after `dcslog db
    upgrade`: instances, credentials, files (and their bytes), slow-log entries and their count."""
    import redis
    import sqlalchemy
    from alembic import command

    from dcslog import cli
    from dcslog.db.session import alembic_config, sync_url

    node = redis.Redis(host=redis_standalone.host, port=redis_standalone.port)
    node.config_set("slowlog-log-slower-than", 0)

    def snapshot(server, credential, instance_id):
        client = server.sdk(credential=credential)
        files = client.list_redislog(ListRedislogRequest(instance_id=instance_id, log_type="run")).file_list
        link = client.create_redislog_download_link(
            CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=files[0].id)).link
        slow = client.list_slowlog(ListSlowlogRequest(instance_id=instance_id, start_time="0",
                                                      end_time=str(int(time.time() * 1000)), limit=1000))
        return ([f.to_dict() for f in files], httpx.get(link).content, slow.total_num,
                [item.to_dict() for item in slow.slowlogs])

    with started_server(monkeypatch) as server:
        instance_id = server.import_instance(redis_standalone.url)["instance_id"]
        credential = server.credentials()
        for n in range(5):
            node.set(f"key-{n}", n)
        collect_and_download(server, server.sdk(credential=credential), instance_id, None, redis_standalone.log_file)
        node.config_set("slowlog-log-slower-than", 10_000_000)  # nothing new from here on
        assert server.harvest() > 5
        before = snapshot(server, credential, instance_id)
        url = server.settings.effective_database_url
    command.downgrade(alembic_config(url), "0003")

    assert cli.main(["db", "upgrade"]) == 0
    with started_server(monkeypatch) as server:
        after = snapshot(server, credential, instance_id)
    assert after == before
    assert before[2] == len(before[3]) > 5
    # The hourly counts behind total_num on wide windows were rebuilt from the entries.
    engine = sqlalchemy.create_engine(sync_url(url))
    with engine.connect() as db:
        counted = db.execute(sqlalchemy.text("SELECT sum(entries) FROM slowlog_hour_counts")).scalar()
    engine.dispose()
    assert counted == before[2]
