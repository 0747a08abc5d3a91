#!/usr/bin/env python3
"""Benchmark: run-log records over HTTP (SPEC section 6) on a real ``dcslog serve``, each target beside its baseline.

Sets up, under bench/out/search_http/: real redis-server nodes, a ``dcslog serve``
process (embedded SQLite, local files; its own data dir and key; access log to
a file) and, through the CLI as a user makes them, a token and these instances:

  big    one node (127.0.0.2) whose ``--log-file`` is bench/search.py's synthetic
         5-day legacy log of --size-gib (bench/out/search-legacy-<size>g.log, reused
         if present, else generated and removed afterwards unless --keep)
  live   one node (127.0.0.3) whose log file this script writes while following it
  mixN   --mix-instances nodes (127.0.0.4 …) with bench/load.py's small 3-day logs,
         collected once through the API (for the mix's links)

Then (warm page cache; --only to run some parts):

  page    The first page (limit 100) of a 1-hour window of ``big`` (the hours around
          the middle of the file, rotating), --requests requests per case, interleaved,
          one keep-alive httpx client: no filter, keyword NEEDLE (sparse: the whole hour
          is searched), keyword 'DB saved on disk' (dense), level=warning, and desc
          (reported only). Baselines: ``GET /health`` on the same client, and the same
          page computed in this process (``services.records.read_page``, no HTTP, no
          database). Target: p95 <= 50 ms (the median is reported too).
  follow  ``follow=true`` on ``live`` (one httpx stream, SSE parsed as it comes) while a
          writer thread appends legacy lines stamped with the current time, each holding
          its sequence number and send time (us) in its message, at --follow-rate lines/s
          for --follow-seconds (in 10 ms batches, one write each). Per record: receive
          time minus the send time in its message. Baselines in the same run: a follow at
          100 lines/s for 5 s (the poll interval's share), and a plain tail of the file in
          this process (read every 10 ms) during the fast run: the floor of writing and
          reading a file here. Targets: p99 <= 1 s at --follow-rate; every written line
          arrives exactly once (counted by sequence number and by record id).
  export  ``Accept: application/x-ndjson`` over the whole of ``big`` (every entry, no
          filter), read as fast as the client can, while /proc/PID/status VmRSS of the
          server is sampled every 100 ms (VmHWM reset before, read after, too); then the
          same export read at --slow-mbps (default: min(20 MB/s, a quarter of the fast
          rate), so the client is slower than the server) for --slow-seconds and dropped.
          Baseline: the server's RSS at rest before. Reported: NDJSON MB/s, records/s,
          the log's bytes/s; the server's CPU in the 2 s after each client left (nothing
          should keep running). Target: peak RSS <= 100 MB (both reads); every entry
          exported once (line count = the generator's entries).
  mix     bench/load.py's request mix, reduced: two wrk processes (``-t1``, the Lua
          scripts of bench/http_speed.py), --mix-clients/2 connections each, on
          ``GET …/redislog?log_type=run`` round-robin over the mix instances and on
          ``POST …/redislog/{id}/links`` (token) for their collected yesterday files, for
          --mix-seconds: alone, then while two searches of ``big``'s whole window (1 GiB)
          run in a loop from this process (keyword=NEEDLE NDJSON exports; level=warning
          pages, limit 100, following next_cursor), --mix-rounds times interleaved. No
          collections run meanwhile (bench/load.py's driver is left out). Target: p99 of
          each request kind with the searches <= 1.5x its p99 alone (medians over rounds);
          zero errors.

Exits 1 if a target is missed (--no-check: report only). Quote ratios from one run, not
absolute times across runs (see /work/shared/PERF-ANCHORS.md).

    python bench/search_http.py [--size-gib 1] [--requests 50] [--follow-rate 10000] [--follow-seconds 20]
        [--slow-mbps 0] [--slow-seconds 30] [--mix-seconds 30] [--mix-clients 200] [--mix-instances 4]
        [--mix-rounds 2] [--only page,follow,export,mix] [--keep] [--no-check]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Sibling scripts import as top-level modules (a script's own directory is first on sys.path),
# as bench/load.py imports bench/http_speed.py.
from http_speed import (
    DCSLOG,
    Procs,
    cli,
    dcslog_env,
    lua_script,
    machine,
    parse_wrk,
    stamp,
    start_dcslog,
    wait_collected,
    write_log,
    wrk_args,
)
from search import DENSE, HOURS, KEYWORD, MIB, OUT, log_file, warm

from dcslog.testing.ports import free_port

PROJECT = "benchsearch"
HOUR_MS = 3_600_000
PARTS = ("page", "follow", "export", "mix")
PAGE_TARGET_MS = 50.0
FOLLOW_TARGET_S = 1.0
RSS_TARGET_MB = 100.0
MIX_TARGET = 1.5
FOLLOW_LINE = re.compile(rb"bench-follow seq=(\d+) sent=(\d+)")


# ---------------------------------------------------------------- helpers

def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


class RssSampler:
    """VmRSS of ``pid`` every ``interval`` s in a thread, from start() to stop()."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid, self.interval = pid, interval
        self.samples: list[int] = []  # KiB
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(status_kib(self.pid, "VmRSS"))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return max(self.samples, default=0) / 1024


def reset_hwm(pid: int) -> bool:
    """Reset the process's VmHWM (peak RSS) to its current RSS (Linux: clear_refs 5)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def idle_cpu(pid: int, seconds: float = 2.0) -> float:
    """CPU seconds the process used in the next ``seconds`` (after a client left: should be ~0)."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


def wait_port_open(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


# ---------------------------------------------------------------- 1. first page

def bench_pages(base: str, headers: dict, instance_id: str, big: Path, meta: dict, node: dict, n: int) -> dict:
    import httpx

    from dcslog.db.models import Replication
    from dcslog.services import records as svc

    api = f"{base}/v2/{PROJECT}/instances/{instance_id}/redislog/records"
    cases = {  # name: (extra query, checked?, records expected on every page (None: any))
        "no filter": ({}, True, 100),
        f"keyword {KEYWORD} (sparse)": ({"keyword": KEYWORD}, True, None),
        f"keyword '{DENSE}' (dense)": ({"keyword": DENSE}, True, 100),
        "level=warning": ({"level": "warning"}, True, 100),
        "no filter, sort_dir=desc": ({"sort_dir": "desc"}, False, 100),
    }
    hours = [HOURS // 2 - 12 + i % 24 for i in range(n)]  # the middle day, one hour after another
    http: dict[str, list[float]] = {name: [] for name in cases}
    inproc: dict[str, list[float]] = {name: [] for name in cases}
    health: list[float] = []
    scanned: dict[str, list[int]] = {name: [] for name in cases}
    got: dict[str, list[int]] = {name: [] for name in cases}
    rep = Replication(id=node["replication_id"], instance_id=instance_id, group_name=node["group_name"],
                      host=node["replication_ip"], port=node["replication_port"], log_file=str(big))
    plans = [svc.NodePlan(rep, str(big), None, None)]
    with httpx.Client(headers=headers, timeout=60) as client:
        for extra, _, _ in cases.values():  # warm-up: one of each
            client.get(api, params={"start_time": meta["start_ms"], "end_time": meta["start_ms"] + HOUR_MS, **extra})
        for i in range(n):
            start = meta["start_ms"] + hours[i] * HOUR_MS
            t = time.perf_counter()
            r = client.get(f"{base}/health")
            health.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
            for name, (extra, _, expected) in cases.items():
                params = {"start_time": start, "end_time": start + HOUR_MS, "limit": 100, **extra}
                t = time.perf_counter()
                r = client.get(api, params=params)
                http[name].append(time.perf_counter() - t)
                if r.status_code != 200:
                    sys.exit(f"page {name}: {r.status_code} {r.text[:300]}")
                page = r.json()
                got[name].append(len(page["records"]))
                scanned[name].append(page["scanned_bytes"])
                if expected is not None and len(page["records"]) != expected:
                    sys.exit(f"page {name}, hour {hours[i]}: {len(page['records'])} records, expected {expected}")
                query = svc.RecordQuery(start, start + HOUR_MS, keyword=extra.get("keyword"),
                                        level=extra.get("level"), descending=extra.get("sort_dir") == "desc")
                t = time.perf_counter()
                local = svc.read_page(plans, query, None, "UTC", 100)
                inproc[name].append(time.perf_counter() - t)
                if [x["id"] for x in local["records"]] != [x["id"] for x in page["records"]]:
                    sys.exit(f"page {name}: the in-process page differs from the HTTP one")
    return {"cases": cases, "http": http, "inproc": inproc, "health": health, "scanned": scanned, "got": got}


# ---------------------------------------------------------------- 2. follow

class Writer(threading.Thread):
    """Appends legacy lines stamped now at ``rate`` lines/s for ``seconds``, in 10 ms batches; each
    line's message holds its sequence number and its send time (us since the epoch)."""

    def __init__(self, path: Path, rate: int, seconds: float, first_seq: int):
        super().__init__(daemon=True)
        self.path, self.rate, self.seconds, self.first_seq = path, rate, seconds, first_seq
        self.written = 0
        self.lateness: list[float] = []  # how far behind schedule each batch was written (s)

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            t0 = time.time()
            total = int(self.rate * self.seconds)
            tick = 0
            while self.written < total:
                tick += 1
                due = t0 + tick * 0.01
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
                self.lateness.append(max(0.0, time.time() - due))
                want = min(total, int(self.rate * (time.time() - t0))) - self.written
                lines = []
                for _ in range(want):
                    now = time.time()
                    moment = datetime.fromtimestamp(now, UTC).replace(tzinfo=None)
                    seq = self.first_seq + self.written + len(lines)
                    lines.append(f"4242:M {stamp(moment)} * bench-follow seq={seq} sent={int(now * 1e6)} "
                                 f"Client closed connection addr=10.1.2.3:{seq % 65536} laddr=10.0.3.1:6379\n")
                if lines:
                    os.write(fd, "".join(lines).encode())
                    self.written += len(lines)
        finally:
            os.close(fd)


class Tail(threading.Thread):
    """A plain tail of the file in this process, read every 10 ms: the latency floor."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            rest = b""
            while not self.stop.is_set():
                data = f.read()
                if data:
                    now = time.time()
                    data = rest + data
                    cut = data.rfind(b"\n") + 1
                    rest = data[cut:]
                    for m in FOLLOW_LINE.finditer(data, 0, cut):
                        self.latencies.append(now - int(m[2]) / 1e6)
                else:
                    self.stop.wait(0.01)


class FollowClient(threading.Thread):
    """``follow=true`` on the instance: per record, receive time minus the send time in its message."""

    def __init__(self, url: str, headers: dict):
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.latency: dict[int, float] = {}  # seq -> s
        self.duplicates = 0
        self.ids: set[bytes] = set()
        self.duplicate_ids = 0
        self.other = 0  # records that are not ours (the live log's seed lines)
        self.heartbeats = 0
        self.error: str | None = None
        self._sock: socket.socket | None = None

    def run(self) -> None:
        import httpx

        try:
            with httpx.Client(headers=self.headers, timeout=httpx.Timeout(30, read=None)) as client, \
                    client.stream("GET", self.url, params={"follow": "true"}) as r:
                if r.status_code != 200:
                    self.error = f"{r.status_code} {r.read()[:300]!r}"
                    self.ready.set()
                    return
                self._sock = r.extensions["network_stream"].get_extra_info("socket")
                rest = b""
                for chunk in r.iter_raw():  # SSE parsed here, at C speed where it can be
                    now = time.time()  # every event of the chunk arrived by now
                    events = (rest + chunk).split(b"\n\n")
                    rest = events.pop()
                    for event in events:
                        self._event(event, now)
        except Exception as exc:  # noqa: BLE001 - reported, not raised in a thread
            if not self.stop.is_set():
                self.error = repr(exc)
            self.ready.set()

    def _event(self, event: bytes, now: float) -> None:
        if event.startswith(b": heartbeat"):
            self.heartbeats += 1
        elif event.startswith(b"event: sources"):
            self.ready.set()
        elif event.startswith(b"id: "):
            record_id = event[4:event.index(b"\n")]
            if record_id in self.ids:
                self.duplicate_ids += 1
            self.ids.add(record_id)
            m = FOLLOW_LINE.search(event)
            if m is None:
                self.other += 1
            else:
                seq = int(m[1])
                if seq in self.latency:
                    self.duplicates += 1
                else:
                    self.latency[seq] = now - int(m[2]) / 1e6

    def close(self) -> None:
        """Leave: shut the socket down (wakes the reading thread), then wait for it."""
        self.stop.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        self.join(10)


def follow_run(base: str, headers: dict, instance_id: str, live: Path, rate: int, seconds: float,
               first_seq: int, with_tail: bool, pid: int) -> dict:
    url = f"{base}/v2/{PROJECT}/instances/{instance_id}/redislog/records"
    client = FollowClient(url, headers)
    client.start()
    if not client.ready.wait(30) or client.error:
        sys.exit(f"follow did not start: {client.error}")
    time.sleep(0.5)  # a poll or two with nothing new
    tail = Tail(live) if with_tail else None
    if tail:
        tail.start()
    writer = Writer(live, rate, seconds, first_seq)
    t = time.time()
    writer.start()
    writer.join()
    wrote_for = time.time() - t
    # Wait for the rest while it keeps coming (a slow follow still shows whether every line comes
    # once): until all arrived, or nothing new for 5 s (the newest line is held up to 2 s), or 300 s.
    deadline = time.time() + 300
    seen, quiet_since = -1, time.time()
    while len(client.latency) < writer.written and time.time() < deadline and client.is_alive():
        if len(client.latency) != seen:
            seen, quiet_since = len(client.latency), time.time()
        elif time.time() - quiet_since > 5:
            break
        time.sleep(0.05)
    drained_after = time.time() - t - wrote_for
    time.sleep(0.5)  # anything repeated after the last one
    client.close()
    time.sleep(0.5)  # the server's next poll or write notices the client left
    cpu_after = idle_cpu(pid)
    if tail:
        tail.stop.set()
        tail.join()
    expected = set(range(first_seq, first_seq + writer.written))
    got = set(client.latency)
    lat = list(client.latency.values())
    return {"rate": rate, "seconds": wrote_for, "written": writer.written, "received": len(got & expected),
            "missing": len(expected - got), "unexpected": len(got - expected), "duplicates": client.duplicates,
            "duplicate_ids": client.duplicate_ids, "ids": len(client.ids), "other": client.other,
            "error": client.error, "lat": lat, "drained_after": drained_after, "cpu_after": cpu_after,
            "tail": tail.latencies if tail else [],
            "writer_late_p99": pct(writer.lateness, 99), "writer_rate": writer.written / wrote_for}


# ---------------------------------------------------------------- 3. export and RSS

def export_run(api: str, headers: dict, params: dict, pid: int, rate_bps: float | None, seconds: float | None
               ) -> dict:
    """Read the NDJSON export (at ``rate_bps`` if given, for ``seconds`` if given) while sampling
    the server's RSS; then the server's CPU in the 2 s after the client left."""
    import httpx

    hwm_reset = reset_hwm(pid)
    rest_mb = status_kib(pid, "VmRSS") / 1024
    nbytes = lines = 0
    first = last = b""
    with RssSampler(pid) as rss:
        t = time.perf_counter()
        with httpx.Client(headers={**headers, "Accept": "application/x-ndjson"},
                          timeout=httpx.Timeout(60, read=600)) as client, \
                client.stream("GET", api, params=params) as r:
            if r.status_code != 200:
                sys.exit(f"export: {r.status_code} {r.read()[:300]!r}")
            for chunk in r.iter_raw(256 * 1024):
                if not first:
                    first = chunk[:chunk.find(b"\n")]
                nbytes += len(chunk)
                lines += chunk.count(b"\n")
                last = (last + chunk)[-4096:]
                elapsed = time.perf_counter() - t
                if rate_bps:
                    ahead = nbytes / rate_bps - elapsed
                    if ahead > 0:
                        time.sleep(ahead)
                if seconds and elapsed >= seconds:
                    break
            elapsed = time.perf_counter() - t
        time.sleep(0.3)  # the server notices the client left
    cpu_after = idle_cpu(pid)
    hwm_mb = status_kib(pid, "VmHWM") / 1024 if hwm_reset else float("nan")
    tail_line = last.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return {"bytes": nbytes, "lines": lines, "time": elapsed, "rest_mb": rest_mb, "peak_mb": rss.peak_mb,
            "hwm_mb": hwm_mb, "samples": len(rss.samples), "cpu_after": cpu_after,
            "first": json.loads(first) if first else None,
            "last": json.loads(tail_line) if tail_line and rate_bps is None and not seconds else None}


# ---------------------------------------------------------------- 4. the mix with searches

class SearchLoop(threading.Thread):
    """One search of ``big``'s whole window, again and again, until stopped."""

    def __init__(self, kind: str, api: str, headers: dict, window: dict, expected: int):
        super().__init__(daemon=True)
        self.kind, self.api, self.headers, self.window, self.expected = kind, api, headers, window, expected
        self.stop = threading.Event()
        self.done = 0  # whole searches finished (exports; page walks to the end)
        self.requests = 0
        self.times: list[float] = []  # per request
        self.bytes = 0  # scanned (pages) or NDJSON (exports)
        self.error: str | None = None

    def run(self) -> None:
        import httpx

        try:
            with httpx.Client(headers=self.headers, timeout=600) as client:
                while not self.stop.is_set():
                    if self.kind == "export":
                        self._export(client)
                    else:
                        self._pages(client)
        except Exception as exc:  # noqa: BLE001
            self.error = repr(exc)

    def _export(self, client) -> None:
        t = time.perf_counter()
        with client.stream("GET", self.api, params={**self.window, "keyword": KEYWORD},
                           headers={"Accept": "application/x-ndjson"}) as r:
            assert r.status_code == 200, r.status_code
            body = r.read()
        self.times.append(time.perf_counter() - t)
        self.requests += 1
        self.bytes += len(body)
        count = body.count(b"\n")
        if count != self.expected:
            self.error = f"keyword export: {count} records, expected {self.expected}"
        self.done += 1

    def _pages(self, client) -> None:
        cursor = None
        while not self.stop.is_set():
            params = {**self.window, "level": "warning", "limit": 100}
            if cursor:
                params["cursor"] = cursor
            t = time.perf_counter()
            r = client.get(self.api, params=params)
            self.times.append(time.perf_counter() - t)
            self.requests += 1
            assert r.status_code == 200, r.text[:300]
            page = r.json()
            self.bytes += page["scanned_bytes"]
            cursor = page["next_cursor"]
            if cursor is None:
                self.done += 1
                return


def wrk_mix(base: str, scripts: list[Path], seconds: float, connections: int) -> list[dict]:
    procs = [subprocess.Popen(wrk_args(base, s, seconds, connections, 1, "30s"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for s in scripts]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=seconds + 90)
        out.append(parse_wrk(stdout, stderr))
    return out


# ---------------------------------------------------------------- report

def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gib", type=float, default=1.0, help="the big legacy log (default 1: bench/search.py's)")
    parser.add_argument("--requests", type=int, default=50, help="first-page requests per case (default 50)")
    parser.add_argument("--follow-rate", type=int, default=10_000, help="lines/s written while following")
    parser.add_argument("--follow-seconds", type=float, default=20)
    parser.add_argument("--slow-mbps", type=float, default=0,
                        help="the slow export reader's MB/s (default: min(20, a quarter of the fast rate))")
    parser.add_argument("--slow-seconds", type=float, default=30)
    parser.add_argument("--fast-seconds", type=float, default=0,
                        help="stop the fast export after this long (default 0: read it to the end)")
    parser.add_argument("--mix-seconds", type=float, default=30)
    parser.add_argument("--mix-clients", type=int, default=200, help="wrk connections in all (half list, half link)")
    parser.add_argument("--mix-instances", type=int, default=4)
    parser.add_argument("--mix-mib-per-day", type=int, default=1)
    parser.add_argument("--mix-rounds", type=int, default=2, help="alone/with-searches pairs (default 2)")
    parser.add_argument("--agent", action="store_true",
                        help="read the big node through a `dcslog agent` process on this machine (its filter runs "
                             "there, not in the server)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"parts to run (default {','.join(PARTS)})")
    parser.add_argument("--keep", action="store_true", help="keep bench/out/search_http and a generated log")
    parser.add_argument("--no-check", action="store_true", help="report only: exit 0 even if a target is missed")
    args = parser.parse_args()
    parts = [p for p in args.only.split(",") if p]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (apt-get install {tool})", file=sys.stderr)
            return 2

    import httpx
    from cryptography.fernet import Fernet

    from dcslog.testing.redis_servers import NodeSet

    OUT.mkdir(exist_ok=True)
    big_path = OUT / f"search-legacy-{args.size_gib:g}g.log"
    reused = big_path.exists()
    big, meta = log_file("legacy", args.size_gib)
    reused = reused and big.exists()
    work = OUT / "search_http"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    live = work / "live" / "redis.log"
    live.parent.mkdir()
    seed_at = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    live.write_text("".join(f"4242:M {stamp(seed_at + timedelta(milliseconds=i))} * seed line {i}\n"
                            for i in range(10)))
    today = datetime.now(UTC).date()
    mix_logs = work / "mixlogs"
    if "mix" in parts:
        days = [(today - timedelta(days=d), args.mix_mib_per_day * MIB) for d in (2, 1, 0)]
        write_log(mix_logs / "node-00.log", days)
        for n in range(1, args.mix_instances):
            shutil.copyfile(mix_logs / "node-00.log", mix_logs / f"node-{n:02d}.log")

    procs = Procs()
    nodes = NodeSet(work / "nodes")
    res: dict = {}
    window = {"start_time": meta["start_ms"], "end_time": meta["start_ms"] + HOURS * HOUR_MS}
    try:
        big_node = nodes.new("127.0.0.2")
        live_node = nodes.new("127.0.0.3")
        port = free_port()
        env = dcslog_env(work / "data", Fernet.generate_key().decode(), port)
        server = start_dcslog(procs, env, work / "dcslog-serve.log")
        pid = server.pid
        res["rest_start_mb"] = status_kib(pid, "VmRSS") / 1024
        res["rss_after"] = [("start-up", res["rest_start_mb"])]
        token = cli(env, "token", "create", "--project-id", PROJECT, "--role", "operator")["token"]
        headers = {"X-Auth-Token": token}

        def imported(name: str, node, path: Path, *extra: str) -> str:
            return cli(env, "instances", "import", "--project-id", PROJECT, "--name", name, "--redis",
                       f"redis://{node.address}", "--log-file", f"{node.address}={path}",
                       "--timezone", "UTC", *extra)["instance_id"]
        agent_args: list[str] = []
        if args.agent:  # the big node's log read through a `dcslog agent` process on this machine
            agent_port, agent_key = free_port(), uuid.uuid4().hex
            agent = procs.start([*DCSLOG, "agent", "--port", str(agent_port), "--key", agent_key, "--allow-dir",
                                 str(big.parent)], work / "dcslog-agent.log")
            wait_port_open(agent_port, agent)
            agent_args = ["--agent", f"{big_node.address}=http://127.0.0.1:{agent_port}", "--agent-key", agent_key]
        big_id = imported("big", big_node, big, *agent_args)
        live_id = imported("live", live_node, live)
        base = f"http://127.0.0.1:{port}"
        records_api = f"{base}/v2/{PROJECT}/instances/{big_id}/redislog/records"
        mix_ids: list[str] = []
        mix_files: dict[str, str] = {}
        if "mix" in parts:
            for n in range(args.mix_instances):
                node = nodes.new(f"127.0.0.{4 + n}")
                mix_ids.append(imported(f"mix{n}", node, mix_logs / f"node-{n:02d}.log"))
            for i in mix_ids:
                r = httpx.post(f"{base}/v2/{PROJECT}/instances/{i}/redislog", params={"log_type": "run",
                               "query_time": 3}, headers=headers)
                assert r.status_code == 204, r.text
            yesterday = (today - timedelta(days=1)).isoformat()
            mix_files = {i: wait_collected(base, i, headers, yesterday, project=PROJECT)["id"] for i in mix_ids}
            for i in mix_ids:
                wait_collected(base, i, headers, today.isoformat(), project=PROJECT)
        t = time.perf_counter()
        warm(big)
        print(f"machine: {machine()}")
        print(f"big log {big} ({meta['file_size'] / MIB:.0f} MiB, {meta['entries']:,} entries, "
              f"{'reused' if reused else 'generated'}), warmed in {time.perf_counter() - t:.1f}s; "
              f"server pid {pid}, children {children(pid) or 'none'}; RSS at rest "
              f"{status_kib(pid, 'VmRSS') / 1024:.0f} MB", flush=True)

        if "page" in parts:
            print(f"page: {args.requests} requests per case …", flush=True)
            probe = httpx.get(records_api, params={**window, "limit": 1}, headers=headers).json()
            res["page"] = bench_pages(base, headers, big_id, big, meta, probe["records"][0], args.requests)
            res["rss_after"].append(("page", status_kib(pid, "VmRSS") / 1024))

        if "follow" in parts:
            print("follow: 100 lines/s for 5 s (baseline) …", flush=True)
            slow = follow_run(base, headers, live_id, live, 100, 5, 0, with_tail=False, pid=pid)
            print(f"follow: {args.follow_rate:,} lines/s for {args.follow_seconds:g} s …", flush=True)
            fast = follow_run(base, headers, live_id, live, args.follow_rate, args.follow_seconds, 1_000_000,
                              with_tail=True, pid=pid)
            res["follow"] = {"slow": slow, "fast": fast}
            res["rss_after"].append(("follow", status_kib(pid, "VmRSS") / 1024))

        if "export" in parts:
            print(f"export: {f'{args.fast_seconds:g} s of ' if args.fast_seconds else ''}the whole file, client "
                  "as fast as it can …", flush=True)
            fast = export_run(records_api, headers, window, pid, None, args.fast_seconds)
            mbps = fast["bytes"] / fast["time"] / 1e6
            slow_mbps = args.slow_mbps or min(20.0, mbps / 4)
            print(f"export: {fast['bytes'] / 1e6:,.0f} MB in {fast['time']:.1f}s ({mbps:.1f} MB/s); "
                  f"now read at {slow_mbps:.1f} MB/s for {args.slow_seconds:g} s …", flush=True)
            slow = export_run(records_api, headers, window, pid, slow_mbps * 1e6, args.slow_seconds)
            res["export"] = {"fast": fast, "slow": slow, "slow_mbps": slow_mbps}
            res["rss_after"].append(("export", status_kib(pid, "VmRSS") / 1024))

        if "mix" in parts:
            lua = work / "lua"
            lua.mkdir()
            scripts = [
                lua_script(lua / "list.lua", "GET", headers,
                           [f"/v2/{PROJECT}/instances/{i}/redislog?log_type=run" for i in mix_ids]),
                lua_script(lua / "link.lua", "POST", headers,
                           [f"/v2/{PROJECT}/instances/{i}/redislog/{f}/links" for i, f in mix_files.items()]),
            ]
            rounds: list[dict] = []
            for n in range(args.mix_rounds):
                print(f"mix round {n + 1}: {args.mix_clients} connections, {args.mix_seconds:g} s alone …",
                      flush=True)
                alone = wrk_mix(base, scripts, args.mix_seconds, args.mix_clients // 2)
                print(f"mix round {n + 1}: with two searches …", flush=True)
                loops = [SearchLoop("export", records_api, headers, window, meta["needle_entries"]),
                         SearchLoop("pages", records_api, headers, window, 0)]
                for loop in loops:
                    loop.start()
                time.sleep(1.0)
                cpu0 = cpu_seconds(pid)
                with_s = wrk_mix(base, scripts, args.mix_seconds, args.mix_clients // 2)
                cpu = cpu_seconds(pid) - cpu0
                for loop in loops:
                    loop.stop.set()
                for loop in loops:
                    loop.join(120)
                    if loop.error:
                        sys.exit(f"search loop {loop.kind}: {loop.error}")
                rounds.append({"alone": alone, "with": with_s, "server_cpu": cpu,
                               "loops": [{"kind": loop.kind, "done": loop.done, "requests": loop.requests,
                                          "bytes": loop.bytes, "p50": pct(loop.times, 50),
                                          "p99": pct(loop.times, 99)} for loop in loops]})
            res["mix"] = rounds
            res["rss_after"].append(("mix", status_kib(pid, "VmRSS") / 1024))
    finally:
        procs.close()
        nodes.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
            if not reused:
                big.unlink(missing_ok=True)
                big.with_suffix(".json").unlink(missing_ok=True)

    return report(args, meta, res)


def report(args: argparse.Namespace, meta: dict, res: dict) -> int:
    checks: list[tuple[str, bool]] = []
    print(f"\nbig log: {meta['file_size'] / MIB:.0f} MiB, {HOURS // 24} days, {meta['entries']:,} entries "
          f"({meta['warnings']:,} warnings, {meta['needle_entries']} holding {KEYWORD}); one dcslog serve process, "
          f"SQLite, the log read {'through a dcslog agent on this machine' if args.agent else 'from local disk'}, "
          f"warm page cache")

    if "page" in res:
        p = res["page"]
        n = len(p["health"])
        print(f"\nFirst page (limit 100) of a 1-hour window, {n} requests per case (hours {HOURS // 2 - 12}…"
              f"{HOURS // 2 + 11} in turn), one keep-alive httpx client; in-process: services.records.read_page "
              f"in this process (no HTTP, no database)\n")
        print("| Case | HTTP median | HTTP p95 | HTTP max | in-process median | HTTP − in-process | records | "
              "scanned (median) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        h = p["health"]
        print(f"| GET /health (baseline) | {ms(statistics.median(h))} | {ms(pct(h, 95))} | {ms(max(h))} | – | – | – "
              f"| – |")
        for name, (_, checked, _) in p["cases"].items():
            t, local = p["http"][name], p["inproc"][name]
            print(f"| {name} | {ms(statistics.median(t))} | {ms(pct(t, 95))} | {ms(max(t))} | "
                  f"{ms(statistics.median(local))} | {ms(statistics.median(t) - statistics.median(local))} | "
                  f"{statistics.median(p['got'][name]):.0f} | {statistics.median(p['scanned'][name]) / MIB:.2f} MiB |")
            if checked:
                checks.append((f"first page, {name}: p95 {ms(pct(t, 95))} (median {ms(statistics.median(t))}) "
                               f"<= {PAGE_TARGET_MS:.0f} ms", pct(t, 95) * 1000 <= PAGE_TARGET_MS))

    if "follow" in res:
        f = res["follow"]
        print("\nFollow (follow=true, one SSE client in this process): receive time minus the send time written "
              "in each line; writer: one write per 10 ms batch\n")
        print("| Run | lines/s written | written | received once | missing | repeated (seq / id) | p50 | p99 | "
              "max | last one in, after the writer stopped |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for label, r in (("100 lines/s (baseline)", f["slow"]), (f"{args.follow_rate:,} lines/s", f["fast"])):
            lat = r["lat"]
            print(f"| follow, {label} | {r['writer_rate']:,.0f} | {r['written']:,} | {r['received']:,} | "
                  f"{r['missing']:,} | {r['duplicates']} / {r['duplicate_ids']} | {ms(pct(lat, 50))} | "
                  f"{ms(pct(lat, 99))} | {ms(max(lat, default=float('nan')))} | {r['drained_after']:.1f} s |")
        tail = f["fast"]["tail"]
        print(f"| plain tail in this process, every 10 ms (floor, during the {args.follow_rate:,} lines/s run) | "
              f"– | – | {len(tail):,} | – | – | {ms(pct(tail, 50))} | {ms(pct(tail, 99))} | "
              f"{ms(max(tail, default=float('nan')))} | – |")
        print(f"(missing: not arrived 5 s after the last one that did; writer: p99 of a batch's lateness "
              f"{ms(f['fast']['writer_late_p99'])}; seed lines and others received: {f['fast']['other']}; "
              f"client errors: {f['fast']['error'] or f['slow']['error'] or 'none'})")
        for label, r in (("100 lines/s", f["slow"]), (f"{args.follow_rate:,} lines/s", f["fast"])):
            exact = r["missing"] == 0 and r["duplicates"] == 0 and r["duplicate_ids"] == 0 and r["unexpected"] == 0 \
                and r["ids"] == r["written"] + r["other"]
            checks.append((f"follow at {label}: every written line once: {r['received']:,}/{r['written']:,} "
                           f"received, {r['missing']:,} missing, {r['duplicates']} repeated, "
                           f"{r['ids']:,} distinct ids", exact))
            checks.append((f"follow at {label}: no work left once the client left (server CPU {r['cpu_after']:.2f} s "
                           f"in 2 s <= 0.2 s)", r["cpu_after"] <= 0.2))
        lat = f["fast"]["lat"]
        checks.append((f"follow at {args.follow_rate:,} lines/s: p99 {ms(pct(lat, 99))} <= "
                       f"{FOLLOW_TARGET_S * 1000:.0f} ms", pct(lat, 99) <= FOLLOW_TARGET_S and bool(lat)))

    if "export" in res:
        e = res["export"]
        fast, slow = e["fast"], e["slow"]
        log_bytes = meta["file_size"]
        print("\nNDJSON export (Accept: application/x-ndjson) of the whole big log, no filter; server VmRSS "
              "sampled every 100 ms (VmHWM reset before each read)\n")
        print("| Client | NDJSON read | time | NDJSON MB/s | records/s | log MB/s | RSS before | peak RSS "
              "(sampled) | VmHWM | peak − before | server CPU in 2 s after |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        whole = "whole export" if not args.fast_seconds else f"for {args.fast_seconds:g} s"
        for label, r in ((f"as fast as it can, {whole}", fast),
                         (f"{e['slow_mbps']:.1f} MB/s for {args.slow_seconds:g} s, then leaves", slow)):
            log_rate = (log_bytes / r["time"] / 1e6 if r is fast else float("nan"))
            print(f"| {label} | {r['bytes'] / 1e6:,.0f} MB | {r['time']:.1f} s | {r['bytes'] / r['time'] / 1e6:.1f} | "
                  f"{r['lines'] / r['time']:,.0f} | {log_rate:.1f} | {r['rest_mb']:.0f} MB | {r['peak_mb']:.0f} MB | "
                  f"{r['hwm_mb']:.0f} MB | {r['peak_mb'] - r['rest_mb']:+.0f} MB | {r['cpu_after']:.2f} s |")
        print(f"(the server's RSS at rest right after start-up, before any request: {res['rest_start_mb']:.0f} MB)")
        if not args.fast_seconds:
            checks.append((f"export: {fast['lines']:,} records = the generator's {meta['entries']:,} entries",
                           fast["lines"] == meta["entries"]))
        for label, r in (("fast reader", fast), ("slow reader", slow)):
            peak = max(r["peak_mb"], 0 if r["hwm_mb"] != r["hwm_mb"] else r["hwm_mb"])
            checks.append((f"export, {label}: server peak RSS {peak:.0f} MB <= {RSS_TARGET_MB:.0f} MB", peak <=
                           RSS_TARGET_MB))
            checks.append((f"export, {label}: no work left once the client left (server CPU {r['cpu_after']:.2f} s "
                           f"in 2 s <= 0.2 s)", r["cpu_after"] <= 0.2))

    if "mix" in res:
        rounds = res["mix"]
        print(f"\nMix (bench/load.py's requests, reduced: {args.mix_clients} wrk connections, half list, half link, "
              f"{args.mix_instances} instances, {args.mix_seconds:g} s, no collections running), alone and while two "
              f"searches of the big log's whole window loop\n")
        print("| Round | Searches | Request | req/s | p50 | p99 | max | errors |")
        print("|---|---|---|---:|---:|---:|---:|---:|")
        for n, r in enumerate(rounds, 1):
            for when in ("alone", "with"):
                for kind, w in zip(("GET …/redislog", "POST …/links"), r[when], strict=True):
                    print(f"| {n} | {'none' if when == 'alone' else 'two'} | {kind} | {w['rps']:,.0f} | "
                          f"{w['p50_us'] / 1000:.1f} ms | {w['p99_us'] / 1000:.1f} ms | {w['max_us'] / 1000:.0f} ms | "
                          f"{w['errors']} |")
        print("\n| Round | Search loop | whole searches done | requests | p50 | p99 | read |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for n, r in enumerate(rounds, 1):
            for loop in r["loops"]:
                what = "keyword NEEDLE, NDJSON export" if loop["kind"] == "export" else "level=warning pages"
                unit = "NDJSON" if loop["kind"] == "export" else "scanned"
                print(f"| {n} | {what} | {loop['done']} | {loop['requests']} | {ms(loop['p50'])} | {ms(loop['p99'])} "
                      f"| {loop['bytes'] / MIB:,.0f} MiB {unit} |")
        print()
        for i, kind in enumerate(("GET …/redislog", "POST …/links")):
            alone = statistics.median(r["alone"][i]["p99_us"] for r in rounds) / 1000
            with_s = statistics.median(r["with"][i]["p99_us"] for r in rounds) / 1000
            rps = statistics.median(r["with"][i]["rps"] / r["alone"][i]["rps"] for r in rounds)
            p50 = (statistics.median(r["with"][i]["p50_us"] for r in rounds)
                   / statistics.median(r["alone"][i]["p50_us"] for r in rounds))
            print(f"{kind}: p99 {alone:.1f} ms alone, {with_s:.1f} ms with searches ({with_s / alone:.2f}x); "
                  f"p50 {p50:.2f}x; req/s {rps:.2f}x")
            checks.append((f"mix, {kind}: p99 with two searches {with_s:.1f} ms <= {MIX_TARGET}x alone "
                           f"({alone:.1f} ms): {with_s / alone:.2f}x", with_s <= MIX_TARGET * alone))
        for i, kind in enumerate(("GET …/redislog", "POST …/links")):
            alone = [r["alone"][i]["p99_us"] / 1000 for r in rounds]
            print(f"noise: {kind} p99 alone ranged {min(alone):.1f}–{max(alone):.1f} ms over {len(rounds)} round(s)")
        errors = sum(w["errors"] for r in rounds for when in ("alone", "with") for w in r[when])
        checks.append((f"mix: zero errors ({errors})", errors == 0))

    if res.get("rss_after"):
        print("\nserver VmRSS after each part: " + ", ".join(f"{k} {v:.0f} MB" for k, v in res["rss_after"]))
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    missed = sum(not ok for _, ok in checks)
    print("all targets met" if not missed else f"{missed} target(s) missed")
    return 0 if args.no_check or not missed else 1


if __name__ == "__main__":
    sys.exit(main())
