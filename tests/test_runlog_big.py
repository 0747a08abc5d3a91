"""A 2 GiB log: the right bytes come out, and finding them takes a bounded number of reads.

Skip with DCSLOG_SKIP_BIG=1 (needs ~2.2 GiB free in the temp dir).
"""

import hashlib
import os
import random
from datetime import UTC, date
from zoneinfo import ZoneInfo

import pytest

from dcslog.runlog import Clock, day_range, search, write_day
from dcslog.runlog.grammar import PREFIX_MAX
from dcslog.runlog.search import FileSource, day_bounds
from tests.runlog_reference import at, write_entry
from tests.test_runlog_slicer import CountingSource

pytestmark = pytest.mark.skipif(os.environ.get("DCSLOG_SKIP_BIG") == "1", reason="DCSLOG_SKIP_BIG=1")

GIB = 1 << 30
DAYS = [date(2026, 11, d) for d in range(1, 21)]
TARGET = date(2026, 11, 15)
MESSAGES = [
    "100 changes in 300 seconds. Saving...",
    "Background saving started by pid {n}",
    "DB saved on disk",
    "Fork CoW for RDB: current {n} MB, peak {n} MB, average {n} MB",
    "Background saving terminated with success",
    "Connection with replica 10.0.{n}.7:6379 lost.",
    "Replica 10.0.3.{n}:6379 asks for synchronization",
    "Synchronization with replica 10.0.3.{n}:6379 succeeded",
    "WARNING: client output buffer limit reached for client id={n}",
]
CRASH = (b"\n=== REDIS BUG REPORT START: Cut & paste starting from here ===\n"
         b"------ STACK TRACE ------\nredis-server *:6379(debugCommand+0x1a7)[0x55d2b1e0c1a7]\n"
         b"=== REDIS BUG REPORT END. Make sure to include from START to END. ===\n")


TOKYO = ZoneInfo("Asia/Tokyo")
# (log-format, log-timestamp-format, the instance's time zone): Redis's own, and Valkey 8.1's
# logfmt with zoned timestamps whose days are the instance's, not UTC's.
FORMATS = {"legacy": ("legacy", "legacy", UTC), "logfmt-iso8601": ("logfmt", "iso8601", TOKYO)}


def day_block(day, rng, style, tz, size=1 << 20):
    """About `size` bytes of varied entries of `day`, times increasing through the block."""
    entries, total = [], 0
    while total < size:  # the entries first, then their times spread over the day
        entry = dict(message=rng.choice(MESSAGES).format(n=rng.randrange(1, 100000)), pid=rng.randrange(1, 99999),
                     role=rng.choice(["master", "slave", "child"]),
                     level=rng.choice(["debug", "verbose", "notice", "warning"]))
        entries.append(entry)
        total += len(write_entry(at(day, 0, tz), style=style, tz=tz, **entry))
    return b"".join(write_entry(at(day, i * 86399 // len(entries) + rng.randrange(1000) / 1000, tz), style=style,
                                tz=tz, **entry) for i, entry in enumerate(entries))


@pytest.fixture(scope="module", params=sorted(FORMATS))
def big_log(request, tmp_path_factory):
    """2 GiB, 20 days; yields (path, sha256 of the target day, its length, time zone)."""
    *style, tz = FORMATS[request.param]
    path = tmp_path_factory.mktemp("big") / "redis.log"
    rng = random.Random(15)
    per_day = 2 * GIB // len(DAYS) // (1 << 20)
    digest, length = hashlib.sha256(), 0
    try:
        with open(path, "wb") as f:
            for day in DAYS:
                block = day_block(day, rng, tuple(style), tz)
                for _ in range(per_day):
                    f.write(block)
                if day == TARGET:
                    f.write(CRASH)  # crosses midnight: still the target day
                    for _ in range(per_day):
                        digest.update(block)
                    digest.update(CRASH)
                    length = per_day * len(block) + len(CRASH)
        assert path.stat().st_size >= 2 * GIB - len(DAYS) * (1 << 20)
        yield str(path), digest.hexdigest(), length, tz
    finally:
        path.unlink(missing_ok=True)


def test_search_cost_is_bounded(big_log):
    path, _, length, tz = big_log
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        for day in (DAYS[0], TARGET, DAYS[-1]):
            src = CountingSource(f.fileno(), size)
            start, end = day_bounds(src, day, clock=Clock(tz))
            # Two binary searches over 2^31 bytes: ~31 probes each, one block read per probe.
            assert src.reads <= 2 * 33 + 4, src.reads
            assert src.bytes <= (2 * 33 + 4) * max(search.BLOCK, 2 * PREFIX_MAX)
    assert day_range(path, DAYS[0], tz)[0] == 0
    assert day_range(path, DAYS[-1], tz)[1] == size
    start, end = day_range(path, TARGET, tz)
    assert end - start == length


def test_write_day_matches_generated_bytes(big_log, tmp_path, monkeypatch):
    path, sha, length, tz = big_log
    reads = []
    pread = FileSource.pread
    monkeypatch.setattr(FileSource, "pread", lambda self, o, n: reads.append(n) or pread(self, o, n))
    out = tmp_path / "day.log"
    try:
        with open(out, "wb") as f:
            assert write_day(path, TARGET, f.fileno(), tz) == length
        assert len(reads) <= 3 * 33 + 8  # search + first/last entry: no scan of the ~100 MiB day
        digest = hashlib.sha256()
        with open(out, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        assert digest.hexdigest() == sha
    finally:
        out.unlink(missing_ok=True)
