"""Automatic capture (SPEC §7): after a restart, a crash, a role change or a failover, dcslog
collects the affected nodes' run log for the event's day by itself — AutoCollectRunLog by user
dcslog, seen through the official SDK — once per storm, never beside a manual collection of the
same day, and not at all when switched off. Expected files come from the nodes' own log files
(``tests/runlog_reference.reference_day``)."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from datetime import UTC, datetime

import redis
from huaweicloudsdkdcs.v2 import CreateRedislogRequest, ListBackgroundTaskRequest

from dcslog.testing.redis_servers import wait_until
from tests.runlog_reference import reference_day
from tests.test_events import Api
from tests.test_redislog import download, wait_settled
from tests.test_runlog_events import HOLD_S, crash, replication_ids

AUTO = "AutoCollectRunLog"


def tasks(sdk, instance_id: str) -> list:
    return sdk.list_background_task(ListBackgroundTaskRequest(instance_id=instance_id, limit=100)).tasks or []


def auto_tasks(sdk, instance_id: str) -> list:
    return [t for t in tasks(sdk, instance_id) if t.name == AUTO]


def test_a_restart_is_captured_once_by_dcslog(dcslog_server, redis_replicated):
    primary, (replica, _) = redis_replicated.primary, redis_replicated.replicas
    instance_id = dcslog_server.import_instance(primary.url)["instance_id"]
    api, sdk = Api(dcslog_server, instance_id), dcslog_server.sdk(role="viewer")
    dcslog_server.harvest()  # the first look
    assert tasks(sdk, instance_id) == []

    replica.stop()
    replica.start()
    dcslog_server.harvest()
    [restart] = [e for e in api.events() if e["type"] == "restart"]
    [task] = auto_tasks(sdk, instance_id)
    assert (task.user_name, task.user_id) == ("dcslog", "dcslog")
    assert task.details.replica_ip == replica.host
    day = datetime.fromtimestamp(restart["time_ms"] / 1000, UTC).date()  # the instance's zone is UTC
    [file] = wait_settled(sdk, instance_id)
    assert (file.replication_ip, file.time, file.status) == (replica.host, day.isoformat(), "succeed")
    body = download(sdk, instance_id, file.id).content
    # The day as the node's log holds it now, up to the moment of the capture: the restart is in it.
    reference = reference_day([replica.log_file], day)
    assert body and reference.startswith(body)
    assert body.count(b"Redis is starting") >= 2  # the first start and the restart

    for _ in range(2):  # a storm: restarts minutes apart are one capture
        replica.stop()
        replica.start()
        dcslog_server.harvest()
    assert len([e for e in api.events() if e["type"] == "restart"]) == 3
    assert len(auto_tasks(sdk, instance_id)) == 1


def test_a_failover_captures_the_promoted_node_and_the_master_it_followed(dcslog_server, redis_replicated):
    primary, (replica, other) = redis_replicated.primary, redis_replicated.replicas
    instance_id = dcslog_server.import_instance(primary.url)["instance_id"]
    api, sdk = Api(dcslog_server, instance_id), dcslog_server.sdk(role="viewer")
    dcslog_server.harvest()
    with contextlib.closing(replica.client()) as client:
        client.execute_command("REPLICAOF", "NO", "ONE")
    dcslog_server.harvest()
    assert sorted(e["type"] for e in api.events()) == ["failover", "role_change"]  # both on the promoted node
    captured = sorted(t.details.replica_ip for t in auto_tasks(sdk, instance_id))
    assert captured == sorted([replica.host, primary.host])  # one task per node, the two events one
    files = wait_settled(sdk, instance_id)
    assert sorted(f.replication_ip for f in files) == captured and {f.status for f in files} == {"succeed"}
    assert other.host not in captured


def test_a_crash_is_captured_with_its_report(dcslog_server, redis_node_factory):
    node = redis_node_factory("127.0.0.2")
    instance_id = dcslog_server.import_instance(node.url)["instance_id"]
    api, sdk = Api(dcslog_server, instance_id), dcslog_server.sdk(role="viewer")
    dcslog_server.harvest()
    crash(node, "SEGFAULT")
    time.sleep(HOLD_S)
    dcslog_server.harvest()  # the node is down: its log still tells the crash
    assert [e["type"] for e in api.events()] == ["crash"]
    [task] = auto_tasks(sdk, instance_id)
    [file] = wait_settled(sdk, instance_id)
    body = download(sdk, instance_id, file.id).content
    assert b"REDIS BUG REPORT START" in body and b"crashed by signal: 11" in body
    assert body == reference_day([node.log_file], datetime.fromisoformat(file.time).date())  # it logs no more
    params = json.loads(task.params)  # what dcslog asked for, and why
    assert params["replication_id"] == replication_ids(api)[node.address] and params["event_type"] == "crash"
    assert params["event_id"] == api.events()[0]["id"] and params["day"] == file.time


def test_a_manual_collection_of_the_day_is_never_joined_by_an_automatic_one(dcslog_server_factory,
                                                                            redis_replicated):
    primary, (replica, _) = redis_replicated.primary, redis_replicated.replicas
    with dcslog_server_factory(run_worker=False) as server:  # queued collections stay running
        instance_id = server.import_instance(primary.url)["instance_id"]
        api, sdk = Api(server, instance_id), server.sdk()
        server.harvest()
        rid = replication_ids(api)[replica.address]
        sdk.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run", query_time=0,
                                                  replication_id=rid))
        replica.stop()
        replica.start()
        server.harvest()
        assert [e["type"] for e in api.events()] == ["restart"]
        assert [t.name for t in tasks(sdk, instance_id)] == ["CollectRunLog"]  # the manual one only


def test_switched_off_nothing_is_captured(dcslog_server_factory, redis_replicated):
    primary, (replica, _) = redis_replicated.primary, redis_replicated.replicas
    with dcslog_server_factory(auto_collect="false") as server:
        instance_id = server.import_instance(primary.url)["instance_id"]
        api, sdk = Api(server, instance_id), server.sdk(role="viewer")
        server.harvest()
        replica.stop()
        replica.start()
        server.harvest()
        assert [e["type"] for e in api.events()] == ["restart"]
        assert tasks(sdk, instance_id) == []


def test_a_node_without_a_log_file_is_not_captured(dcslog_server, redis_node_factory):
    node = redis_node_factory("127.0.0.2", logfile="")  # logs to stdout: no file to collect
    instance_id = dcslog_server.import_instance(node.url)["instance_id"]
    api, sdk = Api(dcslog_server, instance_id), dcslog_server.sdk(role="viewer")
    dcslog_server.harvest()
    with contextlib.closing(node.client()) as client, contextlib.suppress(redis.ConnectionError):
        client.execute_command("SHUTDOWN", "NOSAVE")
    node.proc.wait(10)
    node.start()
    wait_until(lambda: node.info("server")["uptime_in_seconds"] >= 0, 5, "the node")
    dcslog_server.harvest()
    assert [e["type"] for e in api.events()] == ["restart"]
    assert tasks(sdk, instance_id) == []


def test_debug_restart_is_a_restart_and_captured(dcslog_server, redis_node_factory):
    """DEBUG RESTART re-executes redis-server in place (same pid, new run id)."""
    node = redis_node_factory("127.0.0.2")
    instance_id = dcslog_server.import_instance(node.url)["instance_id"]
    api, sdk = Api(dcslog_server, instance_id), dcslog_server.sdk(role="viewer")
    dcslog_server.harvest()
    old = node.info("server")
    # Sent once, raw: a client that retries on the dropped connection would restart it again.
    with socket.create_connection((node.host, node.port)) as raw:
        raw.sendall(b"DEBUG RESTART\r\n")
        raw.recv(100)  # the server closes the connection as it restarts
    wait_until(lambda: node.info("server")["run_id"] != old["run_id"], 15, "the node to restart")
    assert node.info("server")["process_id"] == old["process_id"]
    dcslog_server.harvest()
    [restart] = api.events()
    assert restart["type"] == "restart" and restart["details"]["previous_run_id"] == old["run_id"]
    [task] = auto_tasks(sdk, instance_id)
    assert json.loads(task.params)["event_id"] == restart["id"]
    [file] = wait_settled(sdk, instance_id)
    body = download(sdk, instance_id, file.id).content
    assert file.status == "succeed" and body.count(b"Redis is starting") == 2
    assert reference_day([node.log_file], datetime.fromisoformat(file.time).date()).startswith(body)
