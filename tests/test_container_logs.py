"""Redis and Valkey in containers: their log read from the container runtime's files.

No container runtime runs on these machines. Real ``redis-server`` and ``valkey-server``
processes log to stdout (``logfile ""``); the test reads their stdout and stderr pipes as a
runtime does and writes each line in the runtime's documented format with the time it was read,
cutting lines longer than 16 KiB into partial pieces and rotating the files as the runtime names
them. What was written, and how, comes from the runtimes' own sources, not from dcslog:

* Docker ``json-file`` (moby ``daemon/logger/copier.go``, ``jsonfilelog/jsonfilelog.go``,
  ``jsonlog/jsonlogbytes.go``, ``time_marshalling.go``, ``loggerutils/logfile.go``): a 16 KiB read
  buffer, a line longer than it logged in pieces whose ``log`` has no newline (the last has it),
  Go's own string escaping, ``time.RFC3339Nano`` in UTC; rotation renames ``<id>-json.log`` to
  ``.1`` (``.1`` to ``.2``…), ``compress`` gzips every rotated copy (``.N.gz``).
* CRI (containerd ``pkg/cri/io/logger.go``; CRI-O and podman's ``k8s-file`` through conmon):
  ``<time> <stream> <P|F> <text>``, lines cut at ``max_container_log_line_size`` (16 KiB), time
  ``time.RFC3339Nano`` in the node's zone (containerd) or with nine digits and ``±hh:mm``
  (conmon); the kubelet (``pkg/kubelet/logs/container_log_manager.go``) renames ``0.log`` to
  ``0.log.<yyyymmdd-hhmmss>`` and gzips the rotated copies but the newest.

The expected day is computed from the captured stdout bytes themselves (tests/runlog_reference.py,
line by line), never from the container files.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis.exceptions
from huaweicloudsdkdcs.v2 import CreateRedislogRequest

from dcslog.runlog import containers, search
from dcslog.runlog.containers import WrappedSource
from dcslog.runlog.records import Record, Scan, host_segments, scan_node
from dcslog.runlog.slicer import day_range, iter_day, write_day
from dcslog.runlog.sources import log_sources
from dcslog.testing.waiting import wait_for
from tests.redis_fixtures import valkey_server_path
from tests.runlog_reference import reference_day
from tests.test_agent import import_through_agent, running_agent
from tests.test_redislog import download, wait_settled

MAX_LINE = 16 * 1024
ZONE = "Pacific/Kiritimati"  # UTC+14: a day taken in UTC instead of the instance's zone shows
TZ = ZoneInfo(ZONE)


# --- the runtimes' formats, from their sources ----------------------------------------------------

def go_json_string(data: bytes) -> bytes:
    """moby's ffjsonWriteJSONBytesAsString: how json-file writes ``log``."""
    out = bytearray(b'"')
    i = 0
    while i < len(data):
        b = data[i]
        if b < 0x80:
            if 0x20 <= b and b not in b'\\"<>&':
                out.append(b)
            elif b in b'\\"':
                out += b"\\" + bytes([b])
            elif b == 0x0A:
                out += b"\\n"
            elif b == 0x0D:
                out += b"\\r"
            else:
                out += b"\\u00%02x" % b
            i += 1
            continue
        for size in (4, 3, 2, 1):  # the longest valid UTF-8 sequence here, else one invalid byte
            try:
                char = data[i:i + size].decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(char) == 1:
                break
        else:
            out += b"\\ufffd"
            i += 1
            continue
        out += b"\\u202%x" % (ord(char) & 0xF) if char in "\u2028\u2029" else char.encode()
        i += size
    return bytes(out + b'"')


def rfc3339(ns: int, digits: str = "trimmed", offset_minutes: int = 0) -> bytes:
    """Go's time.RFC3339Nano (trailing zeros of the fraction dropped, none at all when it is 0) or
    conmon's fixed nine digits, in a zone ``offset_minutes`` from UTC (``Z`` for UTC, as Go writes)."""
    seconds, nanos = divmod(ns, 10**9)
    local = datetime.fromtimestamp(seconds, UTC) + timedelta(minutes=offset_minutes)
    fraction = f"{nanos:09d}"
    if digits == "trimmed":
        fraction = fraction.rstrip("0")
    stamp = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "")
    if offset_minutes == 0 and digits == "trimmed":
        return (stamp + "Z").encode()
    sign = "-" if offset_minutes < 0 else "+"
    return (stamp + f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}").encode()


#: runtime style -> (file shape, fraction digits, zone offset of the times in minutes)
STYLES = {
    "docker": ("docker", "trimmed", 0),
    "containerd": ("cri", "trimmed", 0),
    "containerd-local-zone": ("cri", "trimmed", -180),
    "cri-o": ("cri", "fixed", 0),
    "podman-k8s-file": ("cri", "fixed", 330),
}


def wrap(style: str, ns: int, stream: bytes, piece: bytes, partial: bool) -> bytes:
    """One line of the runtime's file for ``piece`` read from ``stream`` at ``ns``."""
    shape, digits, offset = STYLES[style]
    if shape == "docker":
        log = piece if partial else piece + b"\n"
        return (b'{"log":' + go_json_string(log) + b',"stream":' + go_json_string(stream)
                + b',"time":"' + rfc3339(ns, "trimmed", 0) + b'"}\n')
    return rfc3339(ns, digits, offset) + b" " + stream + (b" P " if partial else b" F ") + piece + b"\n"


class Runtime:
    """A container runtime's logging, as far as files go: reads the process's stdout and stderr
    pipes (lines of at most 16 KiB), writes each line wrapped, rotates as the runtime does.
    ``captured`` is exactly what stdout delivered."""

    def __init__(self, directory: Path, style: str, *, rotate_bytes: int | None = None, compress: bool = True):
        self.directory, self.style, self.rotate_bytes, self.compress = directory, style, rotate_bytes, compress
        directory.mkdir(parents=True, exist_ok=True)
        self.shape = STYLES[style][0]
        self.path = directory / ("0123abcd-json.log" if self.shape == "docker" else "0.log")
        self.captured = bytearray()
        self.partials = 0
        self.rotations = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._clock = int(time.time())  # the kubelet's clock, for its rotated names (a second per rotation)

    def attach(self, proc) -> None:
        for pipe, stream in ((proc.stdout, b"stdout"), (proc.stderr, b"stderr")):
            thread = threading.Thread(target=self._copy, args=(pipe, stream), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _copy(self, pipe, stream: bytes) -> None:
        with pipe:  # closed at the end of the stream (the process gone), as a runtime closes it
            while piece := pipe.readline(MAX_LINE):
                partial = not piece.endswith(b"\n")
                self.write(stream, piece if partial else piece[:-1], partial)
                if stream == b"stdout":
                    with self._lock:
                        self.captured += piece

    def write(self, stream: bytes, piece: bytes, partial: bool = False, ns: int | None = None) -> None:
        line = wrap(self.style, time.time_ns() if ns is None else ns, stream, piece, partial)
        with self._lock:
            self.partials += partial
            with open(self.path, "ab") as f:
                f.write(line)
            if self.rotate_bytes is not None and self.path.stat().st_size >= self.rotate_bytes:
                self.rotate()

    def rotate(self) -> None:
        """Rename the live file away as the runtime (Docker) or the kubelet (CRI) does."""
        self.rotations += 1
        if self.shape == "docker":
            rotated = sorted((p for p in self.directory.iterdir() if p.name.startswith(self.path.name + ".")),
                             key=lambda p: -int(p.name.split(".")[2]))
            for p in rotated:
                parts = p.name.split(".")
                parts[2] = str(int(parts[2]) + 1)
                p.rename(p.with_name(".".join(parts)))
            os.rename(self.path, f"{self.path}.1")
            if self.compress:
                _gzip_in_place(Path(f"{self.path}.1"))
            return
        if self.compress:
            for p in self.directory.iterdir():
                if p.name.startswith("0.log.") and not p.name.endswith(".gz"):
                    _gzip_in_place(p)
        self._clock += 1
        os.rename(self.path, f"{self.path}.{time.strftime('%Y%m%d-%H%M%S', time.gmtime(self._clock))}")

    def wait_for_output(self, marker: bytes) -> None:
        wait_for(lambda: marker in self.captured, what=f"{marker!r} on the node's stdout")

    def join(self) -> None:
        for thread in self._threads:
            thread.join(10)

    def captured_file(self) -> Path:
        path = self.directory.parent / f"{self.directory.name}-captured-stdout.log"
        path.write_bytes(bytes(self.captured))
        return path

    @property
    def log_file(self) -> str:
        """What to give ``--log-file``: the pod's container directory (CRI), the json log (Docker)."""
        return str(self.directory if self.shape == "cri" else self.path)


def _gzip_in_place(path: Path) -> None:
    with open(path, "rb") as f, gzip.open(f"{path}.gz", "wb") as g:
        g.write(f.read())
    path.unlink()


# --- against real servers, through collection -------------------------------------------------

def today_there() -> date:
    return datetime.now(TZ).date()


def yesterday_file(runtime: Runtime, tz=TZ) -> tuple[Path, bytes]:
    """The oldest rotated copy: yesterday's entries of an earlier start of the node, wrapped with
    yesterday's times (what was written there, as Redis wrote it)."""
    yesterday = today_there() - timedelta(days=1)
    raw = bytearray()
    wrapped = bytearray()
    for second in range(0, 86400, 900):
        moment = datetime.combine(yesterday, datetime.min.time(), tz) + timedelta(seconds=second)
        line = f"1:M {moment.strftime('%d %b %Y %H:%M:%S')}.000 * yesterday {second}\n".encode()
        raw += line
        wrapped += wrap(runtime.style, int(moment.timestamp()) * 10**9 + 5, b"stdout", line[:-1], False)
    name = f"{runtime.path}.9.gz" if runtime.shape == "docker" else f"{runtime.path}.20000101-000000.gz"
    with gzip.open(name, "wb") as g:
        g.write(bytes(wrapped))
    return Path(name), bytes(raw)


def start_node(redis_node_factory, monkeypatch, runtime: Runtime, valkey: bool, *args: str):
    monkeypatch.setenv("TZ", ZONE)  # the node's clock: its legacy timestamps are in ZONE
    try:
        return redis_node_factory("127.0.0.2", logfile="", args=list(args), pipes=runtime.attach,
                                  server=valkey_server_path() if valkey else None)
    finally:
        monkeypatch.delenv("TZ")


def collect_today(server, instance_id: str) -> bytes:
    client = server.sdk()
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run", query_time=0))
    [item] = wait_settled(client, instance_id)
    assert item.status == "succeed", item
    assert item.time == today_there().isoformat()
    return download(client, instance_id, item.id).content


CASES = [("docker", False), ("containerd", True), ("containerd-local-zone", False), ("cri-o", False),
         ("podman-k8s-file", True)]


@pytest.mark.parametrize(("style", "valkey"), CASES, ids=[f"{s}-{'valkey' if v else 'redis'}" for s, v in CASES])
def test_a_node_logging_to_stdout_is_collected_exactly(dcslog_server, redis_node_factory, monkeypatch, tmp_path,
                                                       style, valkey):
    """The day collected is byte for byte what the node wrote to stdout that day, through
    rotations (plain and gzip), with stderr lines of the container among them left out, and
    yesterday's entries in the oldest copy left out."""
    runtime = Runtime(tmp_path / "pods" / "default_cache-0_uid" / "redis", style, rotate_bytes=3000)
    _, old = yesterday_file(runtime)
    node = start_node(redis_node_factory, monkeypatch, runtime, valkey)
    with node.client() as c:
        for i in range(60):
            c.execute_command("DEBUG", "LOG", f"entry {i} <&> \"quoted\" \\ tab\there é ✓")
            if i % 20 == 0:
                runtime.write(b"stderr", b"a line the container wrote to stderr")
        c.execute_command("DEBUG", "LOG", "last")
    runtime.wait_for_output(b"DEBUG LOG: last")
    assert runtime.rotations >= 2
    instance_id = dcslog_server.import_instance(node.url, "proj-a", "in-a-container", "--timezone", ZONE,
                                                "--log-file", f"{node.address}={runtime.log_file}")["instance_id"]
    body = collect_today(dcslog_server, instance_id)
    captured = runtime.captured_file()
    old_path = tmp_path / "old-stdout.log"
    old_path.write_bytes(old)
    assert body == reference_day([old_path, captured], today_there(), TZ)
    assert body.startswith(bytes(runtime.captured)[:40])  # today: everything the node wrote
    assert sum(f"DEBUG LOG: entry {i} ".encode() in body for i in range(60)) == 60
    assert b"stderr" not in body and b"yesterday" not in body


@pytest.mark.parametrize("style", ["docker", "containerd", "cri-o"])
def test_a_crash_report_with_lines_longer_than_the_runtimes_pieces(dcslog_server, redis_node_factory, monkeypatch,
                                                                   tmp_path, style):
    """A client named with 20 KiB: the bug report's client list holds a line the runtime writes in
    partial pieces (P… F, or json-file's log without a newline); the day is still the bytes Redis
    wrote, the report whole, after the node died."""
    runtime = Runtime(tmp_path / "pods" / "default_cache-0_uid" / "redis", style)
    node = start_node(redis_node_factory, monkeypatch, runtime, False, "--crash-memcheck-enabled", "no")
    instance_id = dcslog_server.import_instance(node.url, "proj-a", "crashed", "--timezone", ZONE,
                                                "--log-file", f"{node.address}={runtime.log_file}")["instance_id"]
    long_name = "n" * 20_000
    with node.client() as named:
        named.client_setname(long_name)
        with node.client() as c, pytest.raises(redis.exceptions.ConnectionError):
            c.execute_command("DEBUG", "SEGFAULT")
    node.proc.wait(10)
    runtime.join()
    assert runtime.partials >= 1, "the runtime wrote no partial piece"
    assert long_name.encode() in runtime.captured
    body = collect_today(dcslog_server, instance_id)
    assert body == reference_day([runtime.captured_file()], today_there(), TZ) == bytes(runtime.captured)
    assert b"REDIS BUG REPORT START" in body and b"REDIS BUG REPORT END" in body and long_name.encode() in body


def test_a_pod_directory_read_through_the_agent(dcslog_server, redis_node_factory, monkeypatch, tmp_path):
    """`dcslog agent` serves a pod's container directory (its restarts' logs and rotations): the
    service reads the node's log on its host."""
    with running_agent(tmp_path) as (agent_url, log_dir, remote_files):
        pod = remote_files / "default_cache-0_uid" / "redis"
        runtime = Runtime(pod, "containerd", rotate_bytes=4000)
        node = start_node(redis_node_factory, monkeypatch, runtime, False)
        with node.client() as c:
            for i in range(30):
                c.execute_command("DEBUG", "LOG", f"through the agent {i}")
        runtime.wait_for_output(b"through the agent 29")
        imported = import_through_agent(dcslog_server, node, agent_url, f"{log_dir}/default_cache-0_uid/redis")
        imported = dcslog_server.cli("instances", "refresh", imported["instance_id"], "--timezone", ZONE)
        body = collect_today(dcslog_server, imported["instance_id"])
        assert body == reference_day([runtime.captured_file()], today_there(), TZ)
        assert b"through the agent 29" in body


# --- synthetic: the container module on its own ----------------------------------------------------

def entry(moment: datetime, message: str) -> bytes:
    return f"7:M {moment.strftime('%d %b %Y %H:%M:%S')}.{moment.microsecond // 1000:03d} * {message}\n".encode()


def wrapped_file(path: Path, style: str, lines: list[tuple[int, bytes, bytes]]) -> None:
    """Write ``(ns, stream, bytes written)`` as the runtime would, cutting at 16 KiB."""
    with open(path, "wb") as f:
        for ns, stream, data in lines:
            for line in data.splitlines(keepends=True):
                while len(line) > MAX_LINE:
                    f.write(wrap(style, ns, stream, line[:MAX_LINE], True))
                    line = line[MAX_LINE:]
                f.write(wrap(style, ns, stream, line.removesuffix(b"\n"), not line.endswith(b"\n")))


def ns_of(moment: datetime) -> int:
    return int(moment.timestamp() * 1000) * 10**6 + 123


D = date(2026, 11, 26)


def at(day: date, seconds: float) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC) + timedelta(seconds=seconds)


@pytest.mark.parametrize("style", list(STYLES))
def test_days_of_a_synthetic_container_log_match_the_reference(tmp_path, style):
    """Three days, long lines cut into pieces, stderr lines between the pieces of a stdout line,
    continuation lines (a crash report) that keep their entry's day across midnight."""
    written, lines = bytearray(), []
    for k, day in enumerate((D - timedelta(days=1), D, D + timedelta(days=1))):
        for i in range(40):
            moment = at(day, (3600 * 23 + 59 * 60 + i * 1.5) if k == 1 else i * 2000)
            data = entry(moment, f"day {k} entry {i} " + ("x" * 40_000 if i % 13 == 5 else ""))
            written += data
            lines.append((ns_of(moment), b"stdout", data))
            lines.append((ns_of(moment), b"stderr", b"noise on stderr\n"))
            if i == 39 and k == 1:  # a crash report the runtime read after midnight: still its entry's day
                report = b"\n=== REDIS BUG REPORT START ===\n" + b"frame\n" * 50 + b"y" * 20_000 + b"\n"
                written += report
                lines.append((ns_of(at(day, 86400.5)), b"stdout", report))
    path = tmp_path / ("x-json.log" if STYLES[style][0] == "docker" else "0.log")
    wrapped_file(path, style, lines)
    plain = tmp_path / "plain.log"
    plain.write_bytes(bytes(written))
    for day in (D - timedelta(days=2), D - timedelta(days=1), D, D + timedelta(days=1)):
        expected = reference_day([plain], day)
        assert b"".join(iter_day(str(path), day, chunk_size=7000)) == expected, day
        with open(tmp_path / "out", "wb") as out:
            assert write_day(str(path), day, out.fileno()) == len(expected)
        assert (tmp_path / "out").read_bytes() == expected


def test_lines_before_the_first_entry_take_the_wrapper_day(tmp_path):
    """The logo or a stack trace with no entry before it in the whole log: its lines go by the
    time the runtime read them, not the first entry's day."""
    lines = [(ns_of(at(D, 86399.5)), b"stdout", b"  a line before any entry\n"),
             (ns_of(at(D + timedelta(days=1), 0.2)), b"stdout", b"  and one after midnight\n"),
             (ns_of(at(D + timedelta(days=1), 1)), b"stdout", entry(at(D + timedelta(days=1), 1), "first entry"))]
    path = tmp_path / "0.log"
    wrapped_file(path, "containerd", lines)
    assert b"".join(iter_day(str(path), D)) == b"  a line before any entry\n"
    assert b"".join(iter_day(str(path), D + timedelta(days=1))) == \
        b"  and one after midnight\n" + entry(at(D + timedelta(days=1), 1), "first entry")
    # The same once the kubelet rotated and compressed it, a newer live log beside it.
    os.rename(path, tmp_path / "0.log.20261127-000100")
    _gzip_in_place(tmp_path / "0.log.20261127-000100")
    later = entry(at(D + timedelta(days=1), 60), "later")
    wrapped_file(path, "containerd", [(ns_of(at(D + timedelta(days=1), 60)), b"stdout", later)])
    assert b"".join(iter_day(str(tmp_path), D)) == b"  a line before any entry\n"
    assert b"".join(iter_day(str(tmp_path), D + timedelta(days=1))) == \
        b"  and one after midnight\n" + entry(at(D + timedelta(days=1), 1), "first entry") + later


class CountingWrapped(WrappedSource):
    reads = 0
    bytes = 0

    def _read(self, n, offset):
        data = super()._read(n, offset)
        CountingWrapped.reads += 1
        CountingWrapped.bytes += len(data)
        return data


@pytest.mark.parametrize("style", ["docker", "containerd"])
def test_a_day_is_found_by_seeking_and_read_in_proportion_to_itself(tmp_path, monkeypatch, style):
    """Ten days of ~4 MiB each: the day's bounds cost a few small reads per halving; cutting it
    reads about the day's own wrapped bytes, whatever the file's size."""
    path = tmp_path / "0.log"
    with open(path, "wb") as f:
        for k in range(10):
            day = D + timedelta(days=k)
            f.write(b"".join(wrap(style, ns_of(at(day, i * 2)), b"stdout",
                                  entry(at(day, i * 2), f"DB saved on disk, {i} changes")[:-1], False)
                             for i in range(30_000)))
    size = path.stat().st_size
    target = D + timedelta(days=4)
    CountingWrapped.reads = CountingWrapped.bytes = 0
    with open(path, "rb") as f:
        src = CountingWrapped(f.fileno(), size, containers.detect(f.read(4096)))
        start, end = search.day_bounds(src, target)
    assert (end - start) * 10 == pytest.approx(size, rel=0.01)
    probes = 2 * size.bit_length()  # two binary searches
    assert CountingWrapped.reads <= 4 * probes and CountingWrapped.bytes <= 4 * probes * 4096 < size / 25
    assert day_range(str(path), target) == (start, end)
    monkeypatch.setattr(containers, "WrappedSource", CountingWrapped)
    monkeypatch.setattr("dcslog.runlog.slicer.WrappedSource", CountingWrapped)
    CountingWrapped.reads = CountingWrapped.bytes = 0
    body = b"".join(iter_day(str(path), target))
    assert body.count(b"\n") == 30_000
    # The day's bytes, the search's probes, and one read's worth past the day's end at most.
    assert CountingWrapped.bytes < (end - start) + 2 * 4 * probes * 4096 + 4096, (CountingWrapped.bytes, end - start)


def test_shapes_are_told_by_the_first_line():
    assert containers.detect(wrap("docker", 5, b"stdout", b"1:M x", False)) == "docker"
    assert containers.detect(wrap("cri-o", 5, b"stdout", b"1:M x", True)) == "cri"
    assert containers.detect(entry(at(D, 0), "plain")) is None
    assert containers.detect(b'pid=1 role=primary timestamp="2026-11-26T00:00:00.000+00:00" level=notice\n') is None
    assert containers.detect(b"1:M 2026-11-26T00:00:00.000+00:00 * iso8601 legacy\n") is None
    assert containers.detect(b'{"level":"info","msg":"a JSON logger"}\n') is None
    assert containers.detect(b"") is None


def test_wrapper_times():
    ms = int(at(D, 14 * 3600 + 187).timestamp()) * 1000  # 14:03:07 UTC
    assert containers.wrapper_ms(b"2026-11-26T14:03:07.123456789Z") == ms + 123
    assert containers.wrapper_ms(b"2026-11-26T14:03:07Z") == ms
    assert containers.wrapper_ms(b"2026-11-26T17:33:07.5+03:30") == ms + 500
    assert containers.wrapper_ms(b"2026-11-26T10:33:07.999999-03:30") == ms + 999
    assert containers.wrapper_ms(b"2026-11-26 14:03:07Z") is None
    assert containers.wrapper_ms(b"not a time") is None


def test_a_pod_directory_lists_each_start_and_its_rotations_oldest_first(tmp_path):
    pod = tmp_path / "ns_pod_uid" / "redis"
    pod.mkdir(parents=True)
    for name in ["0.log", "0.log.20261125-101500.gz", "0.log.20261126-090000", "1.log", "1.log.20261126-120000.gz",
                 "1.log.20261126-120000.tmp", "1.log.20261126-130000", "10.log"]:
        (pod / name).write_bytes(b"")
    assert [Path(p).name for p in log_sources(str(pod))] == [
        "0.log.20261125-101500.gz", "0.log.20261126-090000", "0.log", "1.log.20261126-120000.gz",
        "1.log.20261126-130000", "1.log", "10.log"]
    links = tmp_path / "containers"
    links.mkdir()
    (links / "pod_ns_redis-abc.log").symlink_to(pod / "1.log")
    assert [Path(p).name for p in log_sources(str(links / "pod_ns_redis-abc.log"))] == [
        "1.log.20261126-120000.gz", "1.log.20261126-130000", "1.log"]
    docker = tmp_path / "containers-docker" / "abc"
    docker.mkdir(parents=True)
    for name in ["abc-json.log", "abc-json.log.1", "abc-json.log.2.gz", "config.v2.json", "hostconfig.json"]:
        (docker / name).write_bytes(b"")
    assert [Path(p).name for p in log_sources(str(docker))] == ["abc-json.log.2.gz", "abc-json.log.1", "abc-json.log"]
    # cri-dockerd: the pod's N.log links to Docker's json log, whose rotations are beside it.
    dockerd_pod = tmp_path / "ns_pod2_uid" / "redis"
    dockerd_pod.mkdir(parents=True)
    (dockerd_pod / "0.log").symlink_to(docker / "abc-json.log")
    assert log_sources(str(dockerd_pod)) == [str(docker / n) for n in ("abc-json.log.2.gz", "abc-json.log.1",
                                                                       "abc-json.log")]


@pytest.mark.parametrize("style", ["docker", "cri-o"])
def test_records_of_a_container_log_are_those_of_the_log_inside(tmp_path, style):
    """Search reads the unwrapped log: the same records, in the same order, with the same keys as
    from the plain log Redis would have written."""
    written, lines = bytearray(), []
    for i in range(300):
        moment = at(D, i * 0.5)
        data = entry(moment, f"record {i}" + (" long" * 5000 if i == 17 else ""))
        written += data
        lines.append((ns_of(moment), b"stdout", data))
        if i % 7 == 0:
            lines.append((ns_of(moment), b"stderr", b"noise\n"))
    pod = tmp_path / "pod"
    pod.mkdir()
    wrapped_file(pod / "0.log", style, lines[:200])
    if STYLES[style][0] == "docker":
        os.rename(pod / "0.log", pod / "x-json.log.1")
        wrapped_file(pod / "x-json.log", style, lines[200:])
        target = str(pod / "x-json.log")
    else:
        os.rename(pod / "0.log", pod / "0.log.20261126-000100")
        _gzip_in_place(pod / "0.log.20261126-000100")
        wrapped_file(pod / "0.log", style, lines[200:])
        target = str(pod)
    (tmp_path / "plain.log").write_bytes(bytes(written))

    def records(logfile: str) -> list[tuple]:
        with contextlib.ExitStack() as stack:
            return [(r.key, r.message, r.lines) for r in scan_node(host_segments(logfile, stack),
                                                                   Scan(0, None)) if isinstance(r, Record)]

    expected = records(str(tmp_path / "plain.log"))
    assert len(expected) == 300 and records(target) == expected


def test_a_damaged_line_is_skipped_and_a_line_being_written_waits(tmp_path):
    path = tmp_path / "0.log"
    good = [wrap("containerd", ns_of(at(D, i)), b"stdout", entry(at(D, i), f"n{i}")[:-1], False) for i in range(3)]
    path.write_bytes(good[0] + b"garbage that is no CRI line\n" + good[1] + good[2][:30])
    assert b"".join(iter_day(str(path), D)) == entry(at(D, 0), "n0") + entry(at(D, 1), "n1")


def test_docker_escapes_round_trip():
    """json-file's escaping of every character, read back; invalid UTF-8 is U+FFFD in the file."""
    data = bytes(range(1, 128)).replace(b"\n", b"") + "é✓\u2028\u2029".encode()
    for partial in (False, True):
        line = wrap("docker", 5, b"stdout", data, partial)
        piece = containers.parse("docker", line)
        assert piece is not None and piece.partial == partial and piece.text == data
        assert json.loads(line)["log"].encode() == piece.inner
    assert containers.parse("docker", wrap("docker", 5, b"stdout", b"a\xffb", False)).text == "a\ufffdb".encode()
    # Unwrapped in bulk (the common lines cut where they stand, the others parsed), the same bytes.
    texts = [b"MASTER <-> REPLICA sync & more", b"a literal \\u003c and <", b"ends in a backslash \\",
             b"quote \" and tab \t", b"plain line", data]
    lines = b"".join(wrap("docker", 5, b"stdout", t, False) + wrap("docker", 6, b"stderr", b"<no>", False)
                     for t in texts)
    assert containers.unwrap_lines("docker", lines) == b"".join(t + b"\n" for t in texts)


def test_a_torn_or_hostile_docker_line_is_no_wrapper_line():
    """A line cut by a crash mid-write with the next one appended to it (a bare quote inside the
    text: Go escapes every one) is damaged, not text; nor is JSON nested past the parser's depth."""
    whole = wrap("docker", 5, b"stdout", b"1:M 06 Dec 2026 10:00:00.000 * Ready", False)
    torn = b'{"log":"1:M 06 Dec 2026 10:00:00.000 * Half writ' + whole
    assert json.loads(whole) and containers.parse("docker", whole) is not None
    with pytest.raises(ValueError):
        json.loads(torn)
    assert containers.parse("docker", torn) is None
    assert containers.unwrap_lines("docker", torn + whole) == b"1:M 06 Dec 2026 10:00:00.000 * Ready\n"
    nested = b"[" * 200_000 + b"\n"
    assert containers.parse("docker", nested) is None



def test_a_wrapper_line_too_long_to_be_one_is_skipped_never_held(tmp_path):
    """The runtimes cut lines into 16 KiB pieces: a wrapper line over MAX_WRAPPER_LINE is damaged
    or hostile (a small gzip copy can hold gigabytes in one line). Every reading — forward,
    backward, unwrapping a range, a gzip copy's lines and its unwrapped stream — skips it to its
    end and reads the lines around it as they are."""
    import gzip
    import io

    huge = b"x" * (3 * containers.MAX_WRAPPER_LINE)
    before = [wrap("docker", 5 + i, b"stdout", f"1:M 06 Dec 2026 10:00:0{i}.000 * before {i}".encode(), False)
              for i in range(3)]
    after = [wrap("docker", 9 + i, b"stdout", f"1:M 06 Dec 2026 10:00:0{i}.500 * after {i}".encode(), False)
             for i in range(3)]
    for damaged in (b'{"log":"' + huge + b"\n", huge + b"\n"):
        data = b"".join(before) + damaged + b"".join(after)
        path = tmp_path / "c-json.log"
        path.write_bytes(data)
        expected = b"".join(containers.parse("docker", line).inner for line in before + after)
        with open(path, "rb") as f:
            source = containers.WrappedSource(f.fileno(), len(data), "docker")
            assert b"".join(source.unwrap(0, len(data))) == expected
            assert [line for _, line in source.lines(0, len(data))] == before + after
            assert [line for _, line in source.lines_backward(len(data))] == list(reversed(before + after))
        assert list(containers.bounded_lines(gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(data))))) == before + after
        reader = containers.UnwrappedReader(gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(data))), "docker")
        assert reader.read() == expected


def test_records_near_the_present_unwrap_the_newest_part_alone(tmp_path, monkeypatch):
    """A follow's poll or the last minutes of a big container log: what is read is about the
    newest part of the file, not the file."""
    path = tmp_path / "0.log"
    with open(path, "wb") as f:
        f.write(b"".join(wrap("containerd", ns_of(at(D, i * 0.5)), b"stdout",
                              entry(at(D, i * 0.5), f"DB saved on disk, {i} changes")[:-1], False)
                         for i in range(120_000)))
    size = path.stat().st_size
    monkeypatch.setattr("dcslog.runlog.records.WrappedSource", CountingWrapped)
    CountingWrapped.reads = CountingWrapped.bytes = 0
    last_ms = int(at(D, 119_999 * 0.5).timestamp() * 1000)
    with contextlib.ExitStack() as stack:
        got = [r for r in scan_node(host_segments(str(path), stack), Scan(last_ms - 10_000, None))
               if isinstance(r, Record)]
    assert [r.message for r in got] == [f"DB saved on disk, {i} changes".encode() for i in range(119_979, 120_000)]
    assert CountingWrapped.bytes < 1024 * 1024 < size / 10, (CountingWrapped.bytes, size)


def test_importing_a_node_on_stdout_points_at_the_runtime_files(dcslog_server, redis_node_factory, capsys):
    node = redis_node_factory("127.0.0.3", logfile="")
    dcslog_server.import_instance(node.url)
    err = capsys.readouterr().err
    assert f"warning: {node.host}:{node.port} has no log file dcslog can collect" in err
    assert f"--log-file {node.host}:{node.port}=PATH" in err and "/var/log/pods/" in err and "-json.log" in err


def test_the_agent_serves_a_container_directory_it_allows(tmp_path):
    from dcslog import errors
    from dcslog.agent.server import _allowed

    pod = tmp_path / "pods" / "ns_pod_uid" / "redis"
    pod.mkdir(parents=True)
    assert _allowed(str(pod), (pod,)) == pod
    assert _allowed(str(pod), (tmp_path / "pods",)) == pod
    with pytest.raises(errors.Forbidden):
        _allowed(str(tmp_path / "pods"), (pod,))


def test_the_agent_follows_no_link_out_of_what_it_allows(tmp_path):
    """A pod directory (or a log file) inside an allowed directory whose log links outside it: the
    link's target and its rotated siblings would be read; refused, as the target itself is."""
    from dcslog import errors
    from dcslog.agent.server import _allowed

    allowed = tmp_path / "pods"
    pod = allowed / "ns_pod_uid" / "redis"
    pod.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "redis.log").write_text("secret\n")
    (outside / "redis.log.1").write_text("older secret\n")
    (pod / "0.log").symlink_to(outside / "redis.log")
    for asked in (pod, pod / "0.log", outside / "redis.log"):
        with pytest.raises(errors.Forbidden):
            _allowed(str(asked), (allowed,))
    (pod / "0.log").unlink()
    (pod / "0.log").write_text("")  # a real log inside: served
    assert _allowed(str(pod), (allowed,)) == pod


def test_importing_a_directory_with_no_container_log_warns(dcslog_server, redis_node_factory, tmp_path, capsys):
    node = redis_node_factory("127.0.0.3", logfile="")
    empty = tmp_path / "not-a-pod"
    empty.mkdir()
    dcslog_server.import_instance(node.url, "proj-a", "cache", "--log-file", f"{node.address}={empty}")
    assert "a directory holding no container log" in capsys.readouterr().err


def test_records_of_a_node_in_a_container_through_the_api(dcslog_server, redis_node_factory, monkeypatch, tmp_path):
    """The records endpoint reads the node's container log as its log: every record of the
    captured stdout, in order, with the reference's ids; a keyword search finds its own."""
    from tests.records_reference import reference_records
    from tests.test_records import Api, assert_same, expected, node_info

    runtime = Runtime(tmp_path / "pods" / "default_cache-0_uid" / "redis", "cri-o", rotate_bytes=1500)
    node = start_node(redis_node_factory, monkeypatch, runtime, True)
    with node.client() as c:
        for i in range(40):
            c.execute_command("DEBUG", "LOG", f"record {i} NEEDLE" if i % 9 == 0 else f"record {i}")
            if i % 10 == 0:
                runtime.write(b"stderr", b"stderr NEEDLE noise")
    runtime.wait_for_output(b"record 39")
    instance_id = dcslog_server.import_instance(node.url, "proj-a", "records", "--timezone", ZONE,
                                                "--log-file", f"{node.address}={runtime.log_file}")["instance_id"]
    nodes, _ = node_info(dcslog_server.cli("instances", "show", instance_id))
    rid = next(iter(nodes))
    api = Api(dcslog_server, instance_id)
    now = int(time.time() * 1000)
    start, end = now - 3_600_000, now + 60_000
    exported, sources = api.export(start_time=start, end_time=end)
    found, _ = api.walk(3, start_time=start, end_time=end, keyword="needle", case="insensitive")
    refs = {rid: reference_records(bytes(runtime.captured), TZ)}
    assert runtime.rotations >= 2 and sources[0]["read"] is True
    assert_same(exported, expected(refs, nodes, TZ, start=start, end=end))
    assert_same(found, expected(refs, nodes, TZ, start=start, end=end, keyword="needle", insensitive=True))
    assert len(found) == 5
    api.close()


def test_follow_a_node_in_a_container_across_the_kubelets_rotations(dcslog_server, redis_node_factory, monkeypatch,
                                                                     tmp_path):
    """Follow reads the pod's directory afresh at every poll: records keep coming, none lost or
    repeated, while the live 0.log is renamed away and its older copies gzipped."""
    from tests.test_records_follow import Events, keyed

    runtime = Runtime(tmp_path / "pods" / "default_cache-0_uid" / "redis", "containerd", rotate_bytes=1200)
    node = start_node(redis_node_factory, monkeypatch, runtime, False)
    instance_id = dcslog_server.import_instance(node.url, "proj-a", "followed", "--timezone", ZONE,
                                                "--log-file", f"{node.address}={runtime.log_file}")["instance_id"]
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
    url = f"{dcslog_server.url}/v2/proj-a/instances/{instance_id}/redislog/records"
    start_ms = int(time.time() * 1000)
    events = Events(url, {"follow": "true", "keyword": "follow me"}, {"X-Auth-Token": token})
    try:
        time.sleep(0.5)
        with node.client() as c:
            for i in range(30):
                c.execute_command("DEBUG", "LOG", f"follow me {i}")
                time.sleep(0.03)
        got = events.wait_for(30)
        assert not events.ended.is_set(), events.sources
        assert runtime.rotations >= 3
        assert [r["message"] for r in got] == [f"DEBUG LOG: follow me {i}" for i in range(30)]
        ids = [(r["time_ms"], r["id"]) for r in got]
        assert ids == sorted(ids) and len(set(ids)) == 30
        assert all(r["time_ms"] >= start_ms for r in got) and keyed(got)
    finally:
        events.close()


def test_a_crash_in_a_container_is_told_from_its_log(dcslog_server, redis_node_factory, monkeypatch, tmp_path):
    """The harvester reads the container log for events as any run log: the bug report (its long
    client-list line in partial pieces) is a crash, with the reason Redis gave."""
    from tests.test_events import Api as EventsApi
    from tests.test_runlog_events import HOLD_S, crash, told

    runtime = Runtime(tmp_path / "pods" / "default_cache-0_uid" / "redis", "docker", rotate_bytes=50_000)
    node = start_node(redis_node_factory, monkeypatch, runtime, False, "--crash-memcheck-enabled", "no")
    api = EventsApi(dcslog_server, dcslog_server.import_instance(
        node.url, "proj-a", "crashing", "--timezone", ZONE,
        "--log-file", f"{node.address}={runtime.log_file}")["instance_id"])
    time.sleep(HOLD_S)
    dcslog_server.harvest()  # the first look: what came before is history
    with node.client() as named:
        named.client_setname("n" * 20_000)
        crash(node, "SEGFAULT")
    runtime.join()
    assert runtime.partials >= 1
    time.sleep(HOLD_S)
    dcslog_server.harvest()
    [(kind, _, _, details)] = told(api)
    assert kind == "crash" and "crashed by signal: 11" in details["reason"]


def test_progress_estimates_the_redis_log_of_the_day_not_its_wrapping(tmp_path):
    from dcslog.services.collection import estimate_day

    lines = [(ns_of(at(day, i * 60)), b"stdout", entry(at(day, i * 60), f"saved {i}"))
             for day in (D, D + timedelta(days=1)) for i in range(1000)]
    wrapped_file(tmp_path / "0.log", "docker", lines)
    day = len(b"".join(iter_day(str(tmp_path), D)))
    assert day == sum(len(data) for ns, _, data in lines[:1000])
    assert estimate_day(str(tmp_path), D, "UTC") == pytest.approx(day, rel=0.02)
