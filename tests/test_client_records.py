"""``dcslog logs search|tail`` against a small fake of the records endpoint (SPEC section 6).

The fake (``FakeRecords``) serves ListGroupReplicationInfo and the records query as the
contract describes them, over real HTTP in a thread: AK/SK signatures checked with the
verifier's own code, windows, filters, cursors, and a scan budget that makes it answer
short pages, empty ones even, while ``next_cursor`` is not null (as the real endpoint
bounds the bytes one request scans); with ``Accept: application/x-ndjson`` it streams
every matching record. What the client should print is worked out here from the fake's
data, by the test's own sorting, filtering and formatting.

``logs tail -f`` is tested against the real thing instead (``LiveLog``): `dcslog serve` as a
process, which a test can crash and start again, serving a real redis-server whose run log
is a file the test writes; what should be printed is worked out from what the test wrote.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from dcslog import cli, errors
from dcslog.client.records import RecordPrinter
from dcslog.signing import SignedRequest, parse_authorization, verify_signature
from dcslog.testing.processes import stop_processes
from dcslog.testing.waiting import answers, wait_for

PROJECT, AK, SK = "proj-r", "AKRECORDSFAKE0000001", "secret-of-the-fake-endpoint"
INSTANCE = "6d1c9d1e-3b54-4d43-9a5e-0c1f4f1e2a10"
ZONE = timezone(timedelta(hours=8))  # the instance's time zone: records' `time` carries +08:00
LEVELS = ["debug", "verbose", "notice", "warning"]
LETTER = {"master": "M", "slave": "S", "child": "C", "sentinel": "X"}
MARK = {"debug": ".", "verbose": "-", "notice": "*", "warning": "#"}
# group, replication id, ip, port, role. 10.0.0.1 has two nodes; 10.0.0.12 one.
NODES = [("group-0", "a0a0a0a0-0000-4000-8000-00000000000a", "10.0.0.1", 6379, "master"),
         ("group-0", "b0b0b0b0-0000-4000-8000-00000000000b", "10.0.0.12", 6379, "slave"),
         ("group-1", "c0c0c0c0-0000-4000-8000-00000000000c", "10.0.0.1", 6380, "master")]
A, B, C = (n[1] for n in NODES)
ADDRESS = {rid: f"{ip}:{port}" for _, rid, ip, port, _ in NODES}
WIDTH = max(len(a) for a in ADDRESS.values())
DCSLOG = [sys.executable, "-m", "dcslog.cli"]


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that stops reading a stream (`| head`) is no news


def now_ms() -> int:
    return int(time.time() * 1000)


class FakeRecords:
    """The records endpoint of one instance; ``entries[rid]`` is a node's log, oldest first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, list[dict]] = {rid: [] for _, rid, *_ in NODES}
        self.unread: dict[str, str | None] = {}  # replication_id → why it cannot be read
        self.budget = 1000  # entries one request may examine (the byte bound, in entries)
        self.requests: list[dict] = []  # every records query: its parameters, Accept, and what it answered
        self.server = QuietServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- data ---------------------------------------------------------------------------------

    def add(self, rid: str, time_ms: int, level: str = "notice", message: str = "", lines: list[str] | None = None,
            role: str | None = None) -> dict:
        """Append an entry to node ``rid``'s log; returns its record."""
        index = [n[1] for n in NODES].index(rid)
        group, _, ip, _, node_role = NODES[index]
        with self.lock:
            seq = len(self.entries[rid])
            moment = datetime.fromtimestamp(time_ms / 1000, ZONE)
            record = {"id": f"r{time_ms:013d}.{index}.{seq:06d}",
                      "time": moment.isoformat(timespec="milliseconds"), "time_ms": time_ms,
                      "replication_id": rid, "replication_ip": ip, "group_name": group,
                      "role": role or node_role, "pid": 4000 + index, "level": level,
                      "message": message or f"entry {seq} of {ip}", "lines": lines or [], "format": "legacy"}
            self.entries[rid].append(record)
            return record

    @staticmethod
    def key(record_or_cursor) -> tuple[int, int, int]:
        """The merged order: time, then node, then position in the node's log (ids and cursors spell it)."""
        text = record_or_cursor["id"] if isinstance(record_or_cursor, dict) else record_or_cursor
        time_ms, node, seq = text[1:].split(".")
        return int(time_ms), int(node), int(seq)

    # -- the endpoint -------------------------------------------------------------------------

    def _answer(self, query: dict[str, str], stream: bool) -> tuple[int, dict | list[dict], list[dict]]:
        """(status, body or records, sources) of a records query."""
        end = int(query.get("end_time", now_ms()))
        start = int(query.get("start_time", end - 3600_000))
        if end < start:
            return 400, error_body("DCS.4025", "end_time is before start_time."), []
        wanted = query["replication_id"].split(",") if query.get("replication_id") else list(self.entries)
        if any(rid not in self.entries for rid in wanted):
            return 400, error_body("DCS.4800", "Invalid replication_id."), []
        limit = int(query.get("limit", 100))
        if not 1 <= limit <= 1000:
            return 400, error_body("DCS.4800", "Invalid limit."), []
        desc = query.get("sort_dir") == "desc"
        keyword, insensitive = query.get("keyword"), query.get("case") == "insensitive"
        min_rank = LEVELS.index(query["level"]) if query.get("level") else 0
        with self.lock:
            candidates = sorted((r for rid in wanted if rid not in self.unread for r in self.entries[rid]
                                 if start <= r["time_ms"] < end), key=self.key, reverse=desc)
        if query.get("cursor"):
            after = self.key(query["cursor"])
            candidates = [r for r in candidates if (self.key(r) < after if desc else self.key(r) > after)]

        def matches(r: dict) -> bool:
            text = "\n".join([r["message"], *r["lines"]])
            found = keyword is None or (keyword.lower() in text.lower() if insensitive else keyword in text)
            return found and LEVELS.index(r["level"]) >= min_rank and query.get("role") in (None, r["role"])

        sources = [{"replication_id": rid, "replication_ip": ADDRESS[rid].split(":")[0],
                    "live": None if rid in self.unread else "file", "read": rid not in self.unread,
                    "error": self.unread.get(rid), "collected_days": 0} for rid in wanted]
        if stream:
            return 200, [r for r in candidates if matches(r)], sources
        records: list[dict] = []
        examined = 0
        for r in candidates:
            if examined == self.budget or len(records) == limit:
                break
            examined += 1
            if matches(r):
                records.append(r)
        more = examined < len(candidates)
        next_cursor = ("p" + candidates[examined - 1]["id"][1:]) if more and examined else None
        return 200, {"records": records, "next_cursor": next_cursor, "scanned_bytes": 100 * examined,
                     "sources": sources}, sources

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def send_json(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Request-Id", "fake-request")
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    _, signed, signature = parse_authorization(headers.get("authorization", ""))
                    verify_signature(SignedRequest("GET", parts.path, parts.query, headers, b""), (signed, signature),
                                     SK, clock_skew=900)
                except errors.DcsError as exc:
                    return self.send_json(401, error_body(exc.error_code, exc.error_msg))
                query = dict(parse_qsl(parts.query))
                if parts.path == f"/v2/{PROJECT}/instance/{INSTANCE}/groups":
                    return self.send_json(200, {"group_list": groups()})
                if parts.path != f"/v2/{PROJECT}/instances/{INSTANCE}/redislog/records":
                    return self.send_json(404, error_body("DCS.3022", "The instance does not exist."))
                stream = headers.get("accept") == "application/x-ndjson"
                status, body, sources = fake._answer(query, stream)
                with fake.lock:
                    fake.requests.append({"query": query, "stream": stream,
                                          "answered": len(body) if stream else len(body.get("records", [])),
                                          "next_cursor": None if stream else body.get("next_cursor")})
                if status != 200 or not stream:
                    return self.send_json(status, body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("X-Dcslog-Sources", json.dumps(sources))
                self.end_headers()  # no length: the stream ends when the connection closes (HTTP/1.0)
                for record in body:
                    self.wfile.write(json.dumps(record).encode() + b"\n")

        return Handler


def error_body(code: str, message: str) -> dict:
    return {"error_code": code, "error_msg": message}


def groups() -> list[dict]:
    out: dict[str, list[dict]] = {}
    for group, rid, ip, port, role in NODES:
        out.setdefault(group, []).append({"replication_id": rid, "replication_ip": ip, "replication_port": port,
                                          "replication_role": role, "status": "Active"})
    return [{"group_name": g, "replication_list": nodes} for g, nodes in out.items()]


@pytest.fixture
def fake(monkeypatch, tmp_path) -> Iterator[FakeRecords]:
    server = FakeRecords()
    for name in list(os.environ):
        if name.startswith("DCSLOG_") or name == "NO_COLOR":
            monkeypatch.delenv(name)
    for name, value in client_env(server.url, tmp_path).items():
        if name.startswith("DCSLOG_"):
            monkeypatch.setenv(name, value)
    yield server
    server.close()


def client_env(url: str, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCSLOG_")}
    env.update({"DCSLOG_ENDPOINT": url, "DCSLOG_PROJECT_ID": PROJECT, "DCSLOG_AK": AK, "DCSLOG_SK": SK,
                "DCSLOG_PROFILE_FILE": str(tmp_path / "no-profile.toml")})
    return env


def populate(fake: FakeRecords, base_ms: int) -> None:
    """Three nodes' logs over 20 minutes from ``base_ms``, with ties across nodes, every level and role,
    continuation lines, keywords in either case; one entry two hours before, outside the default window."""
    fake.add(A, base_ms - 2 * 3600_000, "warning", "an old warning")
    for i in range(40):
        t = base_ms + i * 50_000
        level = LEVELS[i % 4]
        fake.add(A, t, level, f"Background saving {i}" if i % 5 == 0 else "")
        fake.add(B, t + (0 if i % 3 == 0 else 7), LEVELS[(i + 1) % 4],
                 "MASTER <-> REPLICA sync" if i % 6 == 0 else "",
                 lines=["=== REDIS BUG REPORT START ===", "  stack line"] if i == 9 else None)
        fake.add(C, t + 13, LEVELS[(i + 2) % 4], "background SAVING done" if i % 4 == 0 else "",
                 role="child" if i % 2 else None)


def everything(fake: FakeRecords) -> list[dict]:
    return sorted((r for rs in fake.entries.values() for r in rs), key=FakeRecords.key)


def shown(record: dict) -> list[str]:
    """How the client should print ``record``: the test's own reading of the format."""
    moment = datetime.fromtimestamp(record["time_ms"] / 1000, ZONE)
    head = (f"{moment:%Y-%m-%d %H:%M:%S}.{record['time_ms'] % 1000:03d} {ADDRESS[record['replication_id']]:<{WIDTH}} "
            f"{LETTER[record['role']]} {MARK[record['level']]} {record['message']}")
    return [head] + ["    " + line for line in record["lines"]]


def text_of(records: list[dict]) -> str:
    return "".join(line + "\n" for r in records for line in shown(r))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def search(capsys, *argv: str) -> tuple[int, str, str]:
    return run(capsys, "logs", "search", "--instance", INSTANCE, *argv)


# -- search ---------------------------------------------------------------------------------------

def test_search_pages_on_through_short_and_empty_pages(fake, capsys):
    populate(fake, now_ms() - 40 * 60_000)
    fake.budget = 3  # at most 3 entries examined a request: most pages of warnings hold 0 or 1
    warnings = [r for r in everything(fake) if r["level"] == "warning" and r["time_ms"] > now_ms() - 3600_000]
    code, out, err = search(capsys, "--level", "warning", "--limit", "0")
    assert code == 0, err
    assert out == text_of(warnings) and err == ""
    # --limit 0 is the NDJSON stream: one request. Pages: through empty ones, until the limit.
    assert [q["stream"] for q in fake.requests] == [True]

    fake.requests.clear()
    code, out, err = search(capsys, "--level", "warning", "--limit", str(len(warnings) - 1))
    assert code == 0, err
    assert out == text_of(warnings[:-1])
    answered = [(q["answered"], q["next_cursor"]) for q in fake.requests]
    assert any(n == 0 and cursor for n, cursor in answered), "no empty page with a next_cursor was served"
    assert sum(n for n, _ in answered) == len(warnings) - 1
    assert all(not q["stream"] for q in fake.requests)
    # each request asks only for what is still missing, and continues where the last one ended
    for before, after in zip(fake.requests, fake.requests[1:], strict=False):
        assert after["query"]["cursor"] == before["next_cursor"]
    assert [int(q["query"]["limit"]) for q in fake.requests][0] == len(warnings) - 1
    assert "note: stopped at --limit" in err

    fake.requests.clear()
    code, out, err = search(capsys, "--level", "warning", "--limit", "100")  # more than there are: to the end
    assert out == text_of(warnings) and fake.requests[-1]["next_cursor"] is None and "note:" not in err


def test_search_window_filters_order_and_limit(fake, capsys):
    base = now_ms() - 40 * 60_000
    populate(fake, base)
    records = everything(fake)
    recent = [r for r in records if r["time_ms"] >= base]
    # the default window is the last hour: not the old warning
    code, out, err = search(capsys, "--limit", "0")
    assert code == 0 and out == text_of(recent)
    code, out, _ = search(capsys, "--since", "3h", "--limit", "0")
    assert out == text_of(records)
    code, out, _ = search(capsys)  # default --limit 100, ascending
    assert out == text_of(recent[:100]) and len(recent) > 100
    code, out, _ = search(capsys, "--desc", "--limit", "7")
    assert out == text_of(recent[::-1][:7])

    start, end = base + 100_000, base + 600_000
    code, out, _ = search(capsys, "--from", str(start), "--to", str(end), "--limit", "0")
    assert out == text_of([r for r in records if start <= r["time_ms"] < end])
    assert fake.requests[-1]["query"]["start_time"] == str(start) and fake.requests[-1]["query"]["end_time"] == str(end)

    code, out, _ = search(capsys, "--grep", "saving", "-i", "--limit", "0")
    assert out == text_of([r for r in recent if "saving" in r["message"].lower()]) and out
    assert fake.requests[-1]["query"]["keyword"] == "saving" and fake.requests[-1]["query"]["case"] == "insensitive"
    code, out, _ = search(capsys, "--grep", "saving", "--limit", "0")
    assert out == text_of([r for r in recent if "saving" in r["message"]]) and out
    assert "case" not in fake.requests[-1]["query"]
    code, out, _ = search(capsys, "--grep", "BUG REPORT", "--limit", "0")  # found in a continuation line
    assert out == text_of([r for r in recent if r["lines"]]) and out.count("\n") == 3
    code, out, _ = search(capsys, "--role", "child", "--level", "notice", "--limit", "0")
    assert out == text_of([r for r in recent if r["role"] == "child" and r["level"] in ("notice", "warning")]) and out


def test_replicas_resolve_into_the_query(fake, capsys):
    populate(fake, now_ms() - 40 * 60_000)
    # a replication id, an IP:PORT, an IP only one node has; named twice, asked once
    code, out, err = search(capsys, "--replica", C, "--replica", "10.0.0.12:6379", "--replica", "10.0.0.12",
                            "--replica", "10.0.0.1:6379", "--limit", "0")
    assert code == 0, err
    assert fake.requests[-1]["query"]["replication_id"] == f"{C},{B},{A}"
    code, out, _ = search(capsys, "--replica", "10.0.0.12", "--limit", "0")
    recent = [r for r in everything(fake) if r["time_ms"] > now_ms() - 3600_000]
    assert out == text_of([r for r in recent if r["replication_id"] == B])
    code, out, err = search(capsys, "--limit", "0")
    assert "replication_id" not in fake.requests[-1]["query"]  # every node: the endpoint's default

    requests = len(fake.requests)
    code, out, err = search(capsys, "--replica", "10.0.0.1")  # two nodes there
    assert code == 2 and "2 nodes of instance" in err and len(fake.requests) == requests
    code, out, err = search(capsys, "--replica", "10.9.9.9:1")  # unknown: the endpoint says so
    assert code == 1 and "DCS.4800" in err and fake.requests[-1]["query"]["replication_id"] == "10.9.9.9:1"

    with pytest.raises(SystemExit) as exit_:
        search(capsys, "--since", "1h", "--from", "2h")
    assert exit_.value.code == 2
    code, out, err = search(capsys, "--since", "1h", "--to", "now")
    assert code == 2 and "--since and --from/--to" in err


def test_human_format_without_colour_off_a_terminal(fake, capsys):
    t = now_ms() - 60_000
    records = [fake.add(A, t, "warning", "Guru Meditation", lines=["=== REDIS BUG REPORT START ===", "frame 1"]),
               fake.add(B, t, "verbose", "Connected\x1b[2J to master"),
               fake.add(C, t + 1, "debug", "tick", role="sentinel")]
    code, out, err = search(capsys)
    assert code == 0, err
    moment = datetime.fromtimestamp(t / 1000, ZONE)
    stamp = f"{moment:%Y-%m-%d %H:%M:%S}.{t % 1000:03d}"
    later = datetime.fromtimestamp((t + 1) / 1000, ZONE)
    assert out.splitlines() == [
        f"{stamp} 10.0.0.1:6379  M # Guru Meditation",
        "    === REDIS BUG REPORT START ===",
        "    frame 1",
        f"{stamp} 10.0.0.12:6379 S - Connected\\x1b[2J to master",  # no control character reaches a terminal
        f"{later:%Y-%m-%d %H:%M:%S}.{(t + 1) % 1000:03d} 10.0.0.1:6380  X . tick",
    ]
    assert "\x1b" not in out
    assert out == text_of(records).replace("\x1b", "\\x1b")


def test_colour_by_level_only_when_asked():
    record = {"id": "x", "time": "2026-11-26T14:03:07.123+08:00", "time_ms": 1795932187123, "replication_id": A,
              "replication_ip": "10.0.0.1", "role": "master", "level": "warning", "message": "m", "lines": ["l"]}
    coloured = RecordPrinter({A: "10.0.0.1:6379"}, colour=True)
    assert coloured.lines(record) == ["\x1b[1;31m2026-11-26 14:03:07.123 10.0.0.1:6379 M # m\x1b[0m",
                                      "\x1b[1;31m    l\x1b[0m"]
    assert coloured.lines({**record, "level": "notice"})[0] == "2026-11-26 14:03:07.123 10.0.0.1:6379 M * m"
    assert coloured.lines({**record, "level": "debug"})[0].startswith("\x1b[2m")
    assert coloured.lines({**record, "level": "verbose"})[0].startswith("\x1b[2m")
    plain = RecordPrinter({A: "10.0.0.1:6379"}, colour=False)
    assert plain.lines(record) == ["2026-11-26 14:03:07.123 10.0.0.1:6379 M # m", "    l"]
    # a node the groups do not list: its IP, and port when the record has one
    elsewhere = {"replication_id": "z", "replication_ip": "10.1.1.1", "replication_port": 7000}
    assert plain.node(elsewhere) == "10.1.1.1:7000"
    out = io.StringIO()
    RecordPrinter({}, json_lines=True, out=out).print([record, record])
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [record, record]


def test_json_is_ndjson_of_the_records_as_sent(fake, capsys):
    populate(fake, now_ms() - 40 * 60_000)
    fake.budget = 5
    recent = [r for r in everything(fake) if r["time_ms"] > now_ms() - 3600_000]
    code, out, err = search(capsys, "--json", "--limit", "30")
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == recent[:30]
    assert not any(q["stream"] for q in fake.requests)
    code, out, err = search(capsys, "--json", "--limit", "0")
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == recent
    assert fake.requests[-1]["stream"]

    # An error is one more line of JSON (here the only one), with the keys every command's error has.
    code, out, err = run(capsys, "logs", "search", "--instance", "00000000-0000-4000-8000-000000000000", "--json")
    assert code == 1 and len(out.splitlines()) == 1
    assert json.loads(out)["error"]["error_code"] == "DCS.3022" and err.startswith("error: DCS.3022")


@pytest.mark.parametrize("limit", ["0", "100"])  # streamed, and paged
def test_unread_sources_are_warned_about_after_the_records(fake, capsys, limit):
    populate(fake, now_ms() - 40 * 60_000)
    fake.unread[C] = "agent http://10.0.0.1:8181 unreachable: connection refused"
    fake.unread[B] = None  # no reason given
    read = [r for r in everything(fake) if r["replication_id"] == A and r["time_ms"] > now_ms() - 3600_000]
    code, out, err = search(capsys, "--limit", limit)
    assert code == 0  # a partial answer is an answer
    assert out == text_of(read)
    assert sorted(err.splitlines()) == sorted([
        "warning: 10.0.0.1:6380 not read: agent http://10.0.0.1:8181 unreachable: connection refused",
        "warning: 10.0.0.12:6379 not read: no reason given"])
    code, out, err = search(capsys, "--limit", limit, "--json")
    assert code == 0 and [json.loads(line) for line in out.splitlines()] == read
    assert err.count("warning: ") == 2


# -- tail -----------------------------------------------------------------------------------------

def test_tail_prints_the_last_records_oldest_first(fake, capsys):
    populate(fake, now_ms() - 40 * 60_000)
    fake.budget = 4
    records = everything(fake)
    code, out, err = run(capsys, "logs", "tail", "--instance", INSTANCE)
    assert code == 0, err
    assert out == text_of(records[-10:])
    assert {q["query"]["sort_dir"] for q in fake.requests} == {"desc"}
    code, out, _ = run(capsys, "logs", "tail", "--instance", INSTANCE, "-n", "3", "--replica", B)
    assert out == text_of([r for r in records if r["replication_id"] == B][-3:])
    code, out, _ = run(capsys, "logs", "tail", "--instance", INSTANCE, "-n", "1000")  # the old one too: 1d back
    assert out == text_of(records)
    code, out, _ = run(capsys, "logs", "tail", "--instance", INSTANCE, "-n", "0")
    assert code == 0 and out == ""


def test_a_reader_that_goes_away_ends_the_search_quietly(fake, tmp_path):
    base = now_ms() - 30 * 60_000
    for i in range(5000):
        fake.add(A, base + i, "notice", "x" * 100)
    done = subprocess.run(f"{' '.join(DCSLOG)} logs search --instance {INSTANCE} --limit 0 | head -n 2",
                          shell=True, env=client_env(fake.url, tmp_path), capture_output=True, text=True, timeout=60)
    assert len(done.stdout.splitlines()) == 2 and done.stderr == ""


def test_the_window_is_in_utc_unless_it_says(fake, capsys):
    fake.add(A, now_ms() - 60_000)
    code, _, err = search(capsys, "--from", "2026-11-26T06:00:00", "--to", "2026-11-26T15:00:00+08:00")
    assert code == 0, err
    query = fake.requests[-1]["query"]
    assert int(query["start_time"]) == int(datetime(2026, 11, 26, 6, tzinfo=UTC).timestamp() * 1000)
    assert int(query["end_time"]) == int(datetime(2026, 11, 26, 7, tzinfo=UTC).timestamp() * 1000)


# -- tail -f against a real dcslog (`dcslog serve` as a process) and redis-server -------------------

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def admin(*args: str) -> dict:
    """An admin command in-process, on the database of the server the test started (DCSLOG_* set)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([*args, "--json"])
    assert code == 0, f"dcslog {' '.join(args)} failed"
    return json.loads(out.getvalue())


class LiveLog:
    """A dcslog serving one instance (a real redis-server) whose run log is a file this test writes:
    what each entry written looks like when `logs tail` prints it is kept in ``shown``."""

    def __init__(self, tmp_path, redis) -> None:
        self.env = {**os.environ, "DCSLOG_CLOCK_SKEW": "3"}  # a stale signature is refused within seconds
        self.url = f"http://127.0.0.1:{os.environ['DCSLOG_PORT']}"
        self.log_file = tmp_path / "redis.log"
        self.log_file.write_bytes(b"")
        self.server: subprocess.Popen | None = None
        self.start()
        imported = admin("instances", "import", "--project-id", "proj-t", "--name", "tail", "--redis", redis.url,
                         "--log-file", f"{redis.address}={self.log_file}")
        self.instance = imported["instance_id"]
        self.label = redis.address
        self.key = admin("credentials", "create", "--project-id", "proj-t", "--role", "viewer")
        self.token = admin("token", "create", "--project-id", "proj-t", "--role", "viewer")
        self.shown: list[str] = []  # every entry written, as the client should print it

    def start(self) -> None:
        self.server = subprocess.Popen([*DCSLOG, "serve", "--no-worker"], env=self.env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        wait_for(lambda: answers(self.url), timeout=30, what="dcslog serve to answer")

    def kill(self) -> None:
        """A crash: the connections it held are cut, nothing is said on them."""
        assert self.server is not None
        self.server.kill()
        self.server.wait()

    def write(self, *messages: str, moment: datetime | None = None, lines: tuple[str, ...] = ()) -> list[str]:
        """Entries written now (or at ``moment``), each with ``lines`` below it; returns how each prints."""
        printed = []
        with open(self.log_file, "ab") as f:
            for message in messages:
                t = (moment or datetime.now(UTC)).astimezone(UTC)
                ms = t.microsecond // 1000
                f.write(f"4242:M {t.day:02d} {MONTHS[t.month - 1]} {t.year} {t:%H:%M:%S}.{ms:03d} * {message}\n"
                        .encode() + b"".join(line.encode() + b"\n" for line in lines))
                printed += [f"{t:%Y-%m-%d %H:%M:%S}.{ms:03d} {self.label} M * {message}"]
                printed += ["    " + line for line in lines]
        self.shown += printed
        return printed

    def tail(self, *args: str, auth: str = "token") -> Tail:
        # As a user runs it: stdout to a pipe is block-buffered (no PYTHONUNBUFFERED), so what is
        # printed must be flushed record by record.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DCSLOG_") and k != "PYTHONUNBUFFERED"}
        env.update({"DCSLOG_ENDPOINT": self.url, "DCSLOG_PROJECT_ID": "proj-t",
                    "DCSLOG_PROFILE_FILE": "/nonexistent/profile.toml"})
        if auth == "token":
            env["DCSLOG_TOKEN"] = self.token["token"]
        else:
            env.update({"DCSLOG_AK": self.key["access_key"], "DCSLOG_SK": self.key["secret_key"]})
        return Tail([*DCSLOG, "logs", "tail", "--instance", self.instance, "-f", *args], env)

    def close(self) -> None:
        if self.server is not None:
            stop_processes(self.server)


class Tail:
    """`dcslog logs tail -f` as a process, its stdout read line by line in a thread."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=lambda: [self.lines.put(line.rstrip("\n")) for line in self.proc.stdout],
                                       daemon=True)
        self.reader.start()

    def take(self, n: int, timeout: float = 30) -> list[str]:
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            try:
                got.append(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"expected {n} lines, got {got}") from None
        return got

    def quiet(self, seconds: float = 3.0) -> bool:
        """Nothing more printed for ``seconds`` (more than the follow's 2 s hold of a newest entry)."""
        time.sleep(seconds)
        return self.lines.empty()

    def stop(self, sig: int | None = signal.SIGINT, timeout: float = 30) -> tuple[int, str]:
        """Send ``sig`` (None: wait for it to end by itself); returns the exit status and stderr."""
        if sig is not None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout)  # stdout is the reader's, to its end
        self.reader.join(10)
        return self.proc.returncode, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def live(dcslog_env, redis_standalone, tmp_path) -> Iterator[LiveLog]:
    served = LiveLog(tmp_path, redis_standalone)
    yield served
    served.close()


def test_tail_follow_prints_each_new_record_once_in_order(live):
    before = [live.write(f"before {i}", lines=("  a continuation",) if i == 3 else ())
              for i in range(5)]  # one entry each, but the fourth has a continuation line below it
    tail = live.tail("-n", "2")
    try:
        assert tail.take(3) == before[3] + before[4]  # the last 2 records, oldest first
        time.sleep(1.5)  # the follow is open now
        # An entry reaching the log late, stamped just after the last record shown (another host's
        # clock, a write that lagged): the follow starts strictly after that record, not "now".
        last_shown = datetime.fromisoformat(tail_time(before[4][0]))
        late = live.write("late but after the last shown", moment=last_shown + timedelta(milliseconds=1))
        new = live.write("new 0", "new 1", lines=("=== REDIS BUG REPORT START ===",)) + live.write("new 2")
        assert tail.take(len(late + new)) == late + new
        assert tail.quiet()
        more = live.write(*(f"burst {i}" for i in range(50)))
        assert tail.take(len(more)) == more
        assert tail.quiet()  # nothing printed twice
        # The log goes where dcslog does not look: the follow's sources say so, and the command warns;
        # a new log there is followed on.
        os.replace(live.log_file, f"{live.log_file}-elsewhere")
        time.sleep(1.5)
        live.log_file.write_bytes(b"")
        back = live.write("in a new log")
        assert tail.take(1) == back
        code, err = tail.stop()
    finally:
        tail.kill()
    assert code == 130, err
    assert err.splitlines() == [f"warning: {live.label} not read: log file {live.log_file} (and rotated copies) "
                                "not found on this machine", "error: interrupted"]
    assert tail.lines.empty()


def tail_time(line: str) -> str:
    """The time a printed record starts with, as ISO 8601 in UTC (the instance's zone here)."""
    day, clock = line.split(" ")[:2]
    return f"{day}T{clock}+00:00"


def test_tail_follow_goes_on_across_a_server_restart(live):
    """The API process dies mid-follow (SIGKILL: its connections are cut, nothing said on them);
    what is written while it is down and after it is back is printed once, in order, when a new
    process serves again. The client signs afresh: the server here refuses a signature 3 s old."""
    live.write("before 0", "before 1")
    tail = live.tail("-n", "1", auth="aksk")
    try:
        assert tail.take(1) == live.shown[-1:]
        first = live.write("to the first process 0", "to the first process 1")
        assert tail.take(2) == first
        time.sleep(max(0.0, tail.started + 6 - time.monotonic()))  # the first signature is stale now
        live.kill()
        down = live.write("while down 0", "while down 1", "while down 2")
        time.sleep(1)  # the client tries to follow again, and is refused a connection
        live.start()
        back = live.write("to the second process 0", "to the second process 1")
        assert tail.take(len(down + back)) == down + back
        assert tail.quiet()
        code, err = tail.stop()
    finally:
        tail.kill()
    assert code == 130, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].endswith("; following again"), err
    assert err.splitlines()[-1] == "error: interrupted" and "Traceback" not in err


def test_a_stopping_server_ends_its_follows_and_the_tail_goes_on(live):
    """SIGTERM to `dcslog serve` with a follow open: the server ends the stream at once (its
    shutdown does not wait out aiohttp's 60 s timeout for it) and exits; the client follows on
    from the next process, missing nothing."""
    live.write("before")
    tail = live.tail("-n", "1")
    try:
        assert len(tail.take(1)) == 1
        assert live.server is not None
        live.server.send_signal(signal.SIGTERM)
        live.server.wait(timeout=20)  # with the stream held open: 60 s
        down = live.write("while stopped")
        live.start()
        back = live.write("to the next process")
        assert tail.take(2) == down + back
        assert tail.quiet()
    finally:
        tail.kill()


@pytest.mark.parametrize("revoked", ["token", "access key"])
def test_tail_follow_ends_when_its_credential_is_revoked(live, revoked):
    """The endpoint ends a revoked caller's follow with `event: error` (DCS.1001): the command ends
    with it, as any DCS error ends a command (exit status 1, the error on stderr; with --json one
    more line)."""
    live.write("before")
    if revoked == "token":
        tail, revoke = live.tail("-n", "1"), ("token", "revoke", live.token["id"])
        message = "The token has been revoked."
    else:
        tail, revoke = live.tail("-n", "1", "--json", auth="aksk"), ("credentials", "revoke", live.key["access_key"])
        message = "The access key has been revoked."
    try:
        assert len(tail.take(1)) == 1
        time.sleep(1.5)  # the follow is open
        live.write("followed")
        assert len(tail.take(1)) == 1
        admin(*revoke[:2], "--project-id", "proj-t", revoke[2])
        code, err = tail.stop(None, timeout=15)
    finally:
        tail.kill()
    assert code == 1, err
    [line] = err.splitlines()
    assert line.startswith(f"error: DCS.1001: {message} [HTTP 401, request id ")
    if revoked == "access key":
        error = json.loads(tail.take(1)[0])["error"]
        assert {k: error[k] for k in ("exit_status", "status", "error_code", "error_msg")} == \
            {"exit_status": 1, "status": 401, "error_code": "DCS.1001", "error_msg": message}
    assert tail.lines.empty()


def test_tail_follow_json_is_the_records_as_sent_then_the_interruption(live):
    live.write("only")
    tail = live.tail("--json")
    try:
        first = json.loads(tail.take(1)[0])
        assert first["message"] == "only" and first["level"] == "notice" and first["role"] == "master"
        time.sleep(1.5)
        live.write("then this")
        second = json.loads(tail.take(1)[0])
        assert second["message"] == "then this" and second["id"] != first["id"]
        # each line is the record as the endpoint has it: the same as a search answers
        headers = {"X-Auth-Token": live.token["token"]}
        page = httpx.get(f"{live.url}/v2/proj-t/instances/{live.instance}/redislog/records", headers=headers).json()
        assert page["records"] == [first, second]
        code, err = tail.stop()
    finally:
        tail.kill()
    assert code == 130, err
    assert json.loads(tail.take(1)[0])["error"]["exit_status"] == 130
