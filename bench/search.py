#!/usr/bin/env python3
"""Benchmark: searching a big run log as records (SPEC section 6) against grep, in one run.

Generates (or reuses, --keep) under bench/out/ a synthetic 5-day Redis run log of
--size-gib (legacy format, ~100-byte lines: mostly ``*`` notices, some ``-``, one
line in ~25 a ``#`` warning; one line in ~100k holds NEEDLE; three crash reports
of continuation lines, one of them holding NEEDLE) and a Valkey 8.1 logfmt one of
--logfmt-gib (ISO 8601 timestamps, +09:00, instance zone Asia/Tokyo). Then:

Seek (once): a 1-hour window in the middle of the legacy log, read through a
segment that counts its preads: ascending without filters (checked: bytes read
<= the window's bytes + 200 probes of 4 KiB), and, reported only, with the
keyword and descending.

Search (warm page cache, medians of --reps interleaved repetitions), the window
being the whole file so that every tool reads the same bytes; dcslog runs in this
process (``scan_node`` exhausted, no interpreter start-up), the tools as children
with LC_ALL=C:

  keyword   dcslog ``keyword=NEEDLE`` vs ``grep -F -c NEEDLE`` (and ``rg -F -c`` if
            ``rg`` is installed: Debian ``ripgrep``); target >= 0.8x grep's throughput
  keyword, case-insensitive (reported only) vs ``grep -F -i -c``
  level     dcslog ``level=warning`` vs ``grep -c ' # '``; target <= 1.5x grep's time
  logfmt    the keyword search on the logfmt log; target >= 0.8x grep's throughput

Every tool's count is checked against the generator's. Exits 1 if a target is
missed (--no-check: report only). Quote ratios from one run, not absolute times
across runs (see /work/shared/PERF-ANCHORS.md, "Searching a 1 GiB Redis log").

    python bench/search.py [--size-gib 1] [--logfmt-gib 0.25] [--reps 3] [--keep] [--no-check]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from dcslog.runlog.grammar import Clock
from dcslog.runlog.records import Checkpoint, Filters, Record, Scan, host_segments, scan_node

OUT = Path(__file__).resolve().parent / "out"
MIB = 1 << 20
GIB = 1 << 30
HOURS = 5 * 24
KEYWORD = "NEEDLE"
DENSE = "DB saved on disk"  # about one entry in ten
NEEDLE_EVERY = 100_000  # lines
PROBE = 4096  # one probe read (search.BLOCK)
PROBES_ALLOWED = 200
SMALL_READ = 64 * 1024  # a pread asking for less is counted as a probe, not as reading the window
#: Per format: the instance's zone, the log's UTC offset, grep's pattern for "level >= warning".
ZONES = {"legacy": "UTC", "logfmt": "Asia/Tokyo"}
OFFSETS = {"legacy": timedelta(0), "logfmt": timedelta(hours=9)}
START = datetime(2026, 11, 1)  # local wall-clock time of the first entry
HOUR_MARK = b"\x00HOUR\x00"  # stands for "01 Nov 2026 00" / "2026-11-01T00" in a template
# (weight, level, role, message); {n} is a random number, {o} an IP address byte.
MESSAGES = [
    (20, "*", "M", "100 changes in 300 seconds. Saving..."),
    (20, "*", "M", "Background saving started by pid {n}"),
    (20, "*", "C", "DB saved on disk"),
    (20, "*", "C", "Fork CoW for RDB: current {n} MB, peak {n} MB, average {n} MB"),
    (20, "*", "M", "Background saving terminated with success"),
    (10, "*", "M", "Replica 10.0.3.{o}:6379 asks for synchronization"),
    (10, "*", "M", "Full resync requested by replica 10.0.3.{o}:6379"),
    (10, "*", "M", "Starting BGSAVE for SYNC with target: replicas sockets"),
    (20, "*", "M", "Streamed RDB transfer with replica 10.0.3.{o}:6379 succeeded (socket). Waiting for REPLCONF "
                   "ACK from replica to enable streaming"),
    (10, "*", "M", "Synchronization with replica 10.0.3.{o}:6379 succeeded"),
    (10, "-", "M", "Accepted 10.1.{o}.3:{n}"),
    (15, "-", "M", "Client closed connection id={n} addr=10.1.2.3:{n} laddr=10.0.3.1:6379 fd=12 name= age=0 "
                   "idle=0 flags=N db=0"),
    (4, "#", "M", "Connection with replica 10.0.3.{o}:6379 lost."),
    (3, "#", "M", "Client id={n} addr=10.1.2.3:{n} closed for overcoming of output buffer limits."),
    (1, "#", "M", "WARNING: 32 bit instance detected but no memory limit set."),
]
NEEDLE_MESSAGE = ("-", "M", "Client closed connection id={n} addr=10.1.2.3:{n} name=NEEDLE-batch")
CRASH_LINES = """
=== REDIS BUG REPORT START: Cut & paste starting from here ===
{entry}crashed by signal: 11, si_code: 1
{entry}Accessing address: 0x8
{entry}Crashed running the instruction at: 0x55d2b1e0c1a7

------ STACK TRACE ------
EIP:
redis-server *:6379(debugCommand+0x1a7)[0x55d2b1e0c1a7]

Backtrace:
/lib/x86_64-linux-gnu/libc.so.6(+0x42520)[0x7f0e3c042520]
redis-server *:6379(debugCommand+0x1a7)[0x55d2b1e0c1a7]
redis-server *:6379(call+0x15d)[0x55d2b1da3b9d]
redis-server *:6379(processCommand+0xa55)[0x55d2b1da5e45]
redis-server *:6379(processInputBuffer+0xe4)[0x55d2b1dc0f34]

------ INFO OUTPUT ------
# Server
redis_version:7.2.4
redis_mode:standalone
os:Linux 6.1.0-18-amd64 x86_64
# Clients
connected_clients:{n}

------ CURRENT CLIENT INFO ------
id=7 addr=10.1.2.3:51234 laddr=10.0.3.1:6379 fd=8 name={name} age=3 idle=0 flags=N db=0 cmd=debug
argv[0]: '"debug"'
argv[1]: '"segfault"'

=== REDIS BUG REPORT END. Make sure to include from START to END. ===

       Please report the crash by opening an issue on github:

           http://github.com/redis/redis/issues
"""


def prefix(fmt: str, stamp: str, pid: int, role: str, level: str) -> str:
    """An entry's prefix up to its message; ``stamp`` is the whole timestamp."""
    if fmt == "logfmt":  # Valkey 8.1 --log-format logfmt --log-timestamp-format iso8601
        role_word = {"M": "primary", "S": "replica", "C": "RDB/AOF"}[role]
        level_word = {".": "debug", "-": "info", "*": "notice", "#": "warning"}[level]
        return f'pid={pid} role={role_word} timestamp="{stamp}+09:00" level={level_word} message="'
    return f"{pid}:{role} {stamp} {level} "


def entry(fmt: str, stamp: str, pid: int, role: str, level: str, msg: str) -> str:
    return prefix(fmt, stamp, pid, role, level) + msg + ('"\n' if fmt == "logfmt" else "\n")


def hour_stamp(fmt: str, hour: int) -> bytes:
    moment = START + timedelta(hours=hour)
    return moment.strftime("%Y-%m-%dT%H" if fmt == "logfmt" else "%d %b %Y %H").encode()


def hour_template(fmt: str, lines: int, rng: random.Random, needle_at: int | None) -> tuple[bytes, dict]:
    """One hour of entries with ``HOUR_MARK`` for the date and hour, times rising through the
    hour, NEEDLE in line ``needle_at``; and its counts."""
    weights = [m[0] for m in MESSAGES]
    picks = rng.choices(MESSAGES, weights, k=lines)
    mark = HOUR_MARK.decode()
    out, warnings = [], 0
    for j, (_, level, role, msg) in enumerate(picks):
        if j == needle_at:
            level, role, msg = NEEDLE_MESSAGE
        ms = j * 3_600_000 // lines
        clock = f"{mark}:{ms // 60000:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
        pid = 4242 if role == "M" else 50000 + j % 9973
        msg = msg.replace("{n}", str(rng.randrange(1, 65536))).replace("{o}", str(rng.randrange(1, 255)))
        out.append(entry(fmt, clock, pid, role, level, msg))
        warnings += level == "#"
    counts = {"entries": lines, "lines": lines, "warnings": warnings,
              "needle_lines": int(needle_at is not None), "needle_entries": int(needle_at is not None)}
    return "".join(out).encode(), counts


def crash_report(fmt: str, hour: int, with_needle: bool) -> tuple[bytes, dict]:
    """A crash report at the end of ``hour``: three warning entries and their continuation lines."""
    stamp = hour_stamp(fmt, hour).decode() + ":59:59.999"
    head = prefix(fmt, stamp, 4242, "M", "#")
    version = "Valkey 8.1.1 " if fmt == "logfmt" else "Redis 7.2.4 "
    text = CRASH_LINES.replace("{entry}crashed", "{entry}" + version + "crashed").replace("{n}", "17")
    text = text.replace("{name}", "NEEDLE-admin" if with_needle else "ops")
    if fmt == "logfmt":  # Valkey's words; the message's closing quote
        text = text.replace("REDIS BUG", "VALKEY BUG").replace("redis-server", "valkey-server")
        text = "\n".join(line + '"' if line.startswith("{entry}") else line for line in text.split("\n"))
    text = text.replace("{entry}", head)
    lines = text.count("\n")
    counts = {"entries": 3, "lines": lines, "warnings": 3, "needle_lines": int(with_needle),
              "needle_entries": int(with_needle)}
    return text.encode(), counts


def generate(fmt: str, path: Path, size: int) -> dict:
    """Write the log with large writes; return its hours' offsets and the expected counts."""
    rng = random.Random(2026)
    hour_bytes = size // HOURS
    sample = hour_template(fmt, 2000, rng, None)[0].replace(HOUR_MARK, hour_stamp(fmt, 0))
    lines = max(10, int(hour_bytes / (len(sample) / 2000)))
    templates = [(hour_template(fmt, lines, rng, None), hour_template(fmt, lines, rng, rng.randrange(lines)))
                 for _ in range(4)]
    crashes = {HOURS // 4: False, HOURS // 2: True, 3 * HOURS // 4: False}  # hour: holds NEEDLE
    totals = dict.fromkeys(("entries", "lines", "warnings", "needle_lines", "needle_entries"), 0)
    offsets, entries = [0], []
    with open(path, "wb") as f:
        for hour in range(HOURS):
            # NEEDLE in one line in NEEDLE_EVERY: in this hour when it crosses a multiple of that
            needle = (hour + 1) * lines // NEEDLE_EVERY > hour * lines // NEEDLE_EVERY
            block, counts = templates[hour % len(templates)][needle]
            parts = [(block.replace(HOUR_MARK, hour_stamp(fmt, hour)), counts)]
            if hour in crashes:
                parts.append(crash_report(fmt, hour, crashes[hour]))
            for data, c in parts:
                f.write(data)
                for k in totals:
                    totals[k] += c[k]
            entries.append(sum(c["entries"] for _, c in parts))
            offsets.append(f.tell())
    base = START.replace(tzinfo=timezone(OFFSETS[fmt]))
    return {"size_requested": size, "format": fmt, "offsets": offsets, "hour_entries": entries,
            "start_ms": (base - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1), **totals}


def log_file(fmt: str, size_gib: float) -> tuple[Path, dict]:
    path = OUT / f"search-{fmt}-{size_gib:g}g.log"
    meta_path = path.with_suffix(".json")
    size = int(size_gib * GIB)
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("size_requested") == size and meta.get("file_size") == path.stat().st_size:
            return path, meta
    t = time.perf_counter()
    meta = generate(fmt, path, size)
    meta["file_size"] = path.stat().st_size
    meta_path.write_text(json.dumps(meta))
    print(f"generated {path} ({meta['file_size'] / MIB:.0f} MiB) in {time.perf_counter() - t:.1f} s")
    return path, meta


def warm(path: Path) -> None:
    buf = bytearray(4 * MIB)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


class CountingSegment:
    """A segment that counts its preads and the bytes they return."""

    def __init__(self, seg):
        self.seg, self.size = seg, seg.size
        self.reads = self.small_reads = self.bytes = 0

    def pread(self, offset: int, n: int) -> bytes:
        data = self.seg.pread(offset, n)
        self.reads += 1
        self.small_reads += n < SMALL_READ
        self.bytes += len(data)
        return data


def scan_records(path: Path, meta: dict, filters: Filters, start_ms: int | None = None,
                 end_ms: int | None = None, descending: bool = False, counting: bool = False) -> dict:
    """Exhaust one scan of ``path``; its records, checkpoints, bytes scanned, reads and wall time."""
    clock = Clock(ZoneInfo(ZONES[meta["format"]]))
    with ExitStack() as stack:
        segments = host_segments(str(path), stack)
        if counting:
            segments = [CountingSegment(s) for s in segments]
        scan = Scan(meta["start_ms"] if start_ms is None else start_ms, end_ms, descending=descending,
                    filters=filters, clock=clock)
        records = checkpoints = 0
        t = time.perf_counter()
        for item in scan_node(segments, scan):
            if isinstance(item, Record):
                records += 1
            elif isinstance(item, Checkpoint):
                checkpoints += 1
        elapsed = time.perf_counter() - t
    result = {"time": elapsed, "records": records, "checkpoints": checkpoints, "scanned": scan.scanned}
    if counting:
        result.update(reads=sum(s.reads for s in segments), small_reads=sum(s.small_reads for s in segments),
                      bytes=sum(s.bytes for s in segments))
    return result


def tool(argv: list[str]) -> Callable[[], tuple[float, int]]:
    """A child printing one count (LC_ALL=C: grep's fastest); runs it, returns (wall time, count)."""
    def run() -> tuple[float, int]:
        t = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
        elapsed = time.perf_counter() - t
        if r.returncode not in (0, 1):  # 1: no line matched
            sys.exit(f"{' '.join(argv)} failed with exit code {r.returncode}: {r.stderr.strip()}")
        return elapsed, int(r.stdout.strip() or 0)
    return run


def dcslog(path: Path, meta: dict, filters: Filters) -> Callable[[], tuple[float, int]]:
    def run() -> tuple[float, int]:
        r = scan_records(path, meta, filters)
        return r["time"], r["records"]
    return run


def tool_version(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True).stdout.split("\n")[0].split()
    return out[-1] if out else "?"


def machine(rg: str | None) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    fs = subprocess.run(["df", "--output=fstype", str(OUT)], capture_output=True, text=True).stdout.split()[-1]
    tools = f"GNU grep {tool_version(['grep', '--version'])}"
    tools += f", ripgrep {tool_version([rg, '--version']).split()[0]}" if rg else ", no rg"
    return (f"{os.cpu_count()} vCPU {cpu}, Linux {platform.release()}, {fs} (bench/out), "
            f"Python {platform.python_version()}, {tools}")


def seek(path: Path, meta: dict) -> tuple[list[tuple[str, dict]], int, int]:
    """Scans of the middle hour through counting segments: [(name, result)], window bytes, its entries."""
    hour = HOURS // 2
    start_ms = meta["start_ms"] + hour * 3_600_000
    window = meta["offsets"][hour + 1] - meta["offsets"][hour]
    rows = [
        ("ascending, no filter", scan_records(path, meta, Filters(), start_ms, start_ms + 3_600_000,
                                              counting=True)),
        (f"ascending, keyword {KEYWORD}", scan_records(path, meta, Filters(keyword=KEYWORD), start_ms,
                                                        start_ms + 3_600_000, counting=True)),
        (f"ascending, keyword '{DENSE}'", scan_records(path, meta, Filters(keyword=DENSE), start_ms,
                                                       start_ms + 3_600_000, counting=True)),
        ("descending, no filter", scan_records(path, meta, Filters(), start_ms, start_ms + 3_600_000,
                                               descending=True, counting=True)),
    ]
    return rows, window, meta["hour_entries"][hour]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-gib", type=float, default=1.0, help="legacy log size (default 1, as in PERF-ANCHORS.md)")
    ap.add_argument("--logfmt-gib", type=float, default=0.25, help="logfmt log size (default 0.25)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the generated logs for the next run")
    ap.add_argument("--no-check", action="store_true", help="report only: exit 0 even if a target is missed")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    legacy, meta = log_file("legacy", args.size_gib)
    logfmt, lmeta = log_file("logfmt", args.logfmt_gib)
    rg = shutil.which("rg")
    try:
        for path in (legacy, logfmt):
            warm(path)
        seek_rows, window, window_entries = seek(legacy, meta)
        # name: (what, log, its meta, run, expected count)
        runs: dict[str, tuple[str, Path, dict, Callable[[], tuple[float, int]], int]] = {
            "grep kw": ("grep -F -c NEEDLE", legacy, meta, tool(["grep", "-F", "-c", KEYWORD, str(legacy)]),
                        meta["needle_lines"]),
            "dcslog kw": (f"dcslog keyword={KEYWORD}", legacy, meta, dcslog(legacy, meta, Filters(keyword=KEYWORD)),
                          meta["needle_entries"]),
            "grep kw -i": ("grep -F -i -c needle", legacy, meta,
                           tool(["grep", "-F", "-i", "-c", KEYWORD.lower(), str(legacy)]), meta["needle_lines"]),
            "dcslog kw -i": (f"dcslog keyword={KEYWORD.lower()}, insensitive", legacy, meta,
                             dcslog(legacy, meta, Filters(keyword=KEYWORD.lower(), insensitive=True)),
                             meta["needle_entries"]),
            "grep level": ("grep -c ' # '", legacy, meta, tool(["grep", "-c", " # ", str(legacy)]),
                           meta["warnings"]),
            "dcslog level": ("dcslog level=warning", legacy, meta, dcslog(legacy, meta, Filters(level="warning")),
                             meta["warnings"]),
            "grep logfmt": ("grep -F -c NEEDLE", logfmt, lmeta, tool(["grep", "-F", "-c", KEYWORD, str(logfmt)]),
                            lmeta["needle_lines"]),
            "dcslog logfmt": (f"dcslog keyword={KEYWORD}", logfmt, lmeta,
                              dcslog(logfmt, lmeta, Filters(keyword=KEYWORD)), lmeta["needle_entries"]),
        }
        if rg:
            runs["rg kw"] = ("rg -F -c NEEDLE", legacy, meta, tool([rg, "-F", "-c", KEYWORD, str(legacy)]),
                             meta["needle_lines"])
            runs["rg logfmt"] = ("rg -F -c NEEDLE", logfmt, lmeta, tool([rg, "-F", "-c", KEYWORD, str(logfmt)]),
                                 lmeta["needle_lines"])
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.reps):
            for name, (what, _path, _meta, run, expected) in runs.items():
                elapsed, count = run()
                if count != expected:
                    sys.exit(f"{what}: {count} matches, the generator wrote {expected}")
                times[name].append(elapsed)
    finally:
        if not args.keep:
            for path in (legacy, logfmt):
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)

    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"\n{machine(rg)}")
    hour = HOURS // 2
    print(f"legacy log {meta['file_size'] / MIB:.0f} MiB, {HOURS // 24} days, {meta['lines']:,} lines, "
          f"{meta['entries']:,} entries ({meta['warnings']:,} warnings, {meta['needle_entries']} holding {KEYWORD}, "
          f"3 crash reports); logfmt log {lmeta['file_size'] / MIB:.0f} MiB, {lmeta['lines']:,} lines")
    print(f"\nSeek: the 1-hour window {hour_stamp('legacy', hour).decode()}:00 (+1 h), {window / MIB:.2f} MiB, "
          f"{window_entries:,} entries, at offset {meta['offsets'][hour]:,}; preads counted by a wrapper segment\n")
    print(f"| {'Scan of the window':<38} | {'preads':>7} | {'< 64 KiB':>8} | {'bytes read':>16} | "
          f"{'over window':>16} | {'in 4 KiB':>11} | {'scanned':>11} | {'records':>7} | {'time':>8} |")
    print(f"|{'-' * 40}|{'-' * 8}:|{'-' * 9}:|{'-' * 17}:|{'-' * 17}:|{'-' * 12}:|{'-' * 12}:|{'-' * 8}:|"
          f"{'-' * 9}:|")
    for name, r in seek_rows:
        over = r["bytes"] - window
        print(f"| {name:<38} | {r['reads']:>7,} | {r['small_reads']:>8,} | {r['bytes']:>16,} | {over:>16,} | "
              f"{over / PROBE:>11,.0f} | {r['scanned']:>11,} | {r['records']:>7,} | {r['time']:>6.2f} s |")
    print("(descending is reported only: it reads the window backwards in 64 KiB blocks, each byte once)")

    print(f"\nSearch: the whole file as the window, warm page cache, medians of {args.reps}; "
          f"dcslog in-process (no start-up), tools as children\n")
    print(f"| {'Log':<16} | {'How':<38} | {'Median':>9} | {'GB/s':>5} | {'vs grep':>7} | {'matches':>7} |")
    print(f"|{'-' * 18}|{'-' * 40}|{'-' * 10}:|{'-' * 6}:|{'-' * 8}:|{'-' * 8}:|")
    groups = [("grep kw", ["grep kw", "rg kw", "dcslog kw"]), ("grep kw -i", ["grep kw -i", "dcslog kw -i"]),
              ("grep level", ["grep level", "dcslog level"]), ("grep logfmt", ["grep logfmt", "rg logfmt",
                                                                               "dcslog logfmt"])]
    for base, names in groups:
        for name in names:
            if name not in med:
                continue
            what, path, m, _run, expected = runs[name]
            label = f"{m['format']} {m['file_size'] / MIB:.0f} MiB"
            print(f"| {label:<16} | {what:<38} | {med[name]:>7.3f} s | {m['file_size'] / med[name] / 1e9:>5.2f} | "
                  f"{med[base] / med[name]:>6.2f}x | {expected:>7,} |")
    if not rg:
        print("\n(rg not installed: Debian package ripgrep; its rows are left out)")

    allowed = window + PROBES_ALLOWED * PROBE
    checks = [
        (f"seek, {name}: bytes read <= window + {PROBES_ALLOWED} x 4 KiB: {r['bytes']:,} vs {allowed:,} "
         f"({(r['bytes'] - window) / PROBE:,.0f} probes' worth over the window)", r["bytes"] <= allowed)
        for name, r in seek_rows if name.startswith("ascending")
    ]
    checks += [
        (f"keyword (legacy) >= 0.8x grep's throughput: {med['grep kw'] / med['dcslog kw']:.2f}x",
         med["grep kw"] >= 0.8 * med["dcslog kw"]),
        (f"level=warning <= 1.5x grep -c ' # ' time: {med['dcslog level'] / med['grep level']:.2f}x",
         med["dcslog level"] <= 1.5 * med["grep level"]),
        (f"keyword (logfmt) >= 0.8x grep's throughput: {med['grep logfmt'] / med['dcslog logfmt']:.2f}x",
         med["grep logfmt"] >= 0.8 * med["dcslog logfmt"]),
    ]
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if args.no_check or all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
