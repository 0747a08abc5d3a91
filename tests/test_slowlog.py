"""The slow log: harvested once from every node, kept past Redis's ring, served as DCS ListSlowlog."""

from __future__ import annotations

import contextlib
import itertools
import random
import sqlite3
import time
from datetime import datetime

import httpx
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkdcs.v2 import ListSlowlogRequest

from dcslog.redis.slowlog import fingerprint
from dcslog.services import slowlog as slowlog_service
from dcslog.services.slowlog import duration_ms
from tests.dcslog_fixtures import wait_for

SLOW = ["--slowlog-log-slower-than", "10000"]  # 10 ms: only DEBUG SLEEP 0.02 gets in


def now_ms() -> int:
    return int(time.time() * 1000)


def sleep_commands(node, count: int, seconds: str = "0.02") -> None:
    with contextlib.closing(node.client()) as client:
        for _ in range(count):
            client.execute_command("DEBUG", "SLEEP", seconds)


class Api:
    def __init__(self, server, instance_id: str):
        self.token = server.cli("token", "create", "--project-id", "proj-a")["token"]
        self.base = f"{server.url}/v2/proj-a/instances/{instance_id}"

    def slowlog(self, **params) -> httpx.Response:
        params.setdefault("start_time", 0)
        params.setdefault("end_time", now_ms() + 60_000)
        return httpx.get(f"{self.base}/slowlog", params=params, headers={"X-Auth-Token": self.token})

    def all(self, **params) -> list[dict]:
        body = self.slowlog(limit=1000, **params).json()
        assert body["total_num"] == len(body["slowlogs"]) == body["count"]
        return body["slowlogs"]

    def nodes(self) -> list[dict]:
        return httpx.get(f"{self.base}/slowlog/harvest", headers={"X-Auth-Token": self.token}).json()["nodes"]


def test_sdk_list_slowlog_end_to_end(dcslog_server_factory, redis_node_factory):
    node = redis_node_factory("127.0.0.2", args=SLOW)
    # The background harvester, every half second.
    with dcslog_server_factory(slowlog_interval="0.5") as server:
        imported = server.import_instance(node.url)
        before = now_ms() - 1000
        sleep_commands(node, 3)
        client = server.sdk(role="viewer")
        request = ListSlowlogRequest(instance_id=imported["instance_id"], start_time=str(before),
                                     end_time=str(now_ms() + 60_000))
        response = wait_for(lambda: (r := client.list_slowlog(request)).total_num == 3 and r, what="harvest")
        assert response.count == 3 and len(response.slowlogs) == 3
        for item in response.slowlogs:
            assert item.command == "DEBUG SLEEP 0.02"
            assert 20 <= float(item.duration) < 1000
            datetime.strptime(item.start_time, "%Y-%m-%dT%H:%M:%SZ")
            assert item.shard_name is None and item.node_role == "master"
        assert len({item.id for item in response.slowlogs}) == 3
        # Sorted by start time, newest first, by default.
        ids = [item.id for item in response.slowlogs]
        assert ids == sorted(ids, reverse=True)
        # Outside the range: nothing.
        old = client.list_slowlog(ListSlowlogRequest(instance_id=imported["instance_id"], start_time="0",
                                                     end_time=str(before - 10_000)))
        assert old.total_num == 0 and old.slowlogs == []


def test_ring_overflow_between_harvests_is_counted_not_duplicated(dcslog_server, redis_node_factory):
    node = redis_node_factory("127.0.0.2", args=[*SLOW, "--slowlog-max-len", "5"])
    api = Api(dcslog_server, dcslog_server.import_instance(node.url)["instance_id"])
    sleep_commands(node, 2, "0.011")
    dcslog_server.harvest()
    assert len(api.all()) == 2
    sleep_commands(node, 12, "0.011")  # the ring keeps 5 of these 12
    dcslog_server.harvest()
    dcslog_server.harvest()  # nothing new: nothing stored twice
    entries = api.all()
    assert len(entries) == 7
    [status] = api.nodes()
    assert status["lost_entries"] == 7 and status["harvested_entries"] == 7
    assert api.slowlog().json()["lost_entries"] == 7


def test_slowlog_reset_and_restart_lose_nothing_seen_and_duplicate_nothing(dcslog_server, redis_node_factory):
    node = redis_node_factory("127.0.0.2", args=SLOW)
    api = Api(dcslog_server, dcslog_server.import_instance(node.url)["instance_id"])
    sleep_commands(node, 3)
    dcslog_server.harvest()
    with contextlib.closing(node.client()) as client:
        client.execute_command("SLOWLOG", "RESET")  # Redis keeps numbering after a reset
    sleep_commands(node, 2)
    dcslog_server.harvest()
    assert len(api.all()) == 5
    node.stop()
    node.start()  # a new process: a new run_id, ids from 0 again
    sleep_commands(node, 2)
    dcslog_server.harvest()
    dcslog_server.harvest()
    entries = api.all()
    assert len(entries) == 7 and len({e["id"] for e in entries}) == 7
    assert api.nodes()[0]["lost_entries"] == 0


def test_a_node_that_is_down_is_skipped_and_retried(dcslog_server, redis_replicated):
    for node in redis_replicated.nodes:
        with contextlib.closing(node.client()) as client:
            client.config_set("slowlog-log-slower-than", 10000)
    api = Api(dcslog_server, dcslog_server.import_instance(redis_replicated.primary.url)["instance_id"])
    down = redis_replicated.replicas[0]
    down.pause()  # listed, not answering
    try:
        sleep_commands(redis_replicated.primary, 1)
        sleep_commands(redis_replicated.replicas[1], 1)
        started = time.monotonic()
        dcslog_server.harvest()
        assert time.monotonic() - started < 60  # bounded by the timeout, not hung
        assert {(e["node_ip"], e["node_role"]) for e in api.all()} == {("127.0.0.2", "master"), ("127.0.0.4", "slave")}
        status = {n["replication_ip"]: n for n in api.nodes()}
        assert status[down.host]["last_error"] and status["127.0.0.2"]["last_error"] is None
    finally:
        down.resume()
    sleep_commands(down, 1)
    dcslog_server.harvest()
    assert {n["replication_ip"]: n for n in api.nodes()}[down.host]["last_error"] is None
    assert len(api.all(replication_id=status[down.host]["replication_id"])) == 1


def test_failover_role_follows_the_node(dcslog_server, redis_replicated):
    replica = redis_replicated.replicas[0]
    with contextlib.closing(replica.client()) as client:
        client.config_set("slowlog-log-slower-than", 10000)
    api = Api(dcslog_server, dcslog_server.import_instance(redis_replicated.primary.url)["instance_id"])
    sleep_commands(replica, 1)
    dcslog_server.harvest()
    with contextlib.closing(replica.client()) as client:
        client.execute_command("REPLICAOF", "NO", "ONE")
    sleep_commands(replica, 1)
    dcslog_server.harvest()
    roles = [e["node_role"] for e in api.all(sort_dir="asc")]
    assert roles == ["slave", "master"]
    assert [e["node_role"] for e in api.all(role="master")] == ["master"]


def test_cluster_entries_carry_their_shard(dcslog_server, redis_cluster_session):
    cluster = redis_cluster_session
    api = Api(dcslog_server, dcslog_server.import_instance(cluster.url)["instance_id"])
    try:
        for master in cluster.masters:
            with contextlib.closing(master.client()) as client:
                client.config_set("slowlog-log-slower-than", 10000)
                client.execute_command("SLOWLOG", "RESET")
        for index, master in enumerate(cluster.masters):
            sleep_commands(master, index + 1)
        dcslog_server.harvest()
        shards = sorted((e["shard_name"], e["node_ip"]) for e in api.all())
        expected = sorted((f"group-{i}", m.host) for i, m in enumerate(cluster.masters) for _ in range(i + 1))
        assert shards == expected
    finally:
        for master in cluster.masters:
            with contextlib.closing(master.client()) as client:
                client.config_set("slowlog-log-slower-than", 10000)


@pytest.mark.parametrize("wide_window", [5000, 0], ids=["time-index", "duration-index"])
def test_sorting_and_paging_match_a_brute_force_reference(dcslog_server, redis_node_factory, monkeypatch,
                                                          wide_window):
    # Both plans of the duration sort: the planner's own, and the forced walk of the duration index.
    monkeypatch.setattr(slowlog_service, "WIDE_WINDOW", wide_window)
    node = redis_node_factory("127.0.0.2", args=["--slowlog-log-slower-than", "0", "--slowlog-max-len", "1000"])
    api = Api(dcslog_server, dcslog_server.import_instance(node.url)["instance_id"])
    rng = random.Random(7)
    with contextlib.closing(node.client()) as client:
        for i in range(150):
            client.set(f"k{i}", "v" * rng.randint(1, 5000))
            if i % 40 == 0:
                client.execute_command("DEBUG", "SLEEP", "0.002")
    dcslog_server.harvest()
    rows = api.all(sort_dir="asc")
    assert len(rows) >= 150
    for sort_key, sort_dir in itertools.product(("start_time", "duration"), ("asc", "desc")):
        column = (lambda r: (datetime.strptime(r["start_time"], "%Y-%m-%dT%H:%M:%SZ"), r["id"])) \
            if sort_key == "start_time" else (lambda r: (float(r["duration"]), r["id"]))
        reference = sorted(rows, key=column, reverse=sort_dir == "desc")
        for offset, limit in ((0, 10), (7, 13), (len(rows) - 5, 10), (len(rows) + 3, 5)):
            body = api.slowlog(sort_key=sort_key, sort_dir=sort_dir, offset=offset, limit=limit).json()
            assert body["total_num"] == len(rows)
            assert [r["id"] for r in body["slowlogs"]] == [r["id"] for r in reference[offset:offset + limit]]
    # Extension filters against the same reference.
    slow = [r for r in rows if float(r["duration"]) >= 2]
    assert {r["id"] for r in api.all(min_duration="2")} == {r["id"] for r in slow}
    assert {r["id"] for r in api.all(command="set")} == {r["id"] for r in rows if r["command"].upper().startswith("SET ")}
    assert {r["fingerprint"] for r in api.all(command="SET")} == {"SET ? ?"}


def test_validation_errors(dcslog_server, redis_standalone):
    api = Api(dcslog_server, dcslog_server.import_instance(redis_standalone.url)["instance_id"])
    cases = [({"start_time": ""}, "DCS.4800"), ({"end_time": "abc"}, "DCS.4800"),
             ({"start_time": 2000, "end_time": 1000}, "DCS.4025"), ({"sort_key": "size"}, "DCS.4800"),
             ({"sort_dir": "up"}, "DCS.4800"), ({"limit": 0}, "DCS.4800"), ({"limit": 1001}, "DCS.4800"),
             ({"offset": -1}, "DCS.4800"), ({"role": "king"}, "DCS.4800"), ({"replication_id": "nope"}, "DCS.4800"),
             ({"min_duration": "-1"}, "DCS.4800"), ({"command": "a b"}, "DCS.4800")]
    for params, code in cases:
        response = api.slowlog(**params)
        assert response.status_code == 400 and response.json()["error_code"] == code, params
    assert api.slowlog(role="proxy").json() == {"total_num": 0, "count": 0, "slowlogs": [], "lost_entries": 0}


def test_sdk_errors(dcslog_server, redis_standalone):
    client = dcslog_server.sdk()
    instance_id = dcslog_server.import_instance(redis_standalone.url)["instance_id"]
    with pytest.raises(ClientRequestException) as caught:
        client.list_slowlog(ListSlowlogRequest(instance_id=instance_id, start_time="5", end_time="1"))
    assert (caught.value.status_code, caught.value.error_code) == (400, "DCS.4025")
    other = dcslog_server.sdk("proj-b")
    with pytest.raises(ClientRequestException) as caught:
        other.list_slowlog(ListSlowlogRequest(instance_id=instance_id, start_time="0", end_time="1"))
    assert (caught.value.status_code, caught.value.error_code) == (404, "DCS.3022")


def test_retention_drops_old_entries_and_keeps_counts_exact(dcslog_server_factory, redis_node_factory):
    node = redis_node_factory("127.0.0.2", args=SLOW)
    with dcslog_server_factory(sweep_interval="1") as server:
        api = Api(server, server.import_instance(node.url)["instance_id"])
        sleep_commands(node, 2)
        server.harvest()
        [entry, _] = api.all()
        # Age one entry 8 days (and its hourly count with it), as if harvested back then.
        eight_days_ms = 8 * 86400 * 1000
        with sqlite3.connect(server.settings.data_dir / "dcslog.db") as db:
            [(start_ms,)] = db.execute("SELECT start_time_ms FROM slowlog_entries WHERE id = ?", (entry["id"],))
            hour, old_hour = start_ms - start_ms % 3_600_000, start_ms - eight_days_ms - start_ms % 3_600_000
            db.execute("UPDATE slowlog_entries SET start_time_ms = start_time_ms - ? WHERE id = ?",
                       (eight_days_ms, entry["id"]))
            db.execute("UPDATE slowlog_hour_counts SET entries = entries - 1 WHERE hour_ms = ?", (hour,))
            db.execute("INSERT INTO slowlog_hour_counts VALUES (?, ?, 1)", (api.base.rsplit("/", 1)[1], old_hour))
        assert api.slowlog(start_time=0).json()["total_num"] == 2
        wait_for(lambda: api.slowlog(start_time=0).json()["total_num"] == 1, timeout=15,
                 what="the sweep to drop the old entry")
        assert [e["id"] for e in api.all()] != [entry["id"]]
        with sqlite3.connect(server.settings.data_dir / "dcslog.db") as db:
            assert db.execute("SELECT count(*) FROM slowlog_entries").fetchone() == (1,)
            assert db.execute("SELECT sum(entries) FROM slowlog_hour_counts").fetchone() == (1,)


def test_totals_from_hourly_counts_match_a_plain_count(dcslog_server, redis_node_factory):
    node = redis_node_factory("127.0.0.2", args=["--slowlog-log-slower-than", "0", "--slowlog-max-len", "1000"])
    api = Api(dcslog_server, dcslog_server.import_instance(node.url)["instance_id"])
    with contextlib.closing(node.client()) as client:
        for i in range(50):
            client.set(f"k{i}", "v")
    dcslog_server.harvest()
    # Spread the entries over three days, keeping the hourly counts as the harvester would.
    with sqlite3.connect(dcslog_server.settings.data_dir / "dcslog.db") as db:
        db.execute("UPDATE slowlog_entries SET start_time_ms = start_time_ms - (id % 7) * 37 * 60 * 1000 * 29")
        db.execute("DELETE FROM slowlog_hour_counts")
        db.execute("INSERT INTO slowlog_hour_counts SELECT instance_id, start_time_ms - start_time_ms % 3600000, "
                   "count(*) FROM slowlog_entries GROUP BY 1, 2")
        times = sorted(t for (t,) in db.execute("SELECT start_time_ms FROM slowlog_entries"))
    rng = random.Random(3)
    for _ in range(25):
        low, high = sorted(rng.sample(range(times[0] - 3_600_000, times[-1] + 3_600_000), 2))
        expected = sum(low <= t <= high for t in times)
        assert api.slowlog(start_time=low, end_time=high).json()["total_num"] == expected, (low, high)


@pytest.mark.parametrize("args,expected", [
    (["SET", "user:1", "secret"], "SET ? ?"),
    (["get", "k"], "GET ?"),
    (["CONFIG", "get", "maxmemory"], "CONFIG GET ?"),
    (["MGET", "a", "b", "c", "d", "e"], "MGET ? ? ? …"),
    (["DEL", "a", "b", "... (30 more arguments)"], "DEL ? ? …"),
    (["PING"], "PING"),
    ([], ""),
])
def test_fingerprint(args, expected):
    assert fingerprint(args) == expected


@pytest.mark.parametrize("micros,text", [(153, "0.153"), (12000, "12"), (1500, "1.5"), (20104, "20.104"), (0, "0")])
def test_duration_in_milliseconds(micros, text):
    assert duration_ms(micros) == text


def test_metrics_show_losses_and_lag(dcslog_server, redis_node_factory):
    node = redis_node_factory("127.0.0.2", args=[*SLOW, "--slowlog-max-len", "2"])
    instance_id = dcslog_server.import_instance(node.url)["instance_id"]
    dcslog_server.harvest()
    sleep_commands(node, 5, "0.011")
    dcslog_server.harvest()
    text = httpx.get(dcslog_server.url + "/metrics").text
    line = next(l for l in text.splitlines() if l.startswith("dcslog_slowlog_lost_entries_total{"))
    assert f'instance_id="{instance_id}"' in line and line.endswith(" 3.0")
    assert "dcslog_slowlog_harvest_age_seconds{" in text and "dcslog_slowlog_node_up{" in text
    assert 'dcslog_collection_jobs{state="queued"} 0.0' in text


def test_request_and_collection_metrics(dcslog_server, redis_standalone):
    from huaweicloudsdkdcs.v2 import CreateRedislogRequest, ListRedislogRequest
    instance_id = dcslog_server.import_instance(redis_standalone.url)["instance_id"]
    client = dcslog_server.sdk()
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
    wait_for(lambda: client.list_redislog(ListRedislogRequest(instance_id=instance_id, log_type="run"))
             .file_list[0].status == "succeed", what="collection")
    httpx.get(dcslog_server.url + "/v2/proj-a/instances")  # a 401
    text = httpx.get(dcslog_server.url + "/metrics").text
    assert 'dcslog_http_requests_total{method="POST",route="/v2/{project_id}/instances/{instance_id}/redislog",' \
           'status="204"}' in text
    assert 'dcslog_http_requests_total{method="GET",route="/v2/{project_id}/instances",status="401"}' in text
    assert 'dcslog_http_request_duration_seconds_bucket{' in text
    assert 'dcslog_collected_files_total{status="succeed"}' in text
    assert "dcslog_collection_duration_seconds_count" in text and "dcslog_collected_bytes_total" in text
