"""Events the run log tells (SPEC §7): ``crash`` from a real bug report (DEBUG SEGFAULT, DEBUG
ASSERT) and ``sync`` from a real full resynchronisation, on redis-server and valkey-server. The
expected events come from the node's log file read by the test's own reference parser
(``tests/records_reference.py``), never from dcslog's answers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC

import httpx
import pytest
import redis

from dcslog.db.session import create_engine, create_sessionmaker
from dcslog.keys import Keyring, load_server_key
from dcslog.services import slowlog_harvest
from dcslog.storage import open_object_store
from dcslog.testing.redis_servers import wait_until
from tests.dcslog_fixtures import started_server
from tests.records_reference import reference_records
from tests.redis_fixtures import valkey_server_path
from tests.test_agent import import_through_agent, running_agent
from tests.test_events import Api, now_ms

HOLD_S = 2.1  # entries younger than 2 s wait for the next round


def replication_ids(api: Api) -> dict[str, str]:
    """address → replication id, as ListGroupReplicationInfo says."""
    body = httpx.get(api.groups_url, headers={"X-Auth-Token": api.token}).json()
    return {f"{r['replication_ip']}:{r['replication_port']}": r["replication_id"]
            for g in body["group_list"] for r in g["replication_list"]}


def linked(replica) -> None:
    wait_until(lambda: replica.info("replication").get("master_link_status") == "up", 15, "the replica to link")


def crash(node, command: str) -> None:
    """DEBUG SEGFAULT / DEBUG ASSERT: the node writes its bug report and dies."""
    with contextlib.closing(node.client()) as client, contextlib.suppress(redis.ConnectionError):
        client.execute_command("DEBUG", command)
    node.proc.wait(10)


def expected_told(log_file: str, rid: str, since_ms: int) -> list[tuple[str, int, str, dict]]:
    """(type, time_ms, id of the record that tells it, details) of what the log says after
    ``since_ms``, by brute force over the whole file: a bug report (its START line among an entry's
    lines) is a crash at its first own entry, for the first reason its entries give; a
    replica's "Full resync from …" starts a sync, "… sync: Finished with success" finishes it."""
    records = reference_records(log_file, UTC)
    out = []
    for i, record in enumerate(records):
        record_id = f"{record['time_ms']}_{record['seq']}_{rid}"
        message = record["message"]
        if record["time_ms"] >= since_ms and message.startswith(("Full resync from master:",
                                                                  "Full resync from primary:")):
            out.append(("sync", record["time_ms"], record_id, {"phase": "started"}))
        if record["time_ms"] >= since_ms and message.endswith("<-> REPLICA sync: Finished with success"):
            out.append(("sync", record["time_ms"], record_id, {"phase": "finished"}))
        if any("BUG REPORT START" in line for line in record["lines"]):
            first = records[i + 1]
            reasons = [r["message"] for r in records[i + 1:] if r["pid"] == first["pid"] and (
                "crashed by signal: " in r["message"] or r["message"].startswith(("==> ", "Guru Meditation: ")))]
            out.append(("crash", first["time_ms"], record_id, {
                "reason": reasons[0], "record_id": f"{first['time_ms']}_{first['seq']}_{rid}"}))
    return sorted(out, key=lambda e: e[1])


def told(api: Api) -> list[tuple[str, int, str, dict]]:
    """The crash and sync events of the API, oldest first, shaped as ``expected_told``'s."""
    events = [e for e in api.events() if e["type"] in ("crash", "sync")]
    shaped = []
    for e in sorted(events, key=lambda e: e["time_ms"]):
        details = e["details"]
        assert details["message"]
        kept = {"phase": details["phase"]} if e["type"] == "sync" else {
            "reason": details["reason"], "record_id": details["record_id"]}
        shaped.append((e["type"], e["time_ms"], e["id"], kept))
    return shaped


@pytest.mark.parametrize(("server", "command"), [("redis", "SEGFAULT"), ("valkey", "ASSERT")])
def test_a_crash_and_the_full_resync_after_it_are_told_once(dcslog_server, redis_node_factory, server, command):
    executable = valkey_server_path() if server == "valkey" else None
    primary = redis_node_factory("127.0.0.2", server=executable)
    replica = redis_node_factory("127.0.0.3", server=executable, args=["--replicaof", primary.host, str(primary.port)])
    linked(replica)
    instance_id = dcslog_server.import_instance(primary.url)["instance_id"]
    api = Api(dcslog_server, instance_id)
    rid = replication_ids(api)[replica.address]
    time.sleep(HOLD_S + 0.5)  # what the nodes wrote starting is history at the first look
    looked_ms = now_ms()
    dcslog_server.harvest()  # the first look
    assert api.events() == []

    crash(replica, command)
    # Without the data set it loaded from the primary (and the replication id in it), the new process
    # on the same log file can only sync in full.
    (replica.dir / "dump.rdb").unlink(missing_ok=True)
    replica.start()
    linked(replica)
    time.sleep(HOLD_S)
    dcslog_server.harvest()
    got = told(api)
    want = expected_told(replica.log_file, rid, looked_ms)
    assert [(t, ms, details) for t, ms, _, details in got] == [(t, ms, details) for t, ms, _, details in want]
    assert [t for t, *_ in want] == ["crash", "sync", "sync"]  # what the test did, as the log says it
    assert ("crashed by signal: 11" if command == "SEGFAULT" else "is not true") in want[0][3]["reason"]
    events = api.events()
    assert {e["type"] for e in events} == {"crash", "sync", "restart"}
    crashed = next(e for e in events if e["type"] == "crash")
    assert (crashed["replication_ip"], crashed["replication_port"]) == (replica.host, replica.port)
    restart = next(e for e in events if e["type"] == "restart")
    assert crashed["time_ms"] <= restart["time_ms"] + 1000  # uptime counts whole seconds
    for _ in range(2):  # read again, by later rounds: recorded once, under the same ids
        time.sleep(0.3)
        dcslog_server.harvest()
        assert told(api) == got
    # The primary's side of the resync is a run-log record, not an event.
    assert {e["replication_id"] for e in events} == {rid}


def test_a_report_written_after_its_entry_was_read_is_still_a_crash(dcslog_server, redis_node_factory):
    """The START line joins the newest entry as a continuation line: a round that read that entry
    before the crash must read it again to see it."""
    node = redis_node_factory("127.0.0.2")
    api = Api(dcslog_server, dcslog_server.import_instance(node.url)["instance_id"])
    time.sleep(HOLD_S)
    dcslog_server.harvest()  # the first look
    with contextlib.closing(node.client()) as client:
        client.execute_command("CONFIG", "SET", "loglevel", "notice")  # nothing new to log until the crash
        client.execute_command("DEBUG", "LOG", "the last entry before the crash")
    time.sleep(HOLD_S)
    dcslog_server.harvest()  # reads that entry, with no report yet
    assert told(api) == []
    crash(node, "SEGFAULT")
    time.sleep(HOLD_S)
    dcslog_server.harvest()  # the node is gone, its log file tells why
    [(kind, _, _, details)] = told(api)
    assert kind == "crash" and "crashed by signal: 11" in details["reason"]
    [want] = expected_told(node.log_file, replication_ids(api)[node.address], 0)
    assert told(api)[0][1] == want[1]


@pytest.mark.parametrize("backend_env", ["embedded", "postgres-s3"], indirect=True)
def test_two_harvesters_racing_tell_a_crash_once(backend_env, dcslog_env, redis_node_factory, monkeypatch):
    """Both harvesters read the same bug report in the same round: one event, on SQLite and on
    PostgreSQL (its id comes from the record that tells it)."""
    node = redis_node_factory("127.0.0.2")
    with started_server(monkeypatch) as dcslog_server:
        settings = dcslog_server.settings
        api = Api(dcslog_server, dcslog_server.import_instance(node.url)["instance_id"])

        async def two_harvesters() -> None:
            engine = create_engine(settings.effective_database_url)
            try:
                keyring, store = Keyring(load_server_key(settings)), open_object_store(settings)
                # min_interval < 0: neither claim holds the other off: both read the node.
                await asyncio.gather(*(slowlog_harvest.harvest_all(create_sessionmaker(engine), keyring,
                                                                   settings.redis_timeout, min_interval=-60,
                                                                   store=store) for _ in range(2)))
            finally:
                await engine.dispose()

        asyncio.run(two_harvesters())  # the first look
        crash(node, "SEGFAULT")
        time.sleep(HOLD_S)
        asyncio.run(two_harvesters())
        asyncio.run(two_harvesters())
        want = expected_told(node.log_file, replication_ids(api)[node.address], 0)
        assert [(t, ms, d) for t, ms, _, d in told(api)] == [(t, ms, d) for t, ms, _, d in want]
        assert [t for t, *_ in want] == ["crash"]


@pytest.fixture
def agent(tmp_path):
    with running_agent(tmp_path) as running:
        yield running


def test_a_crash_on_a_host_read_through_its_agent(dcslog_server, redis_node_factory, agent):
    """The node's log is on a disk only its `dcslog agent` sees: the agent answers the keyword scans
    and the report's read, and the crash is told the same."""
    agent_url, log_dir, remote_files = agent
    node = redis_node_factory("127.0.0.2", logfile=str(remote_files / "redis.log"))
    imported = import_through_agent(dcslog_server, node, agent_url, f"{log_dir}/redis.log")
    api = Api(dcslog_server, imported["instance_id"])
    time.sleep(HOLD_S)
    dcslog_server.harvest()  # the first look
    crash(node, "SEGFAULT")
    time.sleep(HOLD_S)
    dcslog_server.harvest()
    want = expected_told(str(remote_files / "redis.log"), replication_ids(api)[node.address], 0)
    assert [t for t, *_ in want] == ["crash"]
    assert [(t, ms, d) for t, ms, _, d in told(api)] == [(t, ms, d) for t, ms, _, d in want]
