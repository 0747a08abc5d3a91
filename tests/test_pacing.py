"""Scans give way to requests (dcslog.pacing): the policy on a clock the test drives, the loop
watcher on a real loop, and the scans' pause points on a real log file."""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest

import dcslog.runlog.records as scan_module
from dcslog import pacing
from dcslog.pacing import HOLD, LAG, LONG_SCAN, MAX_WORK, SHARE, Pacer, watch_loop
from dcslog.runlog.records import CHUNK, Filters, Record, Scan, host_segments, scan_node
from tests.runlog_reference import write_entry


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_long_scan_works_its_share_only_while_the_loop_lags():
    clock = Clock()
    pacer = Pacer(clock, clock.sleep)
    long = LONG_SCAN
    pacer.pause(long)  # the scan's first block: nothing worked yet
    clock.now += 0.004
    pacer.pause(long)
    assert clock.slept == []  # the loop keeps up: full speed

    pacer.lagged(LAG / 2)
    clock.now += 0.004
    pacer.pause(long)
    assert clock.slept == []  # late, but within what a busy scan alone causes

    pacer.lagged(LAG * 3)
    clock.now += 0.004
    pacer.pause(long - 1)
    assert clock.slept == []  # a short scan (a page, a follow's poll) is never paced
    clock.now += 0.004
    pacer.pause(long)
    assert clock.slept == [pytest.approx(0.004 * (1 - SHARE) / SHARE)]
    clock.now += 1.0  # a long block (or a quiet spell): counted as MAX_WORK at most
    pacer.lagged(LAG * 3)
    pacer.pause(long)
    assert clock.slept[-1] == pytest.approx(MAX_WORK * (1 - SHARE) / SHARE)

    clock.slept.clear()
    clock.now += HOLD  # no late timer since: the lag is forgotten
    pacer.pause(long)
    assert clock.slept == []


def test_the_watcher_sees_a_loop_blocked_by_a_request():
    pacer = Pacer()

    async def main() -> None:
        watcher = asyncio.create_task(watch_loop(pacer))
        await asyncio.sleep(0.05)
        time.sleep(0.1)  # a handler hogging the loop: its timers fire late
        await asyncio.sleep(0)
        await asyncio.sleep(pacing.TICK * 2)
        watcher.cancel()

    asyncio.run(main())
    assert pacer._lagging_until > time.monotonic() - 1  # marked as lagging by that stall


def test_every_block_a_scan_reads_passes_a_pause_point(tmp_path, monkeypatch):
    """Forward (with and without filters) and descending scans call the pacer before each read,
    so a long scan can always be paced: at least one pause per block of the window read."""
    log = tmp_path / "redis.log"
    start = datetime(2026, 11, 3, tzinfo=UTC)
    with log.open("wb") as f:
        for i in range(60_000):
            level = "warning" if i % 50 == 0 else "notice"
            f.write(write_entry(start + timedelta(milliseconds=i * 7), f"line {i} " + "x" * 60, level=level))
    size = log.stat().st_size
    assert size > 3 * CHUNK

    class Counting:
        pauses = 0

        def pause(self, scanned: int) -> None:
            Counting.pauses += 1

    monkeypatch.setattr(scan_module, "PACER", Counting())
    blocks = {"every entry": (Scan(0, None), CHUNK),
              "level": (Scan(0, None, filters=Filters(level="warning")), CHUNK),
              "keyword": (Scan(0, None, filters=Filters(keyword="line 59999")), 4 * CHUNK),
              "descending": (Scan(0, None, descending=True), 64 * 1024)}
    for name, (scan, block) in blocks.items():
        Counting.pauses = 0
        with ExitStack() as stack:
            records = [r for r in scan_node(host_segments(str(log), stack), scan) if isinstance(r, Record)]
        assert records, name
        assert Counting.pauses >= size // block, (name, Counting.pauses)
