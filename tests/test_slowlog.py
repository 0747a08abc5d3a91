"""The slow log: harvested once from every node, kept past Redis's ring, served as DCS ListSlowlog."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import sqlite3
import threading
import time
from datetime import datetime

import httpx
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkdcs.v2 import ListSlowlogRequest
from sqlalchemy import select

from dcslog.db.queries import slowlog as slowlog_queries
from dcslog.redis.slowlog import fingerprint
from dcslog.services import slowlog_harvest
from dcslog.services.slowlog_query import duration_ms
from dcslog.testing.waiting import wait_for
from tests.dcslog_fixtures import started_server
from tests.test_observability import every_series

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


def test_a_hanging_node_delays_no_sibling(dcslog_server_factory, redis_replicated):
    for node in redis_replicated.nodes:
        with contextlib.closing(node.client()) as client:
            client.config_set("slowlog-log-slower-than", 10000)
    # The hanging node's read waits up to 2 x DCSLOG_REDIS_TIMEOUT: long, so that "still pending"
    # below holds on a slow machine too; resume() ends it early.
    with dcslog_server_factory(redis_timeout="30") as dcslog_server:
        api = Api(dcslog_server, dcslog_server.import_instance(redis_replicated.primary.url)["instance_id"])
        hanging = redis_replicated.replicas[0]
        sleep_commands(redis_replicated.primary, 2)
        hanging.pause()
        try:
            harvest = threading.Thread(target=dcslog_server.harvest)
            harvest.start()
            wait_for(lambda: len(api.all()) == 2, timeout=20, what="the primary's entries, stored on their own")
            assert harvest.is_alive()  # the hanging node's read is still pending
            status = {n["replication_ip"]: n for n in api.nodes()}
            assert status["127.0.0.2"]["last_harvest_at"] and status[hanging.host]["last_harvest_at"] is None
        finally:
            hanging.resume()
        harvest.join(60)
        assert not harvest.is_alive()


def test_racing_harvests_store_once_and_count_everything_once(dcslog_server, redis_node_factory):
    """Two harvests of one node overlap (two workers whose claims both hold, e.g. one stalled
    past the interval): A reads, B reads two entries more, A stores, B stores. Driven step by
    step through the harvester's own read and store."""
    from dcslog.db.models import Instance, Replication, SlowlogCursor
    from dcslog.db.session import create_engine, create_sessionmaker
    from dcslog.keys import Keyring, load_server_key
    from dcslog.redis.connection import NodeConnector
    from dcslog.redis.slowlog import read_slowlog

    node = redis_node_factory("127.0.0.2", args=[*SLOW, "--slowlog-max-len", "5"])
    api = Api(dcslog_server, dcslog_server.import_instance(node.url)["instance_id"])
    sleep_commands(node, 2, "0.011")  # ids 0-1
    dcslog_server.harvest()
    sleep_commands(node, 8, "0.011")  # ids 2-9; the ring keeps 5-9: 2, 3 and 4 are lost
    settings = dcslog_server.settings

    async def race() -> None:
        engine = create_engine(settings.effective_database_url)
        sessionmaker = create_sessionmaker(engine)
        try:
            async with sessionmaker() as session:
                instance = (await session.scalars(select(Instance))).one()
                replica = (await session.scalars(select(Replication))).one()
                cursor = (await session.scalars(select(SlowlogCursor))).one()  # what both harvesters read
            connector = NodeConnector(Keyring(load_server_key(settings)).decrypt(instance.redis_url_encrypted), 5)
            read_a = await read_slowlog(connector, node.host, node.port, cursor.run_id, cursor.last_id)
            sleep_commands(node, 2, "0.011")  # ids 10-11; the ring keeps 7-11
            read_b = await read_slowlog(connector, node.host, node.port, cursor.run_id, cursor.last_id)
            # A stores 5-9, counts 3 lost, moves the cursor to 9; B stores 10-11 (5-9 are A's) and,
            # the cursor having moved since it read it, counts no loss.
            assert await slowlog_harvest._store(sessionmaker, instance, replica, cursor, read_a, connector) == (5, [])
            assert await slowlog_harvest._store(sessionmaker, instance, replica, cursor, read_b, connector) == (2, [])
        finally:
            await engine.dispose()
    asyncio.run(race())
    dcslog_server.harvest()
    with contextlib.closing(sqlite3.connect(settings.data_dir / "dcslog.db")) as db:
        rows = db.execute("SELECT redis_id FROM slowlog_entries ORDER BY redis_id").fetchall()
    assert [r for (r,) in rows] == [0, 1, 5, 6, 7, 8, 9, 10, 11]
    [status] = api.nodes()
    assert status["harvested_entries"] == 9 and status["lost_entries"] == 3 and status["last_entry_id"] == 11
    assert api.slowlog().json()["total_num"] == 9


def test_workers_share_the_harvest_rounds(dcslog_server, redis_node_factory):
    """Harvesters (one per worker) claim each node's round: a node claimed less than the interval
    ago is not read again, so N workers do not read every node N times per interval."""
    from dcslog.db.session import create_engine, create_sessionmaker
    from dcslog.keys import Keyring, load_server_key

    node = redis_node_factory("127.0.0.2", args=SLOW)
    api = Api(dcslog_server, dcslog_server.import_instance(node.url)["instance_id"])
    sleep_commands(node, 2)
    settings = dcslog_server.settings

    def slowlog_reads() -> int:
        return sum(v["calls"] for k, v in node.info("commandstats").items() if k.startswith("cmdstat_slowlog"))

    async def two_workers(min_interval: float) -> list[int]:
        engine = create_engine(settings.effective_database_url)
        try:
            keyring = Keyring(load_server_key(settings))
            return await asyncio.gather(*(slowlog_harvest.harvest_all(
                create_sessionmaker(engine), keyring, settings.redis_timeout, min_interval) for _ in range(2)))
        finally:
            await engine.dispose()
    before = slowlog_reads()
    assert sorted(asyncio.run(two_workers(60))) == [0, 2]  # one of them read the node
    assert slowlog_reads() == before + 1
    sleep_commands(node, 1)
    assert asyncio.run(two_workers(60)) == [0, 0]  # within the interval: nobody reads it again
    assert slowlog_reads() == before + 1
    assert sorted(asyncio.run(two_workers(0))) in ([0, 1], [1, 0], [1, 1])  # the next round
    assert len(api.all()) == 3


def test_a_reset_of_unread_entries_counts_them_lost_once_a_new_entry_arrives(dcslog_server, redis_node_factory):
    node = redis_node_factory("127.0.0.2", args=SLOW)
    api = Api(dcslog_server, dcslog_server.import_instance(node.url)["instance_id"])
    sleep_commands(node, 1)
    dcslog_server.harvest()
    sleep_commands(node, 3)  # never harvested
    with contextlib.closing(node.client()) as client:
        client.execute_command("SLOWLOG", "RESET")
    dcslog_server.harvest()  # an empty ring: nothing tells yet what was cleared
    assert len(api.all()) == 1 and api.nodes()[0]["lost_entries"] == 0
    sleep_commands(node, 1)  # its id is 3 past the cursor
    dcslog_server.harvest()
    dcslog_server.harvest()
    assert len(api.all()) == 2
    assert api.nodes()[0]["lost_entries"] == 3 and api.slowlog().json()["lost_entries"] == 3


def test_refresh_between_harvests_and_prune(dcslog_server, redis_replicated):
    for node in redis_replicated.nodes:
        with contextlib.closing(node.client()) as client:
            client.config_set("slowlog-log-slower-than", 10000)
    instance_id = dcslog_server.import_instance(redis_replicated.primary.url)["instance_id"]
    api = Api(dcslog_server, instance_id)
    gone = redis_replicated.replicas[1]
    sleep_commands(redis_replicated.primary, 2)
    sleep_commands(gone, 1)
    dcslog_server.harvest()
    dcslog_server.cli("instances", "refresh", instance_id)  # node ids, hence cursors, stay
    sleep_commands(redis_replicated.primary, 1)
    dcslog_server.harvest()
    dcslog_server.harvest()
    entries = api.all()
    assert len(entries) == 4 and len({(e["node_ip"], e["start_time"], e["id"]) for e in entries}) == 4
    assert sum(n["harvested_entries"] for n in api.nodes()) == 4
    gone_id = {n["replication_ip"]: n for n in api.nodes()}[gone.host]["replication_id"]
    # The node leaves the deployment; the operator prunes it: its cursor goes, its entries stay.
    with contextlib.closing(gone.client()) as client:
        client.execute_command("REPLICAOF", "NO", "ONE")
    wait_for(lambda: redis_replicated.primary.info("replication")["connected_slaves"] == 1, what="the replica to leave")
    dcslog_server.cli("instances", "refresh", instance_id, "--prune")
    assert gone.host not in {n["replication_ip"] for n in api.nodes()}
    with contextlib.closing(sqlite3.connect(dcslog_server.settings.data_dir / "dcslog.db")) as db:
        assert db.execute("SELECT count(*) FROM slowlog_cursors WHERE replication_id = ?",
                          (gone_id,)).fetchone() == (0,)
    assert gone_id not in every_series(dcslog_server)
    dcslog_server.harvest()
    assert len(api.all()) == 4


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


@pytest.mark.parametrize("backend_env,wide_window", [("embedded", 5000), ("embedded", 0), ("postgres-s3", 0)],
                         ids=["time-index", "duration-index", "postgresql"], indirect=["backend_env"])
def test_sorting_and_paging_match_a_brute_force_reference(backend_env, dcslog_env, redis_node_factory, monkeypatch,
                                                          wide_window):
    # Both plans of the duration sort on SQLite: the planner's own, and the forced walk of the
    # duration index; and PostgreSQL, which takes neither path's SQLite-only shortcuts.
    monkeypatch.setattr(slowlog_queries, "WIDE_WINDOW", wide_window)
    node = redis_node_factory("127.0.0.2", args=["--slowlog-log-slower-than", "0", "--slowlog-max-len", "1000"])
    with started_server(monkeypatch) as dcslog_server:
        check_sorting_and_paging(dcslog_server, node)


def check_sorting_and_paging(dcslog_server, node) -> None:
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
    assert ({r["id"] for r in api.all(command="set")}
            == {r["id"] for r in rows if r["command"].upper().startswith("SET ")})
    assert {r["fingerprint"] for r in api.all(command="SET")} == {"SET ? ?"}


def test_validation_errors(dcslog_server, redis_standalone):
    api = Api(dcslog_server, dcslog_server.import_instance(redis_standalone.url)["instance_id"])
    cases = [({"start_time": ""}, "start_time"), ({"end_time": "abc"}, "end_time"), ({"sort_key": "size"}, "sort_key"),
             ({"sort_dir": "up"}, "sort_dir"), ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
             ({"offset": -1}, "offset"), ({"role": "king"}, "role"), ({"replication_id": "nope"}, "replication_id"),
             ({"min_duration": "-1"}, "min_duration"), ({"command": "a b"}, "command")]
    for params, name in cases:
        response = api.slowlog(**params)
        # SPEC §2, errors: DCS.4800 says "Invalid {name} in the request."; the hint what is accepted.
        body = response.json()
        assert response.status_code == 400 and body == {
            "error_code": "DCS.4800", "error_msg": f"Invalid {name} in the request.",
            "error_ext_msg": body["error_ext_msg"]}, params
        assert name in body["error_ext_msg"], body
    response = api.slowlog(start_time=2000, end_time=1999)
    assert response.status_code == 400 and response.json() == {
        "error_code": "DCS.4025", "error_msg": "The end time must not be earlier than the start time.",
        "error_ext_msg": None}
    assert api.slowlog(role="proxy").json() == {"total_num": 0, "count": 0, "slowlogs": [], "lost_entries": 0}


def test_start_time_equal_to_end_time_is_one_millisecond(dcslog_server, redis_node_factory):
    node = redis_node_factory("127.0.0.2", args=SLOW)
    api = Api(dcslog_server, dcslog_server.import_instance(node.url)["instance_id"])
    sleep_commands(node, 1)
    dcslog_server.harvest()
    [entry] = api.all()
    start_ms = int(datetime.strptime(entry["start_time"], "%Y-%m-%dT%H:%M:%S%z").timestamp() * 1000)
    body = api.slowlog(start_time=start_ms, end_time=start_ms).json()  # Redis reports whole seconds
    assert body["total_num"] == 1 and [e["id"] for e in body["slowlogs"]] == [entry["id"]]
    assert api.slowlog(start_time=start_ms + 1, end_time=start_ms + 1).json()["total_num"] == 0


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
    text = every_series(dcslog_server)
    line = next(series for series in text.splitlines() if series.startswith("dcslog_slowlog_lost_entries_total{"))
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


def test_dcslog_own_commands_are_not_harvested(dcslog_server, redis_node_factory):
    """With every command logged (slowlog-log-slower-than 0) and a password (so that a connection
    starts with AUTH or HELLO), discovery and the harvests leave their own entries in the ring:
    only the application's are stored, and dcslog's are not counted as lost either."""
    node = redis_node_factory("127.0.0.2", password="pw-slow", args=["--slowlog-log-slower-than", "0"])
    with contextlib.closing(node.client()) as app:  # one connection, authenticated before the reset
        app.execute_command("SLOWLOG", "RESET")
        api = Api(dcslog_server, dcslog_server.import_instance(node.url)["instance_id"])
        app.set("user:1", "a")
        dcslog_server.harvest()
        app.get("user:1")
        dcslog_server.harvest()
        app.delete("user:1")
        dcslog_server.harvest()
        app.set_response_callback("SLOWLOG GET", lambda response, **options: response)
        ring = app.execute_command("SLOWLOG", "GET", 1000)
    entries = sorted(api.all(), key=lambda e: e["id"])
    assert [e["command"] for e in entries] == ["SLOWLOG RESET", "SET user:1 a", "GET user:1", "DEL user:1"]
    assert api.slowlog().json()["lost_entries"] == 0 and api.nodes()[0]["lost_entries"] == 0
    assert len(ring) > 4 + 10  # the harvests' and discovery's own commands were there to be left out


def test_a_node_whose_address_is_not_confirmed_is_not_harvested(dcslog_server, redis_node_factory):
    """The primary also answers at the address it reports for its replica: reading that address
    would store the primary's slow commands a second time, as the replica's."""
    from tests.test_redis_discovery import start_unannounced

    primary, replica = start_unannounced(redis_node_factory, primary_bind=("127.0.0.9", "127.0.0.1"))
    for node in (primary, replica):
        with contextlib.closing(node.client()) as client:
            client.config_set("slowlog-log-slower-than", 10000)
    api = Api(dcslog_server, dcslog_server.import_instance(primary.url)["instance_id"])
    sleep_commands(primary, 2)
    dcslog_server.harvest()
    assert [(e["node_ip"], e["command"]) for e in api.all()] == [(primary.host, "DEBUG SLEEP 0.02")] * 2
