"""The cluster timeline (SPEC §7): run-log records, slow-log entries and events of real redis-server
nodes merged in one order, paged by cursor.

Every expected timeline is computed here by brute force, without dcslog's reading code: the run
logs read whole by the test reference parser (tests/records_reference.py), the slow-log entries
from ListSlowlog (checked against the commands the test sent), the events from the events endpoint
with their ``seq`` from the database rows — all sorted by the documented order: time, then kind
(event, runlog, slowlog), then the kind's own order (event: node, seq, id; runlog: node, place in
the node's log; slowlog: node, entry id). Pages of every size must concatenate to exactly that.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text

from dcslog.db.session import create_engine
from dcslog.services import records as records_service
from dcslog.testing.waiting import wait_for
from tests.dcslog_fixtures import started_server
from tests.records_reference import api_record, filter_records, iso, reference_records
from tests.runlog_reference import write_entry
from tests.test_client_cli import configure_client, run
from tests.test_records import node_info

KINDS = ("event", "runlog", "slowlog")
BODY = {"event": "event", "runlog": "record", "slowlog": "slowlog"}
ITEM_FIELDS = {"kind", "time", "time_ms", "replication_id", "replication_ip", "replication_port", "group_name",
               "role", "cursor"}
LEVEL_MARKS = {"debug": ".", "verbose": "-", "notice": "*", "warning": "#"}
ROLE_LETTERS = {"master": "M", "slave": "S", "child": "C", "sentinel": "X"}
# A line of `dcslog timeline`: date, time, node (padded), role letter, kind (padded), what happened.
LINE = re.compile(r"(\S+ \S+) (\S+) +(\S) (\S+) +(.*)")


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


# --- the API, as a viewer -------------------------------------------------------------------------


class Timeline:
    def __init__(self, server, instance_id: str, project: str = "proj-a"):
        self.token = server.cli("token", "create", "--project-id", project, "--role", "viewer")["token"]
        self.base = f"{server.url}/v2/{project}/instances/{instance_id}"
        self.client = httpx.Client(timeout=60, headers={"X-Auth-Token": self.token})

    def get(self, path: str = "timeline", **params) -> httpx.Response:
        return self.client.get(f"{self.base}/{path}", params={k: v for k, v in params.items() if v is not None})

    def page(self, **params) -> dict:
        response = self.get(**params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor", "sources"}
        for item in body["items"]:
            assert set(item) == ITEM_FIELDS | {BODY[item["kind"]]}, sorted(item)
        return body

    def walk(self, limit: int, **params) -> tuple[list[dict], list[dict]]:
        """Every item of the query, page by page (``limit`` each) by next_cursor; and the pages."""
        items: list[dict] = []
        pages: list[dict] = []
        cursor, seen = None, set()
        while True:
            body = self.page(limit=limit, cursor=cursor, **params)
            assert len(body["items"]) <= limit
            items += body["items"]
            pages.append(body)
            cursor = body["next_cursor"]
            if cursor is None:
                return items, pages
            assert cursor not in seen, f"cursor {cursor} came twice: no progress"
            seen.add(cursor)
            assert len(pages) < 10_000

    def error(self, **params) -> tuple[int, str, str]:
        response = self.get(**params)
        body = response.json()
        assert set(body) == {"error_code", "error_msg", "error_ext_msg"}, body
        return response.status_code, body["error_code"], body["error_msg"]

    def slowlog(self, start: int, end: int) -> list[dict]:
        """Every slow-log entry with start <= start time < end, through ListSlowlog (inclusive bounds)."""
        entries: list[dict] = []
        while True:
            body = self.get("slowlog", start_time=start, end_time=end - 1, sort_dir="asc", limit=1000,
                            offset=len(entries)).json()
            entries += body["slowlogs"]
            if len(entries) >= body["total_num"]:
                return entries

    def events(self) -> list[dict]:
        body = self.get("events", limit=1000).json()
        assert body["total_num"] == len(body["events"])
        return body["events"]

    def close(self) -> None:
        self.client.close()


def sql(server, statement: str, **params) -> list[tuple]:
    """One statement on the server's database (SQLite or PostgreSQL); its rows."""
    async def execute() -> list[tuple]:
        engine = create_engine(server.settings.effective_database_url)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(statement), params)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()
    return asyncio.run(execute())


# --- the brute-force timeline ---------------------------------------------------------------------


def utc_seconds_ms(stamp: str) -> int:
    """ListSlowlog's ``start_time`` (``2026-12-06T07:03:57Z``) as epoch ms."""
    return int(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()) * 1000


def brute_force(*, logs: dict[str, list], nodes: dict[str, dict], slowlog: list[dict], events: list[dict],
                seqs: dict[str, int], start: int, end: int, tz=UTC, kinds=KINDS, only: list[str] | None = None,
                level: str | None = None) -> list[dict]:
    """The timeline the documented order makes of everything, items without their cursor."""
    keyed: list[tuple[tuple, dict]] = []

    def item(kind: str, time_ms: int, rid: str, ip: str, port: int, group: str | None, role: str | None,
             body: dict) -> dict:
        return {"kind": kind, "time": iso(time_ms, tz), "time_ms": time_ms, "replication_id": rid,
                "replication_ip": ip, "replication_port": port, "group_name": group, "role": role, BODY[kind]: body}

    for rid, paths in logs.items():
        if "runlog" not in kinds or (only and rid not in only):
            continue
        node = nodes[rid]
        for ref in filter_records(reference_records(paths, tz), start_ms=start, end_ms=end,
                                  min_level=None if level in (None, "debug") else level):
            keyed.append(((ref["time_ms"], 1, rid, ref["seq"]),
                          item("runlog", ref["time_ms"], rid, node["replication_ip"], node["replication_port"],
                               node["group_name"], ref["role"], api_record(ref, rid, node, tz))))
    for entry in slowlog:
        time_ms = utc_seconds_ms(entry["start_time"])
        rid = entry["replication_id"]
        if "slowlog" in kinds and start <= time_ms < end and (not only or rid in only):
            keyed.append(((time_ms, 2, rid, entry["id"]),
                          item("slowlog", time_ms, rid, entry["node_ip"], entry["node_port"],
                               nodes[rid]["group_name"], entry["node_role"], entry)))
    for event in events:
        time_ms, rid = event["time_ms"], event["replication_id"]
        if "event" in kinds and start <= time_ms < end and (not only or rid in only):
            keyed.append(((time_ms, 0, rid, seqs[event["id"]], event["id"]),
                          item("event", time_ms, rid, event["replication_ip"], event["replication_port"],
                               event["group_name"], None, event)))
    keyed.sort(key=lambda pair: pair[0])
    return [it for _, it in keyed]


def label(item: dict) -> str:
    body = item[BODY[item["kind"]]]
    return f"{item['time_ms']} {item['kind']} {item['replication_id'][:8]} {body.get('id')}"


def assert_same(got: list[dict], want: list[dict]) -> None:
    """The items, cursors aside, equal to ``want`` in order; with a readable first difference."""
    bare = [{k: v for k, v in item.items() if k != "cursor"} for item in got]
    if bare != want:
        got_labels, want_labels = [label(i) for i in bare], [label(i) for i in want]
        repeated = sorted({x for x in got_labels if got_labels.count(x) > 1})
        missing = [x for x in want_labels if x not in set(got_labels)]
        first = next((i for i, (g, w) in enumerate(zip(bare, want, strict=False)) if g != w), min(len(bare), len(want)))
        detail = (bare[first], want[first]) if first < min(len(bare), len(want)) else None
        raise AssertionError(f"{len(bare)} items, {len(want)} expected; missing {missing[:5]} (of {len(missing)}), "
                             f"repeated {repeated[:5]}; first difference at {first}: {detail}")
    cursors = [item["cursor"] for item in got]
    assert len(set(cursors)) == len(cursors), "two items share a cursor"


def ties(want: list[dict]) -> list[int]:
    """Every k where items k and k+1 share their millisecond: a page may end between them."""
    return [k for k in range(len(want) - 1) if want[k]["time_ms"] == want[k + 1]["time_ms"]]


def host_zone() -> str:
    """The zone redis-server writes its log's times in (this machine's): the instance's time zone."""
    if os.environ.get("TZ"):
        return os.environ["TZ"].removeprefix(":")
    with contextlib.suppress(OSError):
        return Path("/etc/timezone").read_text().strip() or "UTC"
    return "UTC"


def hand_back_stderr(server, capsys) -> None:
    """A CLI command run under capsys points the process's log handler at capsys's stderr, where the
    server's thread writes each request's access line just after answering it: point it back at the
    real one before capsys closes its own."""
    with capsys.disabled():
        server.cli("credentials", "list")


def command(node, *args) -> object:
    with contextlib.closing(node.client()) as client:
        return client.execute_command(*args)


def slow_commands(nodes, tag: str, n: int) -> list[str]:
    """``n`` ECHO commands on each node (every command is slow with slowlog-log-slower-than 0) and a
    DEBUG LOG line (a run-log entry) after each; the ECHOed texts."""
    sent = []
    for i in range(n):
        for node in nodes:
            word = f"timeline-{tag}-{node.address}-{i}"
            command(node, "ECHO", word)
            command(node, "DEBUG", "LOG", f"mark {word}")
            sent.append(word)
    return sent


# --- 1. a real failover ---------------------------------------------------------------------------


def test_a_failover_timeline_pages_to_the_brute_force_order(dcslog_server, redis_replicated, monkeypatch, tmp_path,
                                                            capsys):
    primary, (promoted, other) = redis_replicated.primary, redis_replicated.replicas
    everyone = [primary, promoted, other]
    for node in everyone:
        command(node, "CONFIG", "SET", "slowlog-log-slower-than", "0")
        command(node, "CONFIG", "SET", "slowlog-max-len", "10000")
    zone = host_zone()
    imported = dcslog_server.import_instance(primary.url, "proj-a", "cache", "--timezone", zone)
    nodes, by_address = node_info(imported)
    api = Timeline(dcslog_server, imported["instance_id"])
    dcslog_server.harvest()  # the first look: no event
    sent = slow_commands(everyone, "before", 3)
    dcslog_server.harvest()
    # The failover: a replica promoted, the others re-pointed at it (each logs it; the harvest sees it).
    command(promoted, "REPLICAOF", "NO", "ONE")
    for node in (primary, other):
        command(node, "REPLICAOF", promoted.host, str(promoted.port))
    wait_for(lambda: promoted.info("replication")["connected_slaves"] == 2, what="both to follow the new master")
    dcslog_server.harvest()
    sent += slow_commands(everyone, "after", 3)
    dcslog_server.harvest()
    end = now_ms() + 1

    logs = {by_address[node.address]: [node.log_file] for node in everyone}
    refs = {rid: reference_records(paths, zone) for rid, paths in logs.items()}
    # From the nodes' first entries (the slow log's times are whole seconds: from that second on).
    start = min(r["time_ms"] for recs in refs.values() for r in recs) // 1000 * 1000
    slowlog, events = api.slowlog(start, end), api.events()
    seqs = dict(sql(dcslog_server, "SELECT id, seq FROM events"))
    # What the test did is there: every ECHO once, on its node; the failover's events.
    echoed = {e["command"].split(" ", 1)[1]: e for e in slowlog if e["command"].startswith("ECHO ")}
    assert set(sent) <= set(echoed)
    assert all(f"{echoed[w]['node_ip']}:{echoed[w]['node_port']}" in w for w in sent)
    kinds_seen = {(e["replication_id"], e["type"]) for e in events}
    assert {(by_address[promoted.address], "role_change"), (by_address[promoted.address], "failover"),
            (by_address[primary.address], "role_change")} <= kinds_seen

    tz = ZoneInfo(zone)
    want = brute_force(logs=logs, nodes=nodes, slowlog=slowlog, events=events, seqs=seqs, start=start, end=end, tz=tz)
    assert {i["kind"] for i in want} == set(KINDS)
    assert sum(1 for i in want if i["kind"] == "runlog" and "mark timeline-" in i["record"]["message"]) == len(sent)
    assert ties(want), "no two items share a millisecond: the slow log's whole seconds should"

    for limit in (1, 2, 3, 10, 1000):
        got, pages = api.walk(limit, start_time=start, end_time=end)
        assert_same(got, want)
    [source_set] = {json.dumps(sorted(s["replication_id"] for s in p["sources"])) for p in pages}
    assert json.loads(source_set) == sorted(nodes)
    assert all(s["read"] and s["error"] is None for p in pages for s in p["sources"])

    check_the_timeline_command(dcslog_server, monkeypatch, tmp_path, capsys, imported["instance_id"], want, start,
                               end, promoted)

    # Every item's cursor continues right after it, ties included.
    for k in range(len(got) - 1):
        body = api.page(start_time=start, end_time=end, limit=2, cursor=got[k]["cursor"])
        assert_same(body["items"], want[k + 1:k + 3])
    assert api.page(start_time=start, end_time=end, cursor=got[-1]["cursor"]) == {
        "items": [], "next_cursor": None, "sources": pages[0]["sources"]}

    # Filters, applied to the merge, each paged with small limits.
    promoted_id, primary_id = by_address[promoted.address], by_address[primary.address]
    cases = [
        {"kind": "event"}, {"kind": "slowlog"}, {"kind": "runlog"}, {"kind": "runlog,event"},
        {"kind": "slowlog,event,slowlog"},
        {"level": "warning"},
        {"replication_id": promoted_id},
        {"replication_id": f"{promoted_id},{primary_id}", "kind": "slowlog,runlog", "level": "notice"},
    ]
    for case in cases:
        kinds = tuple(case["kind"].split(",")) if "kind" in case else KINDS
        only = case["replication_id"].split(",") if "replication_id" in case else None
        expected = brute_force(logs=logs, nodes=nodes, slowlog=slowlog, events=events, seqs=seqs, start=start,
                               end=end, tz=tz, kinds=kinds, only=only, level=case.get("level"))
        assert expected and len(expected) < len(want), case
        for limit in (1, 3):
            got_case, case_pages = api.walk(limit, start_time=start, end_time=end, **case)
            assert_same(got_case, expected)
        expected_sources = sorted(only or nodes) if "runlog" in kinds else []
        assert sorted(s["replication_id"] for s in case_pages[-1]["sources"]) == expected_sources

    # A window cut inside the timeline: its items, exactly.
    middle = want[len(want) // 3]["time_ms"], want[2 * len(want) // 3]["time_ms"]
    got, _ = api.walk(4, start_time=middle[0], end_time=middle[1])
    assert_same(got, [i for i in want if middle[0] <= i["time_ms"] < middle[1]])
    api.close()


def check_the_timeline_command(server, monkeypatch, tmp_path, capsys, instance_id: str, want: list[dict],
                               start: int, end: int, promoted) -> None:
    configure_client(server, monkeypatch, tmp_path)
    window = ["--from", str(start), "--to", str(end)]
    code, out, err = run(capsys, "timeline", "--instance", instance_id, *window)
    assert code == 0, err
    lines = out.splitlines()
    continuation = sum(len(i["record"]["lines"]) for i in want if i["kind"] == "runlog")
    assert len(lines) == len(want) + continuation
    heads = [line for line in lines if not line.startswith("    ")]
    assert len(heads) == len(want)
    for line, item in zip(heads, want, strict=True):
        match = LINE.fullmatch(line)
        assert match, line
        moment, node, role, kind, what = match.groups()
        assert moment == item["time"][:23].replace("T", " ")
        assert node == f"{item['replication_ip']}:{item['replication_port']}" and kind == item["kind"]
        assert role == ROLE_LETTERS.get(item["role"], "-")
        if item["kind"] == "slowlog":
            assert what == f"SLOW {item['slowlog']['duration']} ms {item['slowlog']['command']}"
        elif item["kind"] == "event":
            assert what == f"{item['event']['type']}: {item['event']['details']['message']}"
        else:
            assert what == f"{LEVEL_MARKS[item['record']['level']]} {item['record']['message']}".rstrip()
    # --json: the items as the endpoint sent them, one a line; --node and --kind filter.
    code, out, err = run(capsys, "timeline", "--instance", instance_id, *window, "--json", "--kind", "event",
                         "--node", promoted.address)
    assert code == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    assert_same(got, [i for i in want if i["kind"] == "event" and i["replication_ip"] == promoted.host
                      and i["replication_port"] == promoted.port])
    assert {i["event"]["type"] for i in got} >= {"role_change", "failover"}
    code, out, err = run(capsys, "timeline", "--instance", instance_id, *window, "--limit", "5", "--kind",
                         "slowlog,runlog", "--level", "warning")
    assert code == 0 and len(out.splitlines()) == 5 and "--limit 5" in err
    code, out, err = run(capsys, "timeline", "--instance", instance_id, "--kind", "nonsense")
    assert code != 0 and "kind" in err
    hand_back_stderr(server, capsys)


# --- 2. ties: three kinds and several nodes in one millisecond --------------------------------------


@pytest.mark.parametrize("backend_env", ["embedded", "postgres-s3"], indirect=True)
def test_cursors_across_kinds_and_nodes_in_one_millisecond(backend_env, dcslog_env, redis_replicated, monkeypatch,
                                                            tmp_path):
    """Slow-log entries (whole seconds: several nodes' entries share a millisecond), run-log entries
    written at exactly those milliseconds on every node, and the promoted node's role_change and
    failover (one millisecond, two seqs) moved onto one of them: pages of 1, 2, 3 items, every
    cursor, a level filter, and pages cut by the byte budget, on SQLite and on PostgreSQL."""
    with started_server(monkeypatch) as server:
        primary, (promoted, other) = redis_replicated.primary, redis_replicated.replicas
        everyone = [primary, promoted, other]
        for node in everyone:
            command(node, "CONFIG", "SET", "slowlog-log-slower-than", "0")
        # The nodes' run logs as dcslog reads them: files the test writes, entry by entry, at the
        # instants it chooses (the test writes them in time order, as a log is written).
        began = datetime.now(UTC) - timedelta(minutes=10)
        files = {}
        for node in everyone:
            files[node.address] = tmp_path / f"{node.host}.log"
            files[node.address].write_bytes(write_entry(began, "Server initialized"))
        imported = server.import_instance(primary.url, "proj-a", "cache",
                                          *[arg for node in everyone
                                            for arg in ("--log-file", f"{node.address}={files[node.address]}")])
        nodes, by_address = node_info(imported)
        api = Timeline(server, imported["instance_id"])
        server.harvest()
        slow_commands(everyone, "tie", 4)
        command(promoted, "REPLICAOF", "NO", "ONE")
        server.harvest()
        promoted_id = by_address[promoted.address]
        start, end = int(began.timestamp() * 1000), now_ms() + 1
        slowlog = api.slowlog(start, end)
        seconds = sorted({utc_seconds_ms(e["start_time"]) for e in slowlog})
        # The promotion's two events onto a second that slow commands of several nodes share.
        shared = next(t for t in seconds
                      if len({e["replication_id"] for e in slowlog if utc_seconds_ms(e["start_time"]) == t}) > 1)
        sql(server, "UPDATE events SET time_ms = :t WHERE replication_id = :rid", t=shared, rid=promoted_id)
        events = api.events()
        assert sorted(e["type"] for e in events) == ["failover", "role_change"]
        seqs = dict(sql(server, "SELECT id, seq FROM events"))
        # Run-log entries at exactly those milliseconds (and around them), two or three per node each.
        for n, node in enumerate(everyone):
            role = "master" if node is not other else "slave"
            with files[node.address].open("ab") as log:
                for t in seconds:
                    for at, level in ((t - 1, "verbose"), (t, "notice"), (t, "warning"), (t, "notice"),
                                      (t + 1, "warning")):
                        if at == t - 1 and n == 1:
                            continue  # not every node at every instant
                        moment = datetime.fromtimestamp(at / 1000, UTC)
                        log.write(write_entry(moment, f"{node.address} at {at}", role=role, level=level))

        logs = {by_address[address]: [path] for address, path in files.items()}
        want = brute_force(logs=logs, nodes=nodes, slowlog=slowlog, events=events, seqs=seqs, start=start, end=end)
        three = [t for t in {i["time_ms"] for i in want}
                 if {i["kind"] for i in want if i["time_ms"] == t} == set(KINDS)]
        assert three == [shared]
        at_shared = [i for i in want if i["time_ms"] == shared]
        assert len({i["replication_id"] for i in at_shared if i["kind"] == "runlog"}) == 3
        assert len({i["replication_id"] for i in at_shared if i["kind"] == "slowlog"}) > 1

        for limit in (1, 2, 3):
            got, _ = api.walk(limit, start_time=start, end_time=end)
            assert_same(got, want)
        for k in range(len(got) - 1):
            body = api.page(start_time=start, end_time=end, limit=3, cursor=got[k]["cursor"])
            assert_same(body["items"], want[k + 1:k + 4])
        # The shared millisecond alone, one item a page.
        got, _ = api.walk(1, start_time=shared, end_time=shared + 1)
        assert_same(got, at_shared)

        warnings = brute_force(logs=logs, nodes=nodes, slowlog=slowlog, events=events, seqs=seqs, start=start,
                               end=end, level="warning")
        got, _ = api.walk(2, start_time=start, end_time=end, level="warning")
        assert_same(got, warnings)

        # A page stops once the run logs have read its byte budget, with what it has: here at the
        # first item it examines. Pages that examined only entries the level filter turned away
        # hold nothing, and still move on.
        monkeypatch.setattr(records_service, "PAGE_BUDGET", 1)
        got, pages = api.walk(1000, start_time=start, end_time=end, level="warning")
        assert_same(got, warnings)
        assert any(not p["items"] and p["next_cursor"] for p in pages)
        got, _ = api.walk(1000, start_time=start, end_time=end)
        assert_same(got, want)
        api.close()


# --- 3. errors and access ------------------------------------------------------------------------------


def test_errors_and_access(dcslog_server, redis_standalone):
    instance_id = dcslog_server.import_instance(redis_standalone.url)["instance_id"]
    api = Timeline(dcslog_server, instance_id)
    dcslog_server.harvest()
    assert api.page()["next_cursor"] is None  # the last hour, by default, read to its end
    good = api.page(start_time=0, end_time=now_ms(), limit=1)
    record_id = f"{now_ms()}_0_{'0' * 8}-0000-4000-8000-{'0' * 12}"
    bad_cursors = ["x", "!!!!", base64.urlsafe_b64encode(b"q.1.2").decode(), record_id,
                   base64.urlsafe_b64encode(b"s.1.7").decode(), base64.urlsafe_b64encode(b"r.1.nope.0").decode()]
    for cursor in bad_cursors:
        assert api.error(cursor=cursor) == (400, "DCS.4800", "Invalid cursor in the request."), cursor
    for params, name in [({"kind": "slow"}, "kind"), ({"kind": "event,"}, "kind"), ({"limit": 0}, "limit"),
                         ({"limit": 1001}, "limit"), ({"level": "loud"}, "level"), ({"start_time": "x"}, "start_time"),
                         ({"replication_id": "nope"}, "replication_id"),
                         ({"replication_id": "3f1d2c4e-0000-4000-8000-000000000000"}, "replication_id")]:
        assert api.error(**params) == (400, "DCS.4800", f"Invalid {name} in the request."), params
    assert api.error(start_time=2000, end_time=1999)[:2] == (400, "DCS.4025")
    if good["next_cursor"]:  # a cursor of this endpoint is taken
        assert api.get(cursor=good["next_cursor"]).status_code == 200
    # Another project's instance is not found, as everywhere; no credentials, no answer.
    dcslog_server.credentials("proj-b")
    other = Timeline(dcslog_server, instance_id, project="proj-b")
    response = other.get()
    assert response.status_code == 404 and response.json()["error_code"] == "DCS.3022"
    assert httpx.get(f"{api.base}/timeline").json()["error_code"] == "DCS.1003"
    api.close()
    other.close()


def test_a_node_whose_log_cannot_be_read_is_named_in_sources(dcslog_server, redis_standalone, monkeypatch, tmp_path,
                                                             capsys):
    """Its run-log records are missing, the rest is there: a partial answer says it is partial."""
    node = redis_standalone
    command(node, "CONFIG", "SET", "slowlog-log-slower-than", "0")
    missing = tmp_path / "gone" / "redis.log"
    imported = dcslog_server.import_instance(node.url, "proj-a", "cache", "--log-file", f"{node.address}={missing}")
    nodes, by_address = node_info(imported)
    api = Timeline(dcslog_server, imported["instance_id"])
    sent = slow_commands([node], "unread", 2)
    dcslog_server.harvest()
    start, end = now_ms() // 1000 * 1000 - 60_000, now_ms() + 1
    want = brute_force(logs={}, nodes=nodes, slowlog=api.slowlog(start, end), events=api.events(), seqs={},
                       start=start, end=end)
    assert sum(1 for i in want if i["slowlog"]["command"].startswith("ECHO timeline-unread")) == len(sent)
    got, pages = api.walk(3, start_time=start, end_time=end)
    assert_same(got, want)
    for page in pages:
        [source] = page["sources"]
        assert source["replication_id"] == by_address[node.address]
        assert not source["read"] and "not found" in source["error"]

    configure_client(dcslog_server, monkeypatch, tmp_path)
    code, out, err = run(capsys, "timeline", "--instance", imported["instance_id"], "--from", str(start), "--to",
                         str(end))
    assert code == 0 and len(out.splitlines()) == len(want)
    assert f"warning: {node.address} not read: " in err and "not found" in err
    hand_back_stderr(dcslog_server, capsys)
    api.close()
