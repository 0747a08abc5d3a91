"""Binary search for a day's bytes in time-ordered log data, by byte offset.

Works on any random-access *source* (an open file with a size snapshot, or an
in-memory buffer) and reads it in small blocks, so the cost of finding a day
is O(log size) block reads plus the length of the continuation-line runs it
has to step over — never a scan of the data.

Terms: a *prefixed line* starts an entry (see ``grammar``); its *effective
date* is its own day in the instance's time zone (``grammar.Clock``). Every other line's effective date is that of
the nearest prefixed line before it. Lines before the first prefixed line of
the source take the date ``lead`` given by the caller (the date of the last
entry of an older source), or, without one, the date of that first prefixed
line. Effective dates are assumed non-decreasing, as Redis writes them.
"""

from __future__ import annotations

import os
from datetime import date
from typing import Protocol

from dcslog.runlog.grammar import PREFIX_MAX, Clock, Head, match_head

__all__ = ["BLOCK", "BufferSource", "FileSource", "day_bounds", "last_dated", "next_dated", "next_entry"]

#: Read size of one probe: a few lines around the probed offset.
BLOCK = 4096


class FileSource:
    """An open file descriptor seen as its first ``size`` bytes (a snapshot: the log may grow)."""

    def __init__(self, fd: int, size: int):
        self.fd, self.size = fd, size

    def pread(self, offset: int, n: int) -> bytes:
        return os.pread(self.fd, max(0, min(n, self.size - offset)), offset)


class BufferSource:
    """Bytes already in memory (a decompressed chunk), without copying them."""

    def __init__(self, buf: bytes | memoryview):
        self.buf, self.size = memoryview(buf), len(buf)

    def pread(self, offset: int, n: int) -> bytes:
        return bytes(self.buf[offset:offset + n])


class Source(Protocol):
    """What is searched: ``size`` bytes, read at any offset (a file, a buffer, an S3 object…)."""

    @property
    def size(self) -> int: ...

    def pread(self, offset: int, n: int) -> bytes: ...


def is_head_of(older: Source, current: Source) -> bool:
    """Whether ``older`` is byte for byte the start of ``current`` (a ``copytruncate`` rotation
    caught half-way). Compared piece by piece, stopping at the first difference: after a
    completed rotation the current log starts with other lines, so this costs one 64 KiB read of
    each."""
    if not 0 < older.size <= current.size:
        return False
    offset, piece = 0, 64 * 1024
    while offset < older.size:
        wanted = min(piece, older.size - offset)
        if older.pread(offset, wanted) != current.pread(offset, wanted):
            return False
        offset, piece = offset + wanted, 1 << 20
    return True


_UTC_CLOCK = Clock()


def next_dated(src: Source, x: int, hi: int, clock: Clock = _UTC_CLOCK) -> tuple[int, date] | None:
    """(offset, date) of the first prefixed line starting in ``[x, hi)``, else None."""
    hit = next_entry(src, x, hi)
    return None if hit is None else (hit[0], clock.day(hit[1]))


def next_entry(src: Source, x: int, hi: int) -> tuple[int, Head] | None:
    """(offset, parsed prefix) of the first prefixed line starting in ``[x, hi)``, else None.

    A source whose lines are not the log's own (a container log: ``containers.WrappedSource``)
    answers this itself, with offsets of its own lines."""
    if type(src) is not FileSource and (own := getattr(src, "next_entry", None)) is not None:
        return own(x, hi)
    at_start = x == 0
    pos = x if at_start else x - 1  # the byte before x tells whether x starts a line
    # Read enough that a line starting in the first half of the block has its whole prefix.
    want = max(BLOCK, 2 * PREFIX_MAX)
    while pos < hi:
        block = src.pread(pos, want)
        if not block:
            return None
        i = 0
        if not at_start:
            nl = block.find(b"\n")
            if nl < 0:
                pos += len(block)
                continue
            i, at_start = nl + 1, True
        while i < len(block):
            if pos + i >= hi:
                return None
            if len(block) == want and len(block) - i < PREFIX_MAX:
                break  # this line's prefix may be cut off: read again from its start
            if (head := match_head(block, i)) is not None:
                return pos + i, head
            nl = block.find(b"\n", i)
            if nl < 0:
                i, at_start = len(block), False
                break
            i = nl + 1
        pos += i
    return None


def last_dated(src: Source, clock: Clock = _UTC_CLOCK) -> tuple[int, date] | None:
    """(offset, date) of the last prefixed line, else None; reads backwards from the end."""
    if type(src) is not FileSource and (own := getattr(src, "last_entry", None)) is not None:
        hit = own()
        return None if hit is None else (hit[0], clock.day(hit[1]))
    end = src.size  # every line starting at or after `end` has been looked at
    while end > 0:
        start = max(0, end - BLOCK)
        block = src.pread(start, end - start)
        # Line starts strictly inside (start, end) follow a newline before end - 1.
        lowest = None
        nl = block.rfind(b"\n", 0, len(block) - 1)
        while nl >= 0:
            lowest = nl + 1
            if (d := _date_at(src, block, start, lowest, clock)) is not None:
                return start + lowest, d
            nl = block.rfind(b"\n", 0, nl)
        if start == 0:
            d = _date_at(src, block, 0, 0, clock)
            return (0, d) if d is not None else None
        # No line start inside the block: the line holding `start` began earlier,
        # so look again including `start` itself.
        end = start + (lowest if lowest is not None else 1)
    return None


def _date_at(src: Source, block: bytes, start: int, i: int, clock: Clock) -> date | None:
    """Date of the line at ``block[i]`` (``block`` read at ``start``), re-reading
    its prefix when the block ends too early to hold all of it."""
    if len(block) - i < PREFIX_MAX and start + len(block) < src.size:
        return clock.day_at(src.pread(start + i, PREFIX_MAX))
    return clock.day_at(block, i)


def first_entry_from(src: Source, day: date, after: bool, lo: int = 0, clock: Clock = _UTC_CLOCK) -> int:
    """Offset of the first prefixed line at or after ``lo`` dated after ``day``
    (``after``) or on/after it (not ``after``), else ``src.size``."""
    best = hi = src.size  # the answer is `best` or a prefixed line starting in [lo, hi)
    while lo < hi:
        mid = (lo + hi) // 2
        hit = next_dated(src, mid, hi, clock)
        if hit is None:
            hi = mid
        elif hit[1] > day or (not after and hit[1] == day):
            best, hi = hit[0], mid
        else:
            lo = hit[0] + 1
    return best


def day_bounds(src: Source, day: date, lead: date | None = None, clock: Clock = _UTC_CLOCK) -> tuple[int, int]:
    """Byte range ``[start, end)`` of the lines whose effective date is ``day``.

    ``lead`` is the effective date of lines before the first prefixed line (see
    the module docstring). An absent day gives an empty range.
    """
    if lead is None:
        first = next_dated(src, 0, src.size, clock)
        lead = first[1] if first else None
    if lead is not None and lead > day:
        return 0, 0
    start = 0 if lead == day else first_entry_from(src, day, after=False, clock=clock)
    return start, first_entry_from(src, day, after=True, lo=start, clock=clock)
