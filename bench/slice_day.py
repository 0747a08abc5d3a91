#!/usr/bin/env python3
"""Benchmark: cutting one day out of a big Redis run log.

Generates (or reuses) a synthetic 20-day log under bench/out/ with one ~100 MiB
day (15 Nov 2026, ending in a crash report), in Redis's legacy format or (--format
logfmt) Valkey 8.1's logfmt with ISO 8601 timestamps (+09:00, instance zone
Asia/Tokyo), then, warm cache, takes medians over --reps interleaved repetitions of:

  dd      copying exactly that day's byte range to a file (the floor)
  grep    `grep -F ' 15 Nov 2026 '` (logfmt: `'timestamp="2026-11-15T'`) writing
          matching lines to a file (full scan)
  dcslog  `write_day` in a fresh interpreter, also minus `python -c pass`

and the peak RSS of each child (GNU time). Exits 1 if a target is missed:
dcslog without interpreter start-up <= 1.25x dd, >= 15x faster than grep,
peak RSS <= 60 MB. Quote ratios from one run, not absolute times across runs.

    python bench/slice_day.py [--format legacy|logfmt] [--size-gib 2] [--reps 7] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
MIB = 1 << 20
DAYS = [date(2026, 11, 1) + timedelta(days=i) for i in range(20)]
TARGET = date(2026, 11, 15)
TARGET_BYTES = 100 * MIB
MESSAGES = [
    "100 changes in 300 seconds. Saving...",
    "Background saving started by pid {n}",
    "DB saved on disk",
    "Fork CoW for RDB: current {n} MB, peak {n} MB, average {n} MB",
    "Background saving terminated with success",
    "Connection with replica 10.0.{n}.7:6379 lost.",
    "Replica 10.0.3.{n}:6379 asks for synchronization",
    "Starting BGSAVE for SYNC with target: disk",
    "Synchronization with replica 10.0.3.{n}:6379 succeeded",
    "MASTER <-> REPLICA sync: Loading DB in memory",
    "Client id={n} addr=10.1.2.3:{n} closed for overcoming of output buffer limits.",
    "WARNING: 32 bit instance detected but no memory limit set.",
]
CRASH = (b"\n=== REDIS BUG REPORT START: Cut & paste starting from here ===\n"
         b"{crash_entry}\n"
         b"------ STACK TRACE ------\nredis-server *:6379(debugCommand+0x1a7)[0x55d2b1e0c1a7]\n"
         b"/lib/x86_64-linux-gnu/libc.so.6(+0x29d90)[0x7f0e3c029d90]\n"
         b"=== REDIS BUG REPORT END. Make sure to include from START to END. ===\n")
SLICE = ("import os, sys\nfrom datetime import date\nfrom zoneinfo import ZoneInfo\n"
         "from dcslog.runlog.slicer import write_day\n"
         "fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n"
         "write_day(sys.argv[1], date.fromisoformat(sys.argv[3]), fd, ZoneInfo(sys.argv[4]))\nos.close(fd)\n")
#: The instance's time zone of each format's log, and the fixed string grep looks for.
ZONES = {"legacy": "UTC", "logfmt": "Asia/Tokyo"}
GREP = {"legacy": f" {TARGET.day:02d} {TARGET.strftime('%b')} {TARGET.year} ",
        "logfmt": f'timestamp="{TARGET.isoformat()}T'}


def entry(fmt: str, day: date, sec: int, millis: int, pid: int, role: str, level: str, msg: str) -> bytes:
    clock = f"{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.{millis:03d}"
    if fmt == "logfmt":  # Valkey 8.1 --log-format logfmt --log-timestamp-format iso8601, on a +09:00 host
        words = {"M": "primary", "S": "replica", "C": "RDB/AOF"}[role]
        level_word = {".": "debug", "-": "info", "*": "notice", "#": "warning"}[level]
        return (f'pid={pid} role={words} timestamp="{day.isoformat()}T{clock}+09:00" level={level_word} '
                f'message="{msg}"\n').encode()
    return f"{pid}:{role} {day.day:02d} {day.strftime('%b')} {day.year} {clock} {level} {msg}\n".encode()


def day_blocks(fmt: str, day: date, rng: random.Random, n: int = 4) -> list[bytes]:
    """`n` different ~1 MiB blocks of entries of `day`, times increasing through each block."""
    blocks = []
    for _ in range(n):
        lines, total, i = [], 0, 0
        while total < MIB:
            sec = min(i * 86399 // 10000, 86399)
            msg = rng.choice(MESSAGES).format(n=rng.randrange(1, 65536))
            line = entry(fmt, day, sec, rng.randrange(1000), rng.randrange(1, 4194304), rng.choice("MSC"),
                         rng.choice(".-*#"), msg)
            lines.append(line)
            total += len(line)
            i += 1
        blocks.append(b"".join(lines))
    return blocks


def generate(fmt: str, path: Path, size: int) -> dict:
    """Write the log with large writes; return the target day's range and digest."""
    rng = random.Random(2026)
    other = (size - TARGET_BYTES) // (len(DAYS) - 1)
    meta = {"size_requested": size, "day": TARGET.isoformat()}
    crash = CRASH.replace(b"{crash_entry}", entry(fmt, TARGET, 86399, 998, 4242, "M", "#",
                                                  "Redis 7.2.4 crashed by signal: 11, si_code: 1").rstrip(b"\n"))
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for day in DAYS:
            blocks, written = day_blocks(fmt, day, rng), 0
            if day == TARGET:
                meta["start"] = f.tell()
            while written < (TARGET_BYTES if day == TARGET else other):
                block = blocks[written // MIB % len(blocks)]
                f.write(block)
                written += len(block)
                if day == TARGET:
                    digest.update(block)
            if day == TARGET:
                f.write(crash)
                digest.update(crash)
                meta["end"] = f.tell()
    meta["sha256"] = digest.hexdigest()
    return meta


def log_file(fmt: str, size_gib: float) -> tuple[Path, dict]:
    path = OUT / f"redis-{fmt}-{size_gib:g}g.log"
    meta_path = path.with_suffix(".json")
    size = int(size_gib * (1 << 30))
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


def run(argv: list[str], stdout_path: Path | None = None) -> float:
    """Run a child (C locale: grep's fastest); return its wall time in seconds."""
    with open(stdout_path or os.devnull, "wb") as out:
        t = time.perf_counter()
        code = subprocess.run(argv, stdout=out, env={**os.environ, "LC_ALL": "C"}).returncode
        elapsed = time.perf_counter() - t
    if code != 0:
        sys.exit(f"{argv[0]} failed with exit code {code}")
    return elapsed


def peak_rss_mb(argv: list[str], stdout_path: Path | None = None) -> float:
    """The child's own peak RSS, measured by GNU time. (wait4's ru_maxrss from this
    process would count the bench's own memory, inherited across fork and exec.)"""
    with open(stdout_path or os.devnull, "wb") as out:
        r = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], stdout=out, stderr=subprocess.PIPE,
                           text=True, env={**os.environ, "LC_ALL": "C"})
    if r.returncode != 0:
        sys.exit(f"{argv[0]} failed: {r.stderr.strip()}")
    return int(r.stderr.strip().splitlines()[-1]) / 1024


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    fs = subprocess.run(["df", "--output=fstype", str(OUT)], capture_output=True, text=True).stdout.split()[-1]
    return (f"{os.cpu_count()} vCPU {cpu}, Linux {platform.release()}, {fs} "
            f"(bench/out), Python {platform.python_version()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--format", choices=sorted(ZONES), default="legacy",
                    help="legacy (Redis) or logfmt (Valkey 8.1, ISO 8601 timestamps); default legacy")
    ap.add_argument("--size-gib", type=float, default=2.0,
                    help="log size (default 2, as in PERF-ANCHORS.md; at least 1)")
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions (default 7)")
    ap.add_argument("--keep", action="store_true", help="keep the generated log for the next run")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    log, meta = log_file(args.format, args.size_gib)
    start, count = meta["start"], meta["end"] - meta["start"]
    outs = {name: OUT / f"slice-{name}.out" for name in ("dd", "grep", "dcslog")}
    commands = {
        "dd": (["dd", f"if={log}", f"of={outs['dd']}", "bs=1M", "iflag=skip_bytes,count_bytes",
                f"skip={start}", f"count={count}", "status=none"], None),
        "grep": (["grep", "-F", GREP[args.format], str(log)], outs["grep"]),
        "python -c pass": ([sys.executable, "-c", "pass"], None),
        "dcslog": ([sys.executable, "-c", SLICE, str(log), str(outs["dcslog"]), TARGET.isoformat(),
                    ZONES[args.format]], None),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    rss: dict[str, float] = {}
    try:
        for name, (argv, stdout_path) in commands.items():  # also warms the page cache
            rss[name] = peak_rss_mb(argv, stdout_path)
        for _ in range(args.reps):
            for name, (argv, stdout_path) in commands.items():
                times[name].append(run(argv, stdout_path))
        for name in ("dd", "dcslog"):
            if sha256(outs[name]) != meta["sha256"]:
                sys.exit(f"{name} output does not match the generated day")
        grep_bytes = outs["grep"].stat().st_size
    finally:
        for path in outs.values():
            path.unlink(missing_ok=True)
        if not args.keep:
            log.unlink(missing_ok=True)
            log.with_suffix(".json").unlink(missing_ok=True)

    med = {name: statistics.median(t) for name, t in times.items()}
    med["dcslog without start-up"] = med["dcslog"] - med["python -c pass"]
    rss["dcslog without start-up"] = rss["dcslog"]
    print(f"\n{machine()}")
    print(f"{args.format} log {meta['file_size'] / MIB:.0f} MiB, 20 days; {TARGET} is {count / MIB:.1f} MiB "
          f"at offset {start}; medians of {args.reps} warm runs; grep kept {grep_bytes / MIB:.1f} MiB "
          f"(it drops the crash report's continuation lines)\n")
    print(f"| {'How':<26} | {'Median':>8} | {'vs dd':>6} | {'grep / it':>9} | {'Peak RSS':>8} |")
    print(f"|{'-' * 28}|{'-' * 9}:|{'-' * 7}:|{'-' * 10}:|{'-' * 9}:|")
    for name in ("dd", "grep", "python -c pass", "dcslog", "dcslog without start-up"):
        print(f"| {name:<26} | {med[name]:>6.3f} s | {med[name] / med['dd']:>5.2f}x | "
              f"{med['grep'] / med[name]:>8.1f}x | {rss[name]:>5.1f} MB |")

    net = med["dcslog without start-up"]
    checks = [
        (f"dcslog without start-up <= 1.25x dd: {net / med['dd']:.2f}x", net <= 1.25 * med["dd"]),
        (f"dcslog without start-up >= 15x faster than grep: {med['grep'] / net:.1f}x", med["grep"] >= 15 * net),
        (f"dcslog peak RSS <= 60 MB: {rss['dcslog']:.1f} MB", rss["dcslog"] <= 60),
    ]
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
