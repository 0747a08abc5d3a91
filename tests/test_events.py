"""Live node state and events (SPEC §7): what real redis-server nodes did — stopped, restarted,
promoted, re-pointed — as the harvest rounds see it. Every expectation comes from what the test
did to the nodes, never from what dcslog answered before."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from datetime import date

import httpx
import pytest
import redis
from huaweicloudsdkdcs.v2 import ListGroupReplicationInfoRequest, ShowInstanceRequest

from dcslog.db.session import create_engine, create_sessionmaker
from dcslog.keys import Keyring, load_server_key
from dcslog.services import slowlog_harvest
from dcslog.testing.waiting import wait_for
from tests.dcslog_fixtures import started_server
from tests.runlog_reference import reference_day
from tests.test_client_cli import configure_client, run
from tests.test_redislog import download, wait_settled

UUID_LENGTH = 36
STATE_TYPES = "restart,role_change,failover,node_down,node_up"  # the events a round's state change makes


def now_ms() -> int:
    return int(time.time() * 1000)


class Api:
    def __init__(self, server, instance_id: str, project_id: str = "proj-a"):
        self.token = server.cli("token", "create", "--project-id", project_id)["token"]
        self.instance_id = instance_id
        self.base = f"{server.url}/v2/{project_id}/instances/{instance_id}"
        self.groups_url = f"{server.url}/v2/{project_id}/instance/{instance_id}/groups"

    def events_response(self, **params) -> httpx.Response:
        return httpx.get(f"{self.base}/events", params=params, headers={"X-Auth-Token": self.token})

    def events(self, **params) -> list[dict]:
        response = self.events_response(limit=1000, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total_num"] == len(body["events"])
        return body["events"]

    def statuses(self) -> dict[str, str]:
        """address → status, as ListGroupReplicationInfo says."""
        body = httpx.get(self.groups_url, headers={"X-Auth-Token": self.token}).json()
        return {f"{r['replication_ip']}:{r['replication_port']}": r["status"]
                for g in body["group_list"] for r in g["replication_list"]}

    def roles(self) -> dict[str, str]:
        """address → role, as ListGroupReplicationInfo says."""
        body = httpx.get(self.groups_url, headers={"X-Auth-Token": self.token}).json()
        return {f"{r['replication_ip']}:{r['replication_port']}": r["replication_role"]
                for g in body["group_list"] for r in g["replication_list"]}

    def instance(self) -> dict:
        return httpx.get(self.base, headers={"X-Auth-Token": self.token}).json()


def shutdown(node) -> None:
    """SHUTDOWN as an operator would (the process exits; its port stops answering)."""
    with contextlib.closing(node.client()) as client, contextlib.suppress(redis.ConnectionError):
        client.execute_command("SHUTDOWN", "NOSAVE")
    node.proc.wait(10)


def run_id(node) -> str:
    return node.info("server")["run_id"]


def kinds(events: list[dict]) -> list[tuple[str, str]]:
    """(address, type) of each event, sorted."""
    return sorted((f"{e['replication_ip']}:{e['replication_port']}", e["type"]) for e in events)


def test_a_stopped_replica_is_down_and_inactive_then_up_and_restarted(dcslog_server, redis_replicated):
    primary, (replica, other) = redis_replicated.primary, redis_replicated.replicas
    instance_id = dcslog_server.import_instance(primary.url)["instance_id"]
    api = Api(dcslog_server, instance_id)
    sdk = dcslog_server.sdk(role="viewer")
    dcslog_server.harvest()  # the first look: what was before is history, no event
    assert api.events() == []
    assert set(api.statuses().values()) == {"Active"}

    old_run_id = run_id(replica)
    stopped_ms = now_ms()
    shutdown(replica)
    dcslog_server.harvest()  # one round that cannot read it may be a blip: nothing yet
    assert api.events() == [] and set(api.statuses().values()) == {"Active"}
    failed_ms = now_ms()
    dcslog_server.harvest()  # the second round in a row: down since the first
    [down] = api.events()
    assert (down["type"], down["replication_ip"], down["group_name"]) == ("node_down", replica.host, "group-0")
    assert down["replication_port"] == replica.port and len(down["id"]) == UUID_LENGTH
    assert stopped_ms <= down["time_ms"] <= failed_ms and down["details"]["message"]
    assert api.statuses() == {primary.address: "Active", replica.address: "Inactive", other.address: "Active"}
    # The SDK reads the same answer: DCS wire shapes unchanged.
    groups = sdk.list_group_replication_info(ListGroupReplicationInfoRequest(instance_id=instance_id))
    assert {r.replication_ip: r.status for r in groups.group_list[0].replication_list} == {
        primary.host: "Active", replica.host: "Inactive", other.host: "Active"}
    assert sdk.show_instance(ShowInstanceRequest(instance_id=instance_id)).status == "RUNNING"  # a replica is down
    dcslog_server.harvest()  # still down: nothing new
    assert len(api.events()) == 1

    time.sleep(1.1)  # the restart's time is read from the node's uptime, in whole seconds
    started_ms = now_ms()
    replica.start()
    new_run_id = run_id(replica)
    dcslog_server.harvest()
    events = api.events()
    assert kinds(events) == sorted([(replica.address, "node_down"), (replica.address, "node_up"),
                                    (replica.address, "restart")])
    restart = next(e for e in events if e["type"] == "restart")
    assert restart["details"]["run_id"] == new_run_id and restart["details"]["previous_run_id"] == old_run_id
    assert started_ms - 1000 <= restart["time_ms"] <= now_ms()  # when the new process started
    assert restart["time_ms"] > down["time_ms"]
    assert set(api.statuses().values()) == {"Active"}
    dcslog_server.harvest()
    assert [e["id"] for e in api.events()] == [e["id"] for e in events]  # once each, same ids
    assert len({e["id"] for e in events}) == 3
    # Newest first.
    assert [e["time_ms"] for e in events] == sorted((e["time_ms"] for e in events), reverse=True)


def test_a_primary_that_does_not_answer_is_down_never_a_failover(dcslog_server, redis_replicated):
    primary = redis_replicated.primary
    api = Api(dcslog_server, dcslog_server.import_instance(primary.url)["instance_id"])
    dcslog_server.harvest()
    primary.pause()  # a blip: one round cannot read it
    try:
        dcslog_server.harvest()
    finally:
        primary.resume()
    dcslog_server.harvest()
    assert api.events() == [] and api.instance()["status"] == "RUNNING"  # a blip shorter than a round: nothing
    assert set(api.statuses().values()) == {"Active"}
    primary.pause()  # listed by its replicas, answering nothing, for two rounds
    try:
        dcslog_server.harvest()
        assert api.events() == [] and api.instance()["status"] == "RUNNING"
        dcslog_server.harvest()
        assert kinds(api.events()) == [(primary.address, "node_down")]
        instance = api.instance()
        assert instance["status"] == "ERROR" and primary.address in instance["error_msg"]
        assert api.statuses()[primary.address] == "Inactive"
    finally:
        primary.resume()
    dcslog_server.harvest()
    assert kinds(api.events()) == [(primary.address, "node_down"), (primary.address, "node_up")]  # no restart
    instance = api.instance()
    assert instance["status"] == "RUNNING" and instance["error_msg"] is None
    assert set(api.statuses().values()) == {"Active"}


def test_promoting_a_replica_and_repointing_the_old_master(dcslog_server, redis_replicated):
    primary, (promoted, other) = redis_replicated.primary, redis_replicated.replicas
    api = Api(dcslog_server, dcslog_server.import_instance(primary.url)["instance_id"])
    dcslog_server.harvest()
    with contextlib.closing(promoted.client()) as client:
        client.execute_command("REPLICAOF", "NO", "ONE")
    for node in (primary, other):
        with contextlib.closing(node.client()) as client:
            client.execute_command("REPLICAOF", promoted.host, str(promoted.port))
    wait_for(lambda: promoted.info("replication")["connected_slaves"] == 2, what="both to follow the new master")
    dcslog_server.harvest()
    # Re-pointed, the old master syncs in full: its run log's `sync` events are another test's.
    events = api.events(type=STATE_TYPES)
    assert kinds(events) == sorted([(promoted.address, "role_change"), (promoted.address, "failover"),
                                    (primary.address, "role_change")])
    by = {(f"{e['replication_ip']}:{e['replication_port']}", e["type"]): e["details"] for e in events}
    assert (by[promoted.address, "role_change"]["from"], by[promoted.address, "role_change"]["to"]) == (
        "slave", "master")
    assert (by[primary.address, "role_change"]["from"], by[primary.address, "role_change"]["to"]) == (
        "master", "slave")
    assert by[promoted.address, "failover"]["previous_master"] == primary.address
    assert api.instance()["status"] == "RUNNING"
    # Roles follow the round too: ListGroupReplicationInfo shows the new master.
    assert api.roles() == {promoted.address: "master", primary.address: "slave", other.address: "slave"}
    dcslog_server.harvest()
    assert len(api.events(type=STATE_TYPES)) == 3
    # The type filter, against what the test did.
    assert kinds(api.events(type="failover")) == [(promoted.address, "failover")]
    assert len(api.events(type="role_change,failover")) == 3
    assert api.events(type="node_down") == []


@pytest.mark.parametrize("backend_env", ["embedded", "postgres-s3"], indirect=True)
def test_two_harvesters_racing_one_round_record_each_change_once(backend_env, dcslog_env, redis_replicated,
                                                                 monkeypatch):
    """Two harvesters read the restarted node in the same round, each deriving from the state it
    read (the conditional UPDATE on the state's version decides, whichever way they interleave):
    one event, one id. On SQLite and on PostgreSQL."""
    with started_server(monkeypatch) as dcslog_server:
        check_racing_harvesters(dcslog_server, redis_replicated)


def check_racing_harvesters(dcslog_server, redis_replicated) -> None:
    primary, (replica, _) = redis_replicated.primary, redis_replicated.replicas
    api = Api(dcslog_server, dcslog_server.import_instance(primary.url)["instance_id"])
    settings = dcslog_server.settings

    async def two_harvesters() -> None:
        engine = create_engine(settings.effective_database_url)
        try:
            keyring = Keyring(load_server_key(settings))
            # min_interval < 0: neither claim holds the other off (a claim made a moment after the
            # other harvester read the clock would), so both read every node in the same round.
            await asyncio.gather(*(slowlog_harvest.harvest_all(create_sessionmaker(engine), keyring,
                                                               settings.redis_timeout, min_interval=-60)
                                   for _ in range(2)))
        finally:
            await engine.dispose()

    asyncio.run(two_harvesters())
    assert api.events() == []
    replica.stop()
    replica.start()  # between two rounds: no round saw it down
    asyncio.run(two_harvesters())
    reads = sum(v["calls"] for k, v in replica.info("commandstats").items() if k.startswith("cmdstat_slowlog"))
    assert reads == 2  # both harvesters read the restarted node
    assert kinds(api.events()) == [(replica.address, "restart")]
    shutdown(replica)
    asyncio.run(two_harvesters())
    asyncio.run(two_harvesters())
    assert kinds(api.events()) == [(replica.address, "node_down"), (replica.address, "restart")]


def test_windows_paging_and_errors(dcslog_server, redis_replicated):
    primary, (replica, _) = redis_replicated.primary, redis_replicated.replicas
    instance_id = dcslog_server.import_instance(primary.url)["instance_id"]
    api = Api(dcslog_server, instance_id)
    dcslog_server.harvest()
    before_ms = now_ms()
    shutdown(replica)
    dcslog_server.harvest()
    dcslog_server.harvest()
    between_ms = now_ms()
    time.sleep(1.1)  # the restart's time comes from INFO's whole-second uptime: up to 1 s early
    replica.start()
    dcslog_server.harvest()
    everything = api.events()
    assert len(everything) == 3
    [down] = api.events(start_time=before_ms, end_time=between_ms)
    assert down["type"] == "node_down"
    assert {e["type"] for e in api.events(start_time=between_ms)} <= {"node_up", "restart"}
    assert api.events(end_time=before_ms - 60_000) == []
    page = api.events_response(offset=1, limit=1).json()
    assert page["total_num"] == 3 and [e["id"] for e in page["events"]] == [everything[1]["id"]]
    assert api.events_response(offset=5).json() == {"total_num": 3, "events": []}

    for params, name in [({"start_time": "x"}, "start_time"), ({"end_time": "-1"}, "end_time"),
                         ({"type": "reboot"}, "type"), ({"type": "restart,"}, "type"), ({"limit": 0}, "limit"),
                         ({"limit": 1001}, "limit"), ({"offset": -1}, "offset")]:
        response = api.events_response(**params)
        body = response.json()
        assert response.status_code == 400 and body["error_code"] == "DCS.4800", params
        assert body["error_msg"] == f"Invalid {name} in the request." and name in body["error_ext_msg"]
    response = api.events_response(start_time=2000, end_time=1999)
    assert response.status_code == 400 and response.json()["error_code"] == "DCS.4025"
    # Another project's instance is not found, as everywhere.
    dcslog_server.credentials("proj-b")
    other = Api(dcslog_server, instance_id, project_id="proj-b")
    response = other.events_response()
    assert response.status_code == 404 and response.json()["error_code"] == "DCS.3022"
    response = httpx.get(api.base.rsplit("/", 1)[0] + "/not-a-uuid/events", headers={"X-Auth-Token": api.token})
    assert response.status_code == 400 and response.json()["error_code"] == "DCS.4061"
    assert httpx.get(f"{api.base}/events").json()["error_code"] == "DCS.1003"


def test_events_go_with_the_slow_logs_retention(dcslog_server_factory, redis_replicated):
    primary, (replica, _) = redis_replicated.primary, redis_replicated.replicas
    with dcslog_server_factory(sweep_interval="1") as server:
        api = Api(server, server.import_instance(primary.url)["instance_id"])
        server.harvest()
        shutdown(replica)
        server.harvest()
        server.harvest()
        replica.start()
        server.harvest()
        assert len(api.events()) == 3
        [down] = api.events(type="node_down")
        with sqlite3.connect(server.settings.data_dir / "dcslog.db") as db:
            db.execute("UPDATE events SET time_ms = time_ms - 8 * 86400 * 1000 WHERE id = ?", (down["id"],))
        wait_for(lambda: len(api.events()) == 2, timeout=15, what="the sweep to drop the old event")
        assert {e["type"] for e in api.events()} == {"node_up", "restart"}


def test_the_events_command(dcslog_server, redis_replicated, monkeypatch, tmp_path, capsys):
    primary, (replica, _) = redis_replicated.primary, redis_replicated.replicas
    instance_id = dcslog_server.import_instance(primary.url)["instance_id"]
    configure_client(dcslog_server, monkeypatch, tmp_path)
    dcslog_server.harvest()
    shutdown(replica)
    dcslog_server.harvest()
    dcslog_server.harvest()
    replica.start()
    dcslog_server.harvest()

    code, out, err = run(capsys, "events", "--instance", instance_id)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "NODE", "GROUP", "TYPE", "DETAILS"]
    rows = [line.split()[:4] for line in lines[1:-1]]
    assert [row[1:] for row in rows][0] == [replica.address, "group-0", "node_down"]  # oldest first
    assert sorted(row[3] for row in rows) == ["node_down", "node_up", "restart"]
    assert lines[-1] == "3 of 3 events"

    code, out, err = run(capsys, "events", "--instance", instance_id, "--type", "restart", "--json")
    assert code == 0, err
    body = json.loads(out)
    assert body["total_num"] == 1 and body["events"][0]["type"] == "restart"
    assert body["events"][0]["replication_ip"] == replica.host

    code, out, _ = run(capsys, "events", "--instance", instance_id, "--since", "1h", "--end", "1h")
    assert code == 0 and out.splitlines()[-1] == "0 of 0 events"
    code, out, err = run(capsys, "events", "--instance", instance_id, "--type", "reboot")
    assert code != 0 and "type" in err


def test_a_node_down_at_its_first_round_records_no_event_until_it_comes_back(dcslog_server, redis_replicated):
    """The first look at a node is history: a node already down is Inactive, and its return is node_up."""
    primary, (replica, _) = redis_replicated.primary, redis_replicated.replicas
    api = Api(dcslog_server, dcslog_server.import_instance(primary.url)["instance_id"])
    shutdown(replica)
    dcslog_server.harvest()
    assert api.events() == [] and api.statuses()[replica.address] == "Inactive"
    replica.start()
    dcslog_server.harvest()
    assert kinds(api.events()) == [(replica.address, "node_up")]  # no run id seen before: no restart


def test_a_cluster_failover_is_one_failover_in_its_shard(dcslog_server, tmp_path_factory):
    from tests.redis_fixtures import cluster_context

    with cluster_context(tmp_path_factory) as cluster:
        api = Api(dcslog_server, dcslog_server.import_instance(cluster.url)["instance_id"])
        dcslog_server.harvest()
        old_master, promoted = cluster.masters[1], cluster.replicas[1]
        shard = next(g["group_name"] for g in httpx.get(api.groups_url, headers={"X-Auth-Token": api.token})
                     .json()["group_list"]
                     if old_master.host in {r["replication_ip"] for r in g["replication_list"]})
        with contextlib.closing(promoted.client()) as client:
            client.execute_command("CLUSTER", "FAILOVER")
        wait_for(lambda: promoted.info("replication")["role"] == "master"
                 and old_master.info("replication")["role"] == "slave", what="the failover")
        dcslog_server.harvest()
        events = api.events(type=STATE_TYPES)
        assert kinds(events) == sorted([(promoted.address, "role_change"), (promoted.address, "failover"),
                                        (old_master.address, "role_change")])
        assert {e["group_name"] for e in events} == {shard}
        failover = next(e for e in events if e["type"] == "failover")
        assert failover["details"]["previous_master"] == old_master.address
        assert api.instance()["status"] == "RUNNING"
        # Captured by dcslog itself: the two nodes of the shard, each day's file whole as their logs hold it.
        sdk = dcslog_server.sdk(role="viewer")
        files = wait_settled(sdk, api.instance_id)
        assert sorted((f.replication_ip, f.status) for f in files) == sorted(
            [(promoted.host, "succeed"), (old_master.host, "succeed")])
        for node in (promoted, old_master):
            [file] = [f for f in files if f.replication_ip == node.host]
            body = download(sdk, api.instance_id, file.id).content
            assert body and reference_day([node.log_file], date.fromisoformat(file.time)).startswith(body)


def test_a_node_that_answers_info_but_not_slowlog_is_up(dcslog_server, redis_standalone):
    """An ACL that forbids SLOWLOG fails the slow log's read, not the node: no node_down, Active."""
    node = redis_standalone
    with contextlib.closing(node.client()) as client:
        client.execute_command("ACL", "SETUSER", "watcher", "on", ">pw", "~*", "+@all", "-slowlog")
    api = Api(dcslog_server, dcslog_server.import_instance(f"redis://watcher:pw@{node.host}:{node.port}")[
        "instance_id"])
    dcslog_server.harvest()
    dcslog_server.harvest()
    [status] = httpx.get(f"{api.base}/slowlog/harvest", headers={"X-Auth-Token": api.token}).json()["nodes"]
    assert "slowlog" in status["last_error"].lower()  # the slow log could not be read…
    assert api.events() == [] and api.statuses() == {node.address: "Active"}  # …but the node is up
    assert api.instance()["status"] == "RUNNING"
