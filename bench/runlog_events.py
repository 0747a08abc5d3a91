#!/usr/bin/env python3
"""Benchmark: what reading a node's run log for crash and sync events costs a harvest round.

Each round reads every node's log on from where the round before stopped
(``services/runlog_events.read_told``: three keyword scans, then each bug report
entry by entry). On ``bench/search.py``'s synthetic 5-day log (1 GiB, ~9 MB and
~80k lines an hour, three crash reports; reused from bench/out/, else generated),
warm cache, medians of --reps:

  one round over the last minute / hour of the log, and a catch-up of the whole
  5 days (rounds of at most ``runlog_events.BUDGET`` bytes, until the position
  reaches the end), every crash report found (3, checked);
  beside it, on the same bytes: ``grep -F -c`` of the three keywords (the floor
  of finding the lines) and the unfiltered parse a round would do without the
  keyword scans (reported only).

Target: a round over an hour of this log costs <= 2x grep's time over the same
bytes (it runs three scans and probes where to start). Exits 1 if missed (--no-check).

    python bench/runlog_events.py [--size-gib 1] [--reps 5] [--no-check]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search  # noqa: E402 - bench/search.py: the synthetic log and its generator

from dcslog.db.models import Replication  # noqa: E402
from dcslog.runlog.records import Record  # noqa: E402
from dcslog.services.records import Merge, NodePlan, RecordQuery  # noqa: E402
from dcslog.services.runlog_events import BUDGET, REPORT_KEYWORD, SYNC_KEYWORDS, read_told  # noqa: E402
from dcslog.storage.local import LocalObjectStore  # noqa: E402

HOUR_MS = 3_600_000
NODE = Replication(id="00000000-0000-0000-0000-00000000000a", instance_id="bench", group_name="group-0",
                   host="127.0.0.2", port=6379)


def median_time(run, reps: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(reps):
        t = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def grep_lines(path: Path, offset: int, length: int) -> float:
    """grep -F -c of the three keywords over [offset, offset+length) of the file (dd feeding it)."""
    keywords = " ".join(f"-e '{k}'" for k in (REPORT_KEYWORD, *SYNC_KEYWORDS))
    cmd = (f"dd if={path} bs=1M iflag=skip_bytes,count_bytes skip={offset} count={length} status=none"
           f" | grep -F -c {keywords}")
    t = time.perf_counter()
    subprocess.run(cmd, shell=True, capture_output=True, env={**os.environ, "LC_ALL": "C"})
    return time.perf_counter() - t


def unfiltered(plan: NodePlan, start_ms: int, end_ms: int, store: LocalObjectStore) -> int:
    with ExitStack() as stack:
        return sum(isinstance(item, Record) for item, _ in Merge([plan], RecordQuery(start_ms, end_ms), store,
                                                                  "UTC", stack))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-gib", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-check", action="store_true")
    args = ap.parse_args()
    path, meta = search.log_file("legacy", args.size_gib)
    search.warm(path)
    plan = NodePlan(NODE, str(path), None, None, [])
    store = LocalObjectStore(str(search.OUT / "runlog-events-store"))
    start_ms = meta["start_ms"]
    end_ms = start_ms + search.HOURS * HOUR_MS  # the log's end: rounds at "now" = end + the hold
    offsets = meta["offsets"]
    rows = []
    for label, hours_back in (("last minute", 1 / 60), ("last hour", 1)):
        position = (int(end_ms - hours_back * HOUR_MS), 0)
        took, _ = median_time(lambda p=position: read_told(plan, p, end_ms + 2000, store, "UTC"), args.reps)
        length = int((offsets[-1] - offsets[-2]) * hours_back)
        grep = statistics.median(grep_lines(path, offsets[-1] - length, length) for _ in range(args.reps))
        parse, _ = median_time(lambda p=position: unfiltered(plan, p[0], end_ms, store), max(1, args.reps // 2))
        rows.append((label, length, took, grep, parse))

    def catch_up() -> tuple[int, int]:
        position, rounds, crashes = (start_ms - 1, 0), 0, 0
        while position[0] < end_ms - 1:
            told, position = read_told(plan, position, end_ms + 2000, store, "UTC")
            rounds += 1
            crashes += sum(t.type == "crash" for t in told)
        return rounds, crashes
    whole, (rounds, crashes) = median_time(catch_up, max(1, args.reps // 2))
    grep_whole = statistics.median(grep_lines(path, 0, offsets[-1]) for _ in range(args.reps))

    print(f"\n{path.name}: {offsets[-1] / search.MIB:.0f} MiB, {search.HOURS} hours; read_told budget "
          f"{BUDGET >> 20} MiB a round\n")
    print("| window | bytes | read_told | grep -F -c (3 keywords) | ratio | unfiltered parse |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, length, took, grep, parse in rows:
        print(f"| {label} | {length / search.MIB:.2f} MiB | {took * 1000:.1f} ms | {grep * 1000:.1f} ms | "
              f"{took / grep:.2f}x | {parse * 1000:.0f} ms |")
    print(f"| catch-up, whole log ({rounds} rounds) | {offsets[-1] / search.MIB:.0f} MiB | {whole * 1000:.0f} ms | "
          f"{grep_whole * 1000:.0f} ms | {whole / grep_whole:.2f}x | – |")
    hour_ratio = rows[1][2] / rows[1][3]
    checks = [(f"crash reports found in the catch-up: {crashes} (3)", crashes == 3),
              (f"a round over the last hour: {hour_ratio:.2f}x grep (<= 2x)", hour_ratio <= 2.0)]
    for text, ok in checks:
        print(("ok   " if ok else "MISS ") + text)
    return 0 if args.no_check or all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
