"""Following run logs live (SPEC §6, endpoint 10): Server-Sent Events of every new entry, across
rotations (rename and copytruncate), a Redis restart, a reconnect with Last-Event-ID and a node
behind an agent. Expected answers come from tests/records_reference.py over the same files."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest

from dcslog.signing import sign_request
from dcslog.testing.ports import free_port
from tests.records_reference import reference_records
from tests.runlog_reference import write_entry
from tests.test_agent import import_through_agent, running_agent
from tests.test_valkey_formats import TZ, import_valkey, valkey_node

FOLLOW_TIMEOUT = 30.0


class Events:
    """An SSE stream read in a thread: the records, the sources events, the heartbeats."""

    def __init__(self, url: str, params: dict, headers: dict):
        self.records: list[dict] = []
        self.sources: list[list] = []
        self.ids: list[str] = []
        self.errors: list[dict] = []  # the `event: error` that ends a stream whose caller was revoked
        self.status: int | None = None
        self.content_type = ""
        self.ended = threading.Event()
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=FOLLOW_TIMEOUT))
        self._thread = threading.Thread(target=self._run, args=(url, params, headers), daemon=True)
        self._thread.start()

    def _run(self, url: str, params: dict, headers: dict) -> None:
        try:
            with self._client.stream("GET", url, params=params, headers=headers) as response:
                self.status, self.content_type = response.status_code, response.headers.get("Content-Type", "")
                event: dict[str, str] = {}
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line == "":
                        self._take(event)
                        event = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        event[name] = value[1:] if value.startswith(" ") else value
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def _take(self, event: dict[str, str]) -> None:
        if event.get("event") == "record":
            record = json.loads(event["data"])
            assert event["id"] == record["id"]
            self.ids.append(event["id"])
            self.records.append(record)
        elif event.get("event") == "sources":
            self.sources.append(json.loads(event["data"]))
        elif event.get("event") == "error":
            self.errors.append(json.loads(event["data"]))

    def wait_for(self, count: int, timeout: float = FOLLOW_TIMEOUT) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.records) < count and time.monotonic() < deadline and not self.ended.is_set():
            time.sleep(0.05)
        return self.records

    def close(self) -> None:
        self._stop.set()
        self._client.close()
        self._thread.join(10)


def entries(pid: int, tag: str, count: int) -> bytes:
    """``count`` entries stamped now (a legacy log, UTC), with a crash-report-like continuation
    every fifth one."""
    out = b""
    for i in range(count):
        out += write_entry(datetime.now(UTC), f"{tag} {i}", pid=pid)
        if i % 5 == 4:
            out += f"    continuation of {tag} {i}\n\n".encode()
    return out


def keyed(records: list[dict]) -> list[tuple]:
    return [(r["id"], r["message"], r["lines"]) for r in records]


def expected(paths, rid: str, start_ms: int, keyword: str | None = None, tz=UTC) -> list[tuple]:
    ref = reference_records([p for p in paths if os.path.exists(p)], tz)
    return [(f"{r['time_ms']}_{r['seq']}_{rid}", r["message"], r["lines"]) for r in ref
            if r["time_ms"] >= start_ms and (keyword is None or keyword in r["message"]
                                             or any(keyword in line for line in r["lines"]))]


@pytest.fixture
def followed(dcslog_server, redis_standalone, tmp_path):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    log_file = log_dir / "redis.log"
    log_file.write_bytes(entries(100, "before the follow", 3))
    imported = dcslog_server.import_instance(redis_standalone.url, "proj-a", "follow", "--log-file",
                                             f"{redis_standalone.address}={log_file}")
    rid = imported["group_list"][0]["replication_list"][0]["replication_id"]
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
    url = f"{dcslog_server.url}/v2/proj-a/instances/{imported['instance_id']}/redislog/records"
    return {"url": url, "token": token, "rid": rid, "log_file": log_file}


def test_follow_across_rotations_and_a_reconnect(followed):
    url, token, rid, log_file = followed["url"], followed["token"], followed["rid"], followed["log_file"]
    headers = {"X-Auth-Token": token}
    start_ms = int(time.time() * 1000)
    time.sleep(0.01)
    events = Events(url, {"follow": "true"}, headers)
    try:
        deadline = time.monotonic() + 10
        while not events.sources and time.monotonic() < deadline:
            time.sleep(0.05)
        assert events.status == 200 and events.content_type.startswith("text/event-stream")
        assert events.sources[0][0]["read"] is True
        with open(log_file, "ab") as f:
            f.write(entries(100, "first", 12))
        events.wait_for(12)
        # A rename rotation (logrotate's default), then the node goes on in a new file.
        os.rename(log_file, f"{log_file}.1")
        with open(log_file, "ab") as f:
            f.write(entries(100, "after rename", 7))
        events.wait_for(19)
        # copytruncate: the rotated copy is made, then the live file cut to zero and written again.
        os.rename(f"{log_file}.1", f"{log_file}.2")
        shutil.copyfile(log_file, f"{log_file}.1")
        with open(log_file, "r+b") as f:
            f.truncate(0)
        with open(log_file, "ab") as f:
            f.write(entries(100, "after copytruncate", 6))
        # A restart: a new pid goes on in the same file.
        with open(log_file, "ab") as f:
            f.write(entries(200, "after restart", 5))
        got = events.wait_for(30)
        paths = [f"{log_file}.2", f"{log_file}.1", str(log_file)]
        assert keyed(got) == expected(paths, rid, start_ms)
        assert len(set(events.ids)) == len(events.ids) == 30
    finally:
        events.close()

    # Gone for a while: what is written meanwhile comes after a reconnect with Last-Event-ID, once.
    with open(log_file, "ab") as f:
        f.write(entries(200, "while away", 8))
    again = Events(url, {"follow": "true"}, {**headers, "Last-Event-ID": events.ids[-1]})
    try:
        with open(log_file, "ab") as f:
            f.write(entries(200, "back again", 4))
        got = again.wait_for(12)
        paths = [f"{log_file}.2", f"{log_file}.1", str(log_file)]
        assert keyed(events.records + got) == expected(paths, rid, start_ms)
    finally:
        again.close()


def test_follow_with_filters_ends_at_end_time(followed):
    url, token, rid, log_file = followed["url"], followed["token"], followed["rid"], followed["log_file"]
    start_ms = int(time.time() * 1000)
    end_ms = start_ms + 2500
    events = Events(url, {"follow": "true", "keyword": "NEEDLE", "start_time": start_ms, "end_time": end_ms},
                    {"X-Auth-Token": token})
    try:
        writes = 0
        while time.time() * 1000 < end_ms + 200:
            with open(log_file, "ab") as f:
                f.write(entries(100, "hay", 3) + entries(100, f"NEEDLE {writes}", 1))
            writes += 1
            time.sleep(0.2)
        assert events.ended.wait(10), "the stream did not end at end_time"
        want = [e for e in expected([str(log_file)], rid, start_ms, "NEEDLE")
                if int(e[0].split("_")[0]) < end_ms]
        assert keyed(events.records) == want and want
    finally:
        events.close()


def test_a_late_continuation_comes_with_its_entry(followed):
    """The newest entry waits (up to FOLLOW_HOLD_MS) for the continuation lines written after it."""
    url, token, rid, log_file = followed["url"], followed["token"], followed["rid"], followed["log_file"]
    start_ms = int(time.time() * 1000)
    time.sleep(0.01)
    events = Events(url, {"follow": "true"}, {"X-Auth-Token": token})
    try:
        time.sleep(0.5)
        with open(log_file, "ab") as f:
            f.write(write_entry(datetime.now(UTC), "crashed", pid=100, level="warning"))
        time.sleep(0.6)  # more than a poll, less than the hold
        with open(log_file, "ab") as f:
            f.write(b"=== REDIS BUG REPORT START: Cut & paste starting from here ===\n    stack line\n")
        got = events.wait_for(1)
        assert keyed(got) == expected([str(log_file)], rid, start_ms)
        assert got[0]["lines"] == ["=== REDIS BUG REPORT START: Cut & paste starting from here ===", "    stack line"]
    finally:
        events.close()


@pytest.mark.parametrize("revoked", ["token", "access key"])
def test_a_revocation_ends_the_callers_open_follow(followed, dcslog_server, revoked):
    """A token or access key revoked while its follow is open: the stream ends within seconds with
    the error a new request gets (401 DCS.1001's envelope as an `event: error`), and nothing
    written after that reaches it. A follow by another, live token goes on."""
    url, log_file = followed["url"], followed["log_file"]
    params = {"follow": "true", "start_time": int(time.time() * 1000)}  # both from the same moment
    if revoked == "token":
        made = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")
        headers, revoke = {"X-Auth-Token": made["token"]}, ("token", "revoke", made["id"])
    else:
        key = dcslog_server.credentials(role="viewer")
        query_url = str(httpx.URL(url, params=params))
        headers = sign_request(key["access_key"], key["secret_key"], "GET", query_url)
        revoke = ("credentials", "revoke", key["access_key"])
    doomed = Events(url, params, headers)
    kept = Events(url, params, {"X-Auth-Token": followed["token"]})
    try:
        with open(log_file, "ab") as f:
            f.write(entries(100, "before the revocation", 2))
        assert len(doomed.wait_for(2)) == 2 and len(kept.wait_for(2)) == 2
        dcslog_server.cli(*revoke[:2], "--project-id", "proj-a", revoke[2])
        assert doomed.ended.wait(10), "the revoked caller's follow is still open"
        assert doomed.errors == [{"error_code": "DCS.1001", "error_msg": doomed.errors[0]["error_msg"],
                                  "error_ext_msg": None}]
        assert "revoked" in doomed.errors[0]["error_msg"]
        with open(log_file, "ab") as f:
            f.write(entries(100, "after the revocation", 2))
        assert len(kept.wait_for(4)) == 4
        assert [r["message"] for r in doomed.records] == [r["message"] for r in kept.records[:2]]
        assert not kept.ended.is_set()
    finally:
        doomed.close()
        kept.close()


def test_follow_refuses_what_it_cannot_do(followed):
    url, headers = followed["url"], {"X-Auth-Token": followed["token"]}
    response = httpx.get(url, params={"follow": "true", "sort_dir": "desc"}, headers=headers)
    assert response.status_code == 400 and response.json()["error_code"] == "DCS.4800"
    response = httpx.get(url, params={"follow": "true"}, headers={**headers, "Last-Event-ID": "not-an-id"})
    assert response.status_code == 400 and response.json()["error_code"] == "DCS.4800"
    response = httpx.get(url, params={"follow": "yes"}, headers=headers)
    assert response.status_code == 400 and response.json()["error_code"] == "DCS.4800"


def test_follow_a_real_valkey_through_a_restart(dcslog_server, redis_node_factory, monkeypatch):
    node = valkey_node(redis_node_factory, monkeypatch)
    instance_id = import_valkey(dcslog_server, node)
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
    url = f"{dcslog_server.url}/v2/proj-a/instances/{instance_id}/redislog/records"
    start_ms = int(time.time() * 1000)
    events = Events(url, {"follow": "true", "keyword": "follow me"}, {"X-Auth-Token": token})
    try:
        time.sleep(0.5)
        with node.client() as c:
            for i in range(10):
                c.execute_command("DEBUG", "LOG", f"follow me {i}")
        node.stop()
        monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # the host's clock zone, as for its first start
        node.start()
        monkeypatch.delenv("TZ")
        with node.client() as c:
            c.config_set("log-format", "logfmt")
            for i in range(10, 15):
                c.execute_command("DEBUG", "LOG", f"follow me {i}")
        got = events.wait_for(15)
        rid = got[0]["replication_id"]
        assert not events.ended.is_set(), events.sources
        # The shutdown's signal-handler line has no entry prefix: a continuation line of the last
        # entry before it, which the follow sends with it unless the stop came more than
        # FOLLOW_HOLD_MS later (a stalled machine); test_a_late_continuation_comes_with_its_entry
        # covers the hold itself.
        def without_signal_lines(rows):
            return [(i, m, [line for line in lines if ":signal-handler (" not in line]) for i, m, lines in rows]
        assert without_signal_lines(keyed(got)) == without_signal_lines(
            expected([node.log_file], rid, start_ms, "follow me", TZ))
        assert len({r["pid"] for r in got}) == 2 and {r["format"] for r in got} == {"legacy", "logfmt"}
    finally:
        events.close()


def test_follow_a_node_behind_an_agent(dcslog_server, redis_standalone, tmp_path):
    with running_agent(tmp_path) as (agent_url, log_dir, remote_files):
        (remote_files / "redis.log").write_bytes(entries(7, "old", 2))
        imported = import_through_agent(dcslog_server, redis_standalone, agent_url, f"{log_dir}/redis.log")
        rid = imported["group_list"][0]["replication_list"][0]["replication_id"]
        token = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
        url = f"{dcslog_server.url}/v2/proj-a/instances/{imported['instance_id']}/redislog/records"
        start_ms = int(time.time() * 1000)
        time.sleep(0.01)
        events = Events(url, {"follow": "true"}, {"X-Auth-Token": token})
        try:
            time.sleep(0.5)
            for round_ in range(3):
                with open(remote_files / "redis.log", "ab") as f:
                    f.write(entries(7, f"remote {round_}", 5))
                time.sleep(0.3)
            got = events.wait_for(15)
            assert keyed(got) == expected([remote_files / "redis.log"], rid, start_ms)
            assert events.sources[-1][0]["live"] == "agent" and events.sources[-1][0]["read"] is True
        finally:
            events.close()


def test_a_reconnect_to_another_api_process(followed, dcslog_server_factory):
    """Follow keeps no state in the process: a client that reconnects to another API process (behind
    a load balancer) with Last-Event-ID goes on exactly after the last record it had."""
    url, token, rid, log_file = followed["url"], followed["token"], followed["rid"], followed["log_file"]
    start_ms = int(time.time() * 1000)
    time.sleep(0.01)
    first = Events(url, {"follow": "true"}, {"X-Auth-Token": token})
    try:
        time.sleep(0.5)
        with open(log_file, "ab") as f:
            f.write(entries(300, "to the first process", 10))
        first.wait_for(10)
    finally:
        first.close()
    with open(log_file, "ab") as f:
        f.write(entries(300, "between", 5))
    with dcslog_server_factory(run_worker=False, port=str(free_port())) as other:
        other_url = url.replace(url.split("/v2/")[0], other.url)
        second = Events(other_url, {"follow": "true"}, {"X-Auth-Token": token, "Last-Event-ID": first.ids[-1]})
        try:
            with open(log_file, "ab") as f:
                f.write(entries(300, "to the second process", 5))
            got = second.wait_for(10)
            assert keyed(first.records + got) == expected([str(log_file)], rid, start_ms)
        finally:
            second.close()
