"""Redis and Valkey under systemd without ``logfile``: their log read from the journal.

No systemd runs these tests' servers. Real ``redis-server`` and ``valkey-server`` processes log to
stdout (``logfile ""``); the test reads their stdout pipe as journald reads a unit's stdout
stream and turns each line into a journal entry as journald does (``journald-stream.c``):
``MESSAGE`` the line without its newline, ``_TRANSPORT=stdout``, ``_SYSTEMD_UNIT`` the unit,
``__REALTIME_TIMESTAMP`` the moment it was read, a line longer than ``LineMax`` (48 KiB) cut into
entries marked ``_LINE_BREAK=line-max``. The entries are written in the journal export format
(systemd's ``JOURNAL_EXPORT_FORMATS``) to ``systemd-journal-remote -o FILE.journal -``, which
writes a real journal file that ``journalctl --file``/``--directory`` reads, as dcslog does.

The expected day is computed from the captured stdout bytes themselves (tests/runlog_reference.py,
line by line), never from the journal.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import struct
import subprocess
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis.exceptions
from huaweicloudsdkdcs.v2 import CreateRedislogRequest

from dcslog.runlog import journal
from dcslog.runlog.grammar import Clock
from dcslog.testing.waiting import wait_for
from tests.redis_fixtures import valkey_server_path
from tests.runlog_reference import reference_day
from tests.test_agent import KEY, running_agent
from tests.test_redislog import download, wait_settled

ZONE = "Pacific/Kiritimati"  # UTC+14: a day taken in UTC instead of the instance's zone shows
TZ = ZoneInfo(ZONE)
LINE_MAX = 48 * 1024  # journald's default LineMax=
UNIT = "redis-server@6379.service"
BOOT_ID = "0123456789abcdef0123456789abcdef"


def journal_remote_path() -> str | None:
    """systemd-journal-remote (Debian's package of that name installs it outside PATH)."""
    found = shutil.which("systemd-journal-remote")
    for candidate in (found, "/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def export_entry(fields: list[tuple[str, bytes]]) -> bytes:
    """One entry in the journal export format: ``KEY=value`` lines, a binary-safe form for a value
    holding a newline or a byte that is not printable, a blank line after it."""
    out = bytearray()
    for key, value in fields:
        if any(b < 32 and b != 9 for b in value) or not _utf8(value):
            out += key.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
        else:
            out += key.encode() + b"=" + value + b"\n"
    return bytes(out) + b"\n"


def _utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


class Journald:
    """journald, as far as a unit's stdout stream goes: each line read from the process's stdout
    pipe becomes an entry (``entries``) at the time it was read. ``captured`` is exactly what stdout
    delivered. ``write`` turns the entries into a journal file."""

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.captured = bytearray()
        self.entries: list[tuple[int, list[tuple[str, bytes]]]] = []
        self.cut_lines = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._written = self._parts = 0

    def attach(self, proc) -> None:
        for pipe, keep in ((proc.stdout, True), (proc.stderr, False)):
            thread = threading.Thread(target=self._copy, args=(pipe, keep), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _copy(self, pipe, keep: bool) -> None:
        with pipe:
            while line := pipe.readline():
                if not keep:  # Redis writes nothing there once it logs; the unit here is stdout only
                    continue
                with self._lock:
                    self.captured += line
                text, end = (line[:-1], b"") if line.endswith(b"\n") else (line, b"eof")
                pieces = [text[i:i + LINE_MAX] for i in range(0, len(text), LINE_MAX)] or [b""]
                self.cut_lines += len(pieces) > 1
                for i, piece in enumerate(pieces):
                    brk = b"line-max" if i < len(pieces) - 1 else end
                    self.add(time.time_ns() // 1000, UNIT, piece, line_break=brk)

    def add(self, usec: int, unit: str, message: bytes, transport: bytes = b"stdout", line_break: bytes = b"",
            extra: list[tuple[str, bytes]] | None = None) -> None:
        fields = [("MESSAGE", message), ("_TRANSPORT", transport), ("_SYSTEMD_UNIT", unit.encode()),
                  ("PRIORITY", b"6"), ("SYSLOG_IDENTIFIER", b"redis-server")]
        if line_break:
            fields.append(("_LINE_BREAK", line_break))
        with self._lock:
            self.entries.append((usec, fields + (extra or [])))

    def wait_for_output(self, marker: bytes) -> None:
        wait_for(lambda: marker in self.captured, what=f"{marker!r} on the node's stdout")

    def join(self) -> None:
        for thread in self._threads:
            thread.join(10)

    def write(self) -> Path:
        """The entries so far, oldest first, as the journal file ``system.journal`` in the directory."""
        out = self.directory / "system.journal"
        out.unlink(missing_ok=True)
        with self._lock:
            entries = sorted(self.entries, key=lambda e: e[0])
        _journal_file(entries, out)
        return out

    def write_part(self) -> Path:
        """The entries added since the last part, as a journal file of their own beside the others
        (journalctl --directory reads them all as one journal), put in place when complete."""
        with self._lock:
            entries = sorted(self.entries[self._written:], key=lambda e: e[0])
            self._written = len(self.entries)
            self._parts += 1
        staging = self.directory.parent / f"{self.directory.name}-staging"
        staging.mkdir(exist_ok=True)
        out = staging / f"part-{self._parts}.journal"
        _journal_file(entries, out)
        return out.rename(self.directory / out.name)

    def captured_file(self) -> Path:
        path = self.directory.parent / f"{self.directory.name}-captured-stdout.log"
        path.write_bytes(bytes(self.captured))
        return path


def _journal_file(entries: list[tuple[int, list[tuple[str, bytes]]]], out: Path) -> None:
    """``entries`` written as the journal file ``out`` by systemd-journal-remote. One boot, its
    monotonic clock the realtime one, so that entries of several files order the same way."""
    stream = bytearray()
    for usec, fields in entries:
        stream += export_entry([("__REALTIME_TIMESTAMP", str(usec).encode()),
                                ("__MONOTONIC_TIMESTAMP", str(usec).encode()), ("_BOOT_ID", BOOT_ID.encode()),
                                *fields])
    remote = journal_remote_path()
    assert remote is not None
    subprocess.run([remote, "-o", str(out), "-"], input=bytes(stream), check=True, capture_output=True)


@pytest.fixture(scope="module")
def journal_tools(tmp_path_factory) -> None:
    """Skip unless journalctl can read a journal file systemd-journal-remote writes here."""
    if journal.journalctl_path() is None:
        pytest.skip("journalctl is not installed (Debian: package systemd)")
    if journal_remote_path() is None:
        pytest.skip("systemd-journal-remote is not installed (Debian: package systemd-journal-remote)")
    probe = Journald(tmp_path_factory.mktemp("journal-probe"))
    probe.add(time.time_ns() // 1000, UNIT, b"probe \xff")
    try:
        path = probe.write()
        got = list(journal.entries(journal.JournalLog(UNIT, str(path)), datetime.now(TZ) - timedelta(hours=1),
                                   datetime.now(TZ) + timedelta(hours=1)))
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"systemd-journal-remote or journalctl cannot write and read a journal file here: {exc}")
    if [text for _usec, text in got] != [b"probe \xff\n"]:
        pytest.skip(f"journalctl does not read back what systemd-journal-remote wrote here: {got!r}")


def today_there() -> date:
    return datetime.now(TZ).date()


def usec(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def add_yesterday(journald: Journald) -> bytes:
    """Yesterday's entries of the unit, journaled with yesterday's times, and what Redis wrote of
    them: the last entry written a millisecond before midnight, read by journald after it, with its
    continuation line (a crash report's) read after midnight too: both are yesterday's."""
    yesterday = today_there() - timedelta(days=1)
    midnight = datetime.combine(today_there(), datetime.min.time(), TZ)
    raw = bytearray()
    for second in range(0, 86400, 900):
        moment = datetime.combine(yesterday, datetime.min.time(), TZ) + timedelta(seconds=second)
        line = f"1:M {moment.strftime('%d %b %Y %H:%M:%S')}.000 * yesterday {second}\n".encode()
        raw += line
        journald.add(usec(moment) + 5, UNIT, line[:-1])
    last = midnight - timedelta(milliseconds=1)
    for i, line in enumerate([f"1:M {last.strftime('%d %b %Y %H:%M:%S')}.999 # yesterday at midnight\n".encode(),
                              b"    a line continuing it\n"]):
        raw += line
        journald.add(usec(midnight) + 500 + i, UNIT, line[:-1])
    return bytes(raw)


def add_neighbours(journald: Journald) -> None:
    """What --unit also matches, and another unit's Redis log: none of it is this node's log."""
    now = time.time_ns() // 1000
    line = datetime.now(TZ).strftime("7:M %d %b %Y %H:%M:%S.000 * another unit's Redis").encode()
    journald.add(now, "redis-server@6380.service", line)
    journald.add(now + 1, "init.scope", f"Started {UNIT} - Advanced key-value store.".encode(), transport=b"journal",
                 extra=[("UNIT", UNIT.encode()), ("_PID", b"1"), ("_UID", b"0")])
    journald.add(now + 2, UNIT, line + b" (syslog)", transport=b"syslog")


def start_node(redis_node_factory, monkeypatch, journald: Journald, valkey: bool, *args: str):
    monkeypatch.setenv("TZ", ZONE)  # the node's clock: its legacy timestamps are in ZONE
    try:
        return redis_node_factory("127.0.0.2", logfile="", args=list(args), pipes=journald.attach,
                                  server=valkey_server_path() if valkey else None)
    finally:
        monkeypatch.delenv("TZ")


def collect_today(server, instance_id: str):
    client = server.sdk()
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run", query_time=0))
    [item] = wait_settled(client, instance_id)
    assert item.time == today_there().isoformat()
    return client, item


def import_journal(server, node, journald: Journald, name: str) -> str:
    return server.import_instance(node.url, "proj-a", name, "--timezone", ZONE, "--journal", f"{node.address}={UNIT}",
                                  "--journal-path", str(journald.directory))["instance_id"]


def task_error(server, project_id: str, instance_id: str) -> str:
    """The reason the instance's (one) collection task gives."""
    token = server.cli("token", "create", "--project-id", project_id)["token"]
    tasks = httpx.get(f"{server.url}/v2/{project_id}/instances/{instance_id}/tasks", headers={"X-Auth-Token": token})
    return tasks.json()["tasks"][0]["error_msg"]


@pytest.mark.parametrize("valkey", [False, True], ids=["redis", "valkey"])
def test_a_node_logging_to_the_journal_is_collected_exactly(journal_tools, dcslog_server, redis_node_factory,
                                                            monkeypatch, tmp_path, valkey):
    """The day collected is byte for byte what the node wrote to stdout that day (bytes that are
    not UTF-8 too), read from a real journal file; yesterday's entries, another unit's, and what
    systemd logs about the unit are left out."""
    journald = Journald(tmp_path / "journal")
    old = add_yesterday(journald)
    node = start_node(redis_node_factory, monkeypatch, journald, valkey)
    with node.client() as c:
        for i in range(40):
            c.execute_command("DEBUG", "LOG", f"entry {i} <&> \"quoted\" \\ tab\there é ✓")
        c.execute_command("DEBUG", "LOG", b"bytes \xff\xfe that are not UTF-8")
        c.execute_command("DEBUG", "LOG", "last")
    journald.wait_for_output(b"DEBUG LOG: last")
    add_neighbours(journald)
    journald.write()
    instance_id = import_journal(dcslog_server, node, journald, "under-systemd")
    client, item = collect_today(dcslog_server, instance_id)
    assert item.status == "succeed", item
    body = download(client, instance_id, item.id).content
    old_path = tmp_path / "old-stdout.log"
    old_path.write_bytes(old)
    assert body == reference_day([old_path, journald.captured_file()], today_there(), TZ)
    assert body == bytes(journald.captured)  # today: everything the node wrote, and only that
    assert b"bytes \xff\xfe that are not UTF-8" in body
    assert b"another unit" not in body and b"Started" not in body and b"yesterday" not in body


def test_a_crash_report_with_lines_longer_than_journalds_line_max(journal_tools, dcslog_server, redis_node_factory,
                                                                   monkeypatch, tmp_path):
    """A client named with 60 KiB: the bug report's client list holds a line journald cuts into
    entries (``_LINE_BREAK=line-max``); the day is still the bytes Redis wrote, the report whole."""
    journald = Journald(tmp_path / "journal")
    node = start_node(redis_node_factory, monkeypatch, journald, False, "--crash-memcheck-enabled", "no")
    instance_id = import_journal(dcslog_server, node, journald, "crashed")
    long_name = "n" * 60_000
    with node.client() as named:
        named.client_setname(long_name)
        with node.client() as c, pytest.raises(redis.exceptions.ConnectionError):
            c.execute_command("DEBUG", "SEGFAULT")
    node.proc.wait(10)
    journald.join()
    assert journald.cut_lines >= 1, "no line was long enough for journald to cut"
    journald.write()
    client, item = collect_today(dcslog_server, instance_id)
    assert item.status == "succeed", item
    body = download(client, instance_id, item.id).content
    assert body == reference_day([journald.captured_file()], today_there(), TZ) == bytes(journald.captured)
    assert b"REDIS BUG REPORT START" in body and long_name.encode() in body


def test_a_journal_read_through_the_agent(journal_tools, dcslog_server, redis_node_factory, monkeypatch, tmp_path):
    """`dcslog agent --allow-unit` serves the unit's journal on its host (here a journal directory
    only the agent sees); a unit it does not allow is refused with a reason."""
    with running_agent(tmp_path, extra=("--allow-unit", "redis-server@*.service")) as (agent_url, log_dir,
                                                                                       remote_files):
        journald = Journald(remote_files / "journal")
        node = start_node(redis_node_factory, monkeypatch, journald, False)
        with node.client() as c:
            for i in range(30):
                c.execute_command("DEBUG", "LOG", f"through the agent {i}")
        journald.wait_for_output(b"through the agent 29")
        journald.write()
        common = ("--timezone", ZONE, "--agent", f"{node.address}={agent_url}", "--agent-key", KEY,
                  "--journal-path", f"{log_dir}/journal")
        instance_id = dcslog_server.import_instance(node.url, "proj-a", "remote", *common, "--journal",
                                                    f"{node.address}={UNIT}")["instance_id"]
        client, item = collect_today(dcslog_server, instance_id)
        assert item.status == "succeed", item
        body = download(client, instance_id, item.id).content
        assert body == reference_day([journald.captured_file()], today_there(), TZ) == bytes(journald.captured)
        other = dcslog_server.import_instance(node.url, "proj-b", "not-allowed", *common, "--journal",
                                              f"{node.address}=sshd.service")["instance_id"]
        client = dcslog_server.sdk("proj-b")
        client.create_redislog(CreateRedislogRequest(instance_id=other, log_type="run", query_time=0))
        [item] = wait_settled(client, other)
        assert item.status == "failed"
        assert "not served by this agent (--allow-unit)" in task_error(dcslog_server, "proj-b", other)


def test_without_journalctl_the_import_warns_and_the_collection_says_why(journal_tools, dcslog_server,
                                                                         redis_node_factory, monkeypatch, tmp_path,
                                                                         capsys):
    journald = Journald(tmp_path / "journal")
    node = start_node(redis_node_factory, monkeypatch, journald, False)
    journald.wait_for_output(b"Ready to accept connections")
    journald.write()
    empty = tmp_path / "no-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    instance_id = import_journal(dcslog_server, node, journald, "no-journalctl")
    assert "journalctl is not installed" in capsys.readouterr().err
    _client, item = collect_today(dcslog_server, instance_id)
    assert item.status == "failed"
    assert "journalctl is not installed" in task_error(dcslog_server, "proj-a", instance_id)


def test_journal_sources_are_named_and_checked():
    assert journal.render("redis-server.service") == "journal:redis-server.service"
    source = journal.render("redis@6379.service", "/var/log/journal/remote dir")
    parsed = journal.parse(source)
    assert parsed is not None and (parsed.unit, parsed.path) == ("redis@6379.service", "/var/log/journal/remote dir")
    assert journal.parse("/var/log/redis/redis.log") is None
    for bad in ("", "-x", "a b", "redis;rm", "unit?path=x"):
        with pytest.raises(ValueError):
            journal.render(bad)


def test_the_day_is_asked_of_the_journals_index(monkeypatch, tmp_path):
    """journalctl is run with the day (and its margin) as --since/--until, arguments as a list."""
    seen = []

    class Done(Exception):
        pass

    def popen(argv, **kwargs):
        seen.append(argv)
        raise Done

    monkeypatch.setattr(journal.subprocess, "Popen", popen)
    monkeypatch.setattr(journal, "journalctl_path", lambda: "/usr/bin/journalctl")
    with pytest.raises(Done):
        journal.write_day(journal.JournalLog(UNIT, str(tmp_path)), date(2026, 11, 26), 1, TZ)
    [argv] = seen
    start = datetime(2026, 11, 26, tzinfo=TZ) - journal.MARGIN
    end = datetime(2026, 11, 27, tzinfo=TZ) + journal.MARGIN
    assert argv[:6] == ["/usr/bin/journalctl", "--directory", str(tmp_path), "--unit", UNIT, "--since"]
    assert argv[6] == f"@{start.timestamp():.6f}" and argv[8] == f"@{end.timestamp():.6f}"
    assert "--output=export" in argv and "--all" in argv


def test_the_export_format_as_journalctl_writes_it():
    """Fields as text and in the binary form (a value with bytes that are not UTF-8, a newline,
    a blank line), a field given twice, _LINE_BREAK's endings, other transports; read in pieces
    of every size."""
    cases = [(b"1:M ok \xc3\xa9", b"stdout", None, b"1:M ok \xc3\xa9\n"),
             (b"b\xff\t", b"stdout", None, b"b\xff\t\n"),
             (b"two\n\nlines", b"stdout", None, b"two\n\nlines\n"),
             (b"piece", b"stdout", b"line-max", b"piece"),
             (b"cut at", b"stdout", b"nul", b"cut at\0"),
             (b"no newline", b"stdout", b"eof", b"no newline"),
             (b"from syslog", b"syslog", None, None),
             (b"", b"stdout", None, b"\n")]
    stream = bytearray()
    for i, (message, transport, line_break, _want) in enumerate(cases):
        fields = [("__CURSOR", b"s=1;i=%d" % i), ("__REALTIME_TIMESTAMP", b"%d" % (1796564999113551 + i)),
                  ("MESSAGE", message), ("_TRANSPORT", transport), ("MESSAGE", b"a second value")]
        stream += export_entry(fields + ([("_LINE_BREAK", line_break)] if line_break else []))
    want = [(1796564999113551 + i, w) for i, (*_, w) in enumerate(cases) if w is not None]
    for chunk in (1, 2, 7, 64, 1 << 20):
        got = [journal._entry(f) for f in journal.export_entries(io.BytesIO(bytes(stream)), chunk)]
        assert [g for g in got if g is not None] == want, chunk
    with pytest.raises(journal.JournalError):
        list(journal.export_entries(io.BytesIO(b"MESSAGE\n" + (50).to_bytes(8, "little") + b"short\n")))


@pytest.mark.parametrize(("stderr", "status", "reason"), [
    ("Hint: You are currently not seeing messages from other users and the system.", 0, "may not read the system"),
    ("Failed to open /x: No such file or directory", 1, "cannot read the journal of"),
])
def test_journalctl_failures_are_reasons_never_an_empty_day(monkeypatch, tmp_path, stderr, status, reason):
    fake = tmp_path / "bin" / "journalctl"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit {status}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    with pytest.raises(journal.JournalError, match=reason), open(tmp_path / "day", "wb") as out:
        journal.write_day(journal.JournalLog(UNIT), date(2026, 11, 26), out.fileno(), TZ)


@pytest.mark.parametrize("through_agent", [False, True], ids=["here", "agent"])
def test_records_of_a_node_in_the_journal_through_the_api(journal_tools, dcslog_server, redis_node_factory,
                                                          monkeypatch, tmp_path, through_agent):
    """The records endpoint reads the node's journal as its log (here, or through the agent): every
    record of the captured stdout, in order, with the reference's ids, walked in small pages; a
    keyword search finds its own, and another unit's entries are none of them."""
    from tests.records_reference import reference_records
    from tests.test_records import Api, assert_same, expected, node_info

    with contextlib.ExitStack() as stack:
        agent_url = None
        if through_agent:
            agent_url, log_dir, remote_files = stack.enter_context(
                running_agent(tmp_path, extra=("--allow-unit", UNIT)))
            journald, path = Journald(remote_files / "journal"), f"{log_dir}/journal"
        else:
            journald = Journald(tmp_path / "journal")
            path = str(journald.directory)
        node = start_node(redis_node_factory, monkeypatch, journald, True)
        with node.client() as c:
            for i in range(40):
                c.execute_command("DEBUG", "LOG", f"record {i} NEEDLE" if i % 9 == 0 else f"record {i}")
        journald.wait_for_output(b"record 39")
        add_neighbours(journald)
        journald.write()
        agent = ("--agent", f"{node.address}={agent_url}", "--agent-key", KEY) if agent_url else ()
        instance_id = dcslog_server.import_instance(node.url, "proj-a", "records", "--timezone", ZONE, "--journal",
                                                    f"{node.address}={UNIT}", "--journal-path", path,
                                                    *agent)["instance_id"]
        nodes, _ = node_info(dcslog_server.cli("instances", "show", instance_id))
        rid = next(iter(nodes))
        api = Api(dcslog_server, instance_id)
        now = int(time.time() * 1000)
        start, end = now - 3_600_000, now + 60_000
        exported, sources = api.export(start_time=start, end_time=end)
        found, _ = api.walk(3, start_time=start, end_time=end, keyword="needle", case="insensitive")
        walked, _ = api.walk(7, start_time=start, end_time=end)
        refs = {rid: reference_records(bytes(journald.captured), TZ)}
        assert sources[0]["read"] is True and sources[0]["error"] is None
        assert_same(exported, expected(refs, nodes, TZ, start=start, end=end))
        assert_same(walked, expected(refs, nodes, TZ, start=start, end=end))
        assert_same(found, expected(refs, nodes, TZ, start=start, end=end, keyword="needle", insensitive=True))
        assert len(found) == 5
        api.close()


def test_importing_a_node_on_stdout_points_at_journal(dcslog_server, redis_node_factory, capsys):
    node = redis_node_factory("127.0.0.3", logfile="")
    dcslog_server.import_instance(node.url)
    assert f"--journal {node.host}:{node.port}=UNIT" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "reason"), [
    (("--journal", "{a}=redis.service", "--log-file", "{a}=/var/log/redis/redis.log"), "both --log-file and --journal"),
    (("--journal", "{a}=redis server"), "is not a systemd unit name"),
    (("--journal", "{a}=redis.service", "--journal-path", "relative/dir"), "must be an absolute path"),
    (("--journal-path", "/var/log/journal"), "give those"),
    (("--journal", "127.0.0.9:1=redis.service"), "--journal"),
])
def test_an_import_with_a_journal_it_cannot_use_is_refused(dcslog_server, redis_node_factory, capsys, args, reason):
    from dcslog import cli

    node = redis_node_factory("127.0.0.3", logfile="")
    argv = ["instances", "import", "--project-id", "proj-a", "--name", "bad", "--redis", node.url,
            *(arg.format(a=node.address) for arg in args)]
    assert cli.main(argv) != 0
    assert reason in capsys.readouterr().err
    assert dcslog_server.cli("instances", "list", "--project-id", "proj-a") == []


def test_follow_a_node_in_the_journal(journal_tools, dcslog_server, redis_node_factory, monkeypatch, tmp_path):
    """Follow reads the journal afresh at every poll: records keep coming as journal files are
    added, none lost or repeated."""
    from tests.test_records_follow import Events, keyed

    journald = Journald(tmp_path / "journal")
    node = start_node(redis_node_factory, monkeypatch, journald, False)
    journald.wait_for_output(b"Ready to accept connections")
    journald.write_part()
    instance_id = import_journal(dcslog_server, node, journald, "followed")
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
    url = f"{dcslog_server.url}/v2/proj-a/instances/{instance_id}/redislog/records"
    start_ms = int(time.time() * 1000)
    events = Events(url, {"follow": "true", "keyword": "follow me"}, {"X-Auth-Token": token})
    try:
        time.sleep(0.5)
        with node.client() as c:
            for batch in range(3):
                for i in range(batch * 10, batch * 10 + 10):
                    c.execute_command("DEBUG", "LOG", f"follow me {i}")
                    time.sleep(0.02)
                journald.wait_for_output(f"follow me {batch * 10 + 9}".encode())
                journald.write_part()
        got = events.wait_for(30)
        assert not events.ended.is_set(), events.sources
        assert [r["message"] for r in got] == [f"DEBUG LOG: follow me {i}" for i in range(30)]
        ids = [(r["time_ms"], r["id"]) for r in got]
        assert ids == sorted(ids) and len(set(ids)) == 30
        assert all(r["time_ms"] >= start_ms for r in got) and keyed(got)
    finally:
        events.close()


def test_a_crash_is_told_from_the_journal(journal_tools, dcslog_server, redis_node_factory, monkeypatch, tmp_path):
    """The harvester reads the node's journal for events as any run log: the bug report is a crash,
    with the reason Redis gave."""
    from tests.test_events import Api as EventsApi
    from tests.test_runlog_events import HOLD_S, crash, told

    journald = Journald(tmp_path / "journal")
    node = start_node(redis_node_factory, monkeypatch, journald, False, "--crash-memcheck-enabled", "no")
    journald.wait_for_output(b"Ready to accept connections")
    journald.write_part()
    api = EventsApi(dcslog_server, import_journal(dcslog_server, node, journald, "crashing"))
    time.sleep(HOLD_S)
    dcslog_server.harvest()  # the first look: what came before is history
    crash(node, "SEGFAULT")
    journald.join()
    journald.write_part()
    time.sleep(HOLD_S)
    dcslog_server.harvest()
    [(kind, _, _, details)] = told(api)
    assert kind == "crash" and "crashed by signal: 11" in details["reason"]


def test_a_descending_scan_reads_the_journal_back_only_as_far_as_it_goes(monkeypatch, tmp_path):
    """Descending, the window is cut into parts in journal time, newest first, each read from the
    journal only when the scan reaches it: the newest entry (and the one before it, which ends its
    millisecond), found in the newest hour, cost one journalctl run, however far back the window
    reaches."""
    from contextlib import ExitStack

    from dcslog.runlog.records import Record, Scan, scan_node

    journald = Journald(tmp_path / "journal")
    now = datetime.now(TZ)
    old = now - timedelta(days=30)
    for moment, text in ((old, "a month ago"), (now - timedelta(minutes=10), "ten minutes ago"),
                         (now - timedelta(minutes=5), "five minutes ago")):
        journald.add(usec(moment), UNIT, moment.strftime(f"1:M %d %b %Y %H:%M:%S.000 * {text}").encode())
    journald.write()
    runs = []
    real = journal.entries
    monkeypatch.setattr(journal, "entries", lambda *a: runs.append(a[1:]) or real(*a))
    source = journal.JournalLog(UNIT, str(journald.directory))
    with ExitStack() as stack:
        segments = journal.scan_segments(source, 0, None, None, True, stack)
        assert len(segments) > 5
        newest = next(r for r in scan_node(segments, Scan(0, None, descending=True, clock=Clock(TZ)))
                      if isinstance(r, Record))
        assert newest.message == b"five minutes ago" and len(runs) == 1
        every = [r.message for r in scan_node(segments, Scan(0, None, descending=True, clock=Clock(TZ)))
                 if isinstance(r, Record)]
        assert every == [b"five minutes ago", b"ten minutes ago", b"a month ago"]
