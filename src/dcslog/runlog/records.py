"""One node's run log as records: the entries of a time window, found by seeking, filtered where the data is.

A node's log is a list of *segments*, oldest first: random-access sources in
time order (the collected day files, the rotated files, the live log; a gzip
file is decompressed into a temporary file first). Entries may run across a
segment boundary: continuation lines at the start of a segment belong to the
last entry of the segment before it.

Every entry has a *key* ``(time_ms, seq)``: its time and its index in the run
of consecutive entries with the same millisecond. The key is what the entry
is, not where it is stored, so the same entry read from the live log, a
rotated copy or a collected day has the same key; keys order the entries of
one node. A cursor names a key; a scan continues strictly after it (or, in
descending order, strictly before it).

Cost: the start of a window is found by binary search on entry times (the
same probe reads as a day's slice), then only the window's bytes are read. A
keyword is looked for in the raw bytes first (C speed) and only entries that
hold it are parsed; without one every entry of the window is parsed. Memory is
bounded by the read chunk, whatever the window.

A scan yields ``Record`` objects and, every ``CHUNK`` of bytes or so, a
``Checkpoint``: the key of the last entry examined, whether or not it matched.
The merge of several nodes stops at a checkpoint when its byte budget runs
out, so a window too large for one request is paged, never refused.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack

from stringzilla import find as _find

from dcslog.runlog.grammar import LEVELS, PREFIX_MAX, ROLES, Clock, Head, match_head
from dcslog.runlog.search import FileSource, Source, next_entry
from dcslog.runlog.sources import log_sources

__all__ = ["CHUNK", "Checkpoint", "Filters", "Record", "Scan", "Segment", "first_time", "host_segments",
           "record_from_wire", "record_to_wire", "scan_node"]

CHUNK = 1 << 20
_BACK_BLOCK = 16 * 1024
#: Read size when looking back for one entry's start (a keyword hit's): lines are short.
_SMALL_BLOCK = 1024
_GZIP_MAGIC = b"\x1f\x8b"
_LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}
Key = tuple[int, int]


#: What a scan reads: ``size`` bytes, read at any offset (``FileSource``, an S3 range reader…).
Segment = Source


class Filters:
    """What a record must hold: ``keyword`` (bytes, in its message or one of its lines; ASCII
    letters without case when ``insensitive``), a minimum ``level``, a ``role`` (Redis words)."""

    __slots__ = ("keyword", "insensitive", "min_rank", "role")

    def __init__(self, keyword: str | None = None, insensitive: bool = False, level: str | None = None,
                 role: str | None = None):
        if level is not None and level not in _LEVEL_RANK:
            raise ValueError(f"level must be one of {LEVELS}")
        if role is not None and role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        kw = keyword.encode() if keyword else None
        if kw is not None and (b"\n" in kw or b"\r" in kw):
            raise ValueError("a keyword is found within one line: it cannot hold a line break")
        self.insensitive = insensitive
        self.keyword = kw.lower() if kw is not None and insensitive else kw
        self.min_rank = _LEVEL_RANK[level] if level else 0
        self.role = role

    def head_matches(self, head: Head) -> bool:
        return _LEVEL_RANK[head.level] >= self.min_rank and (self.role is None or head.role == self.role)


class Record:
    """One entry: its key, what its prefix says, its message and continuation lines (bytes until shown)."""

    __slots__ = ("time_ms", "seq", "pid", "role", "level", "format", "message", "lines")

    def __init__(self, time_ms: int, seq: int, pid: int, role: str, level: str, format: str, message: bytes,
                 lines: list[bytes]):
        self.time_ms, self.seq, self.pid, self.role, self.level = time_ms, seq, pid, role, level
        self.format, self.message, self.lines = format, message, lines

    @property
    def key(self) -> Key:
        return self.time_ms, self.seq

    def __repr__(self) -> str:
        return f"Record({self.time_ms}.{self.seq} {self.role} {self.level} {self.message[:40]!r})"


def record_to_wire(record: Record) -> dict:
    """The record as the agent sends it: JSON-safe, every byte kept (undecodable ones as surrogates)."""
    return {"t": record.time_ms, "q": record.seq, "p": record.pid, "r": record.role, "l": record.level,
            "f": record.format, "m": record.message.decode("utf-8", "surrogateescape"),
            "c": [line.decode("utf-8", "surrogateescape") for line in record.lines]}


def record_from_wire(item: dict) -> Record:
    return Record(int(item["t"]), int(item["q"]), int(item["p"]), str(item["r"]), str(item["l"]), str(item["f"]),
                  item["m"].encode("utf-8", "surrogateescape"),
                  [line.encode("utf-8", "surrogateescape") for line in item["c"]])


class Checkpoint:
    """Every entry up to ``key`` (in the scan's direction) has been examined."""

    __slots__ = ("key",)

    def __init__(self, key: Key):
        self.key = key

    def __repr__(self) -> str:
        return f"Checkpoint({self.key})"


class Scan:
    """A scan's query: the window ``[start_ms, end_ms)`` (``end_ms`` None: open), where to
    continue (``after``: the key last seen), the direction, the filters, and a byte counter."""

    __slots__ = ("start_ms", "end_ms", "after", "descending", "filters", "clock", "scanned")

    def __init__(self, start_ms: int, end_ms: int | None, *, after: Key | None = None, descending: bool = False,
                 filters: Filters | None = None, clock: Clock | None = None):
        self.start_ms, self.end_ms, self.after, self.descending = start_ms, end_ms, after, descending
        self.filters = filters or Filters()
        self.clock = clock or Clock()
        self.scanned = 0  # bytes of the window read so far (probes not counted)


def host_segments(logfile: str, stack: ExitStack) -> list[Segment]:
    """The live log and its rotated copies as segments, oldest first, opened now (a snapshot:
    a rotation meanwhile cannot shift them). A gzip copy is decompressed into a temporary file
    when first read (a scan that starts in a newer segment never pays for it); everything is
    closed with ``stack``. A newest rotated copy that is the head of the live log (a
    ``copytruncate`` caught half-way) is left out. FileNotFoundError when there is no log at all."""
    segments: list[Segment] = []
    for path in log_sources(logfile):
        try:
            f = stack.enter_context(open(path, "rb", buffering=0))
        except FileNotFoundError:
            continue  # rotated away between listing and opening
        if f.read(2) == _GZIP_MAGIC:
            segments.append(_GzipSegment(f, stack))
        else:
            segments.append(FileSource(f.fileno(), os.fstat(f.fileno()).st_size))
    if not segments:
        raise FileNotFoundError(f"{logfile}: no run log or rotated run log")
    if len(segments) >= 2 and isinstance(segments[-2], FileSource) and isinstance(segments[-1], FileSource) \
            and _is_head_of(segments[-2], segments[-1]):
        segments.pop(-2)
    return segments


class _GzipSegment:
    """A gzip file read as its decompressed bytes, decompressed into a temporary file on first use."""

    def __init__(self, f, stack: ExitStack):
        self._file, self._stack = f, stack
        self._plain: FileSource | None = None

    def _open(self) -> FileSource:
        if self._plain is None:
            self._file.seek(0)
            plain = self._stack.enter_context(tempfile.TemporaryFile())
            with gzip.GzipFile(fileobj=self._file) as g:
                shutil.copyfileobj(g, plain, CHUNK)
            plain.flush()
            self._plain = FileSource(plain.fileno(), plain.tell())
        return self._plain

    @property
    def size(self) -> int:
        return self._open().size

    def pread(self, offset: int, n: int) -> bytes:
        return self._open().pread(offset, n)


def _is_head_of(older: FileSource, current: FileSource) -> bool:
    if not 0 < older.size <= current.size:
        return False
    offset, piece = 0, 64 * 1024
    while offset < older.size:
        wanted = min(piece, older.size - offset)
        if older.pread(offset, wanted) != current.pread(offset, wanted):
            return False
        offset, piece = offset + wanted, CHUNK
    return True


def first_time(segments: Sequence[Segment], clock: Clock) -> int | None:
    """Time (ms) of the first entry of the segments, None when they hold none."""
    for seg in segments:
        hit = next_entry(seg, 0, seg.size)
        if hit is not None:
            return clock.epoch_ms(hit[1])
    return None


def scan_node(segments: Sequence[Segment], scan: Scan) -> Iterator[Record | Checkpoint]:
    """The records of ``segments`` (one node's log, oldest first) that ``scan`` asks for, in its
    direction, with a ``Checkpoint`` now and then. Stops at the end of the window."""
    if scan.descending:
        return _backward(list(segments), scan)
    return _forward(list(segments), scan)


# --- forward --------------------------------------------------------------------------------


def _lower_key(scan: Scan) -> Key:
    """The smallest key a forward scan may return."""
    low = (scan.start_ms, 0)
    if scan.after is not None:
        low = max(low, (scan.after[0], scan.after[1] + 1))
    return low


def _forward(segments: list[Segment], scan: Scan) -> Iterator[Record | Checkpoint]:
    clock, end_ms, filters = scan.clock, scan.end_ms, scan.filters
    low = _lower_key(scan)
    # The first segment whose last entry is not before the lower bound: a run of same-millisecond
    # entries may begin at the end of the segment before the one holding the bound's time.
    start_index = _start_segment(segments, low[0], clock)
    if start_index is None:
        return
    offset = _seek_ms(segments[start_index], low[0], clock)
    if filters.keyword is not None:
        yield from _forward_keyword(segments, start_index, offset, scan, low)
        return
    prev_ms = seq = -1
    last_key: Key | None = None
    for item in _entries_forward(segments, start_index, offset, scan):
        if item is None:  # a chunk read: everything up to the last entry is examined
            if last_key is not None and last_key >= low:  # never at or behind the cursor: no progress
                yield Checkpoint(last_key)
            continue
        head, raw, index, off = item
        t = clock.epoch_ms(head)
        if end_ms is not None and t >= end_ms:
            return
        if last_key is None:
            seq = _same_ms_before(segments, index, off, t, clock)
        else:
            seq = seq + 1 if t == prev_ms else 0
        prev_ms, last_key = t, (t, seq)
        if last_key >= low and (record := _record(head, raw, last_key, filters)) is not None:
            yield record


def _start_segment(segments: list[Segment], ms: int, clock: Clock) -> int | None:
    """The first segment whose last entry is at or after ``ms`` (None: none is), looked for from
    the newest: a scan near the present never opens the old (perhaps compressed) copies."""
    found = None
    for i in range(len(segments) - 1, -1, -1):
        last = _last_head(segments[i])
        if last is None:
            continue
        if clock.epoch_ms(last[1]) < ms:
            break
        found = i
        first = next_entry(segments[i], 0, segments[i].size)
        if first is not None and clock.epoch_ms(first[1]) < ms:
            break  # starts before ms: no older segment reaches it
    return found


def _forward_keyword(segments: list[Segment], start_index: int, offset: int, scan: Scan,
                     low: Key) -> Iterator[Record | Checkpoint]:
    """``_forward`` when a keyword is asked for: the bytes are searched for it and only the
    entries holding it are parsed; each hit's ``seq`` is counted back from it."""
    clock, end_ms, filters = scan.clock, scan.end_ms, scan.filters
    for index, off, head, raw in _keyword_hits(segments, start_index, offset, scan):
        t = clock.epoch_ms(head)
        if end_ms is not None and t >= end_ms:
            return
        seq = _same_ms_before(segments, index, off, t, clock)
        if raw is None:  # searched up to this entry, not through it
            if (t, seq - 1) >= low:
                yield Checkpoint((t, seq - 1))
            continue
        if (t, seq) >= low and (record := _record(head, raw, (t, seq), filters)) is not None:
            yield record


def _keyword_hits(segments: list[Segment], index: int, offset: int, scan: Scan
                  ) -> Iterator[tuple[int, int, Head, bytes | None]]:
    """(segment index, offset, head, raw) of each entry from ``segments[index]``/``offset`` on
    whose bytes hold the scan's keyword, across segments; after a chunk without a hit, the
    entry the search has reached with ``raw`` None. Nothing past the window's end is read: the
    entry there comes last, with ``raw`` None, and its time ends the scan."""
    keyword = scan.filters.keyword
    assert keyword is not None
    insensitive = scan.filters.insensitive
    held: tuple[int, int, Head, bytes] | None = None  # a hit that ends its segment: may go on in the next
    for i in range(index, len(segments)):
        seg = segments[i]
        start = offset if i == index else 0
        if i > index:
            lead = _leading_lines(seg)
            if held is not None:
                yield held[0], held[1], held[2], held[3] + lead
            elif lead and keyword in (lead.lower() if insensitive else lead):
                prev = segments[i - 1]
                last = _last_head(prev)
                if last is not None and (i - 1 > index or last[0] >= offset):
                    yield i - 1, last[0], last[1], prev.pread(last[0], prev.size - last[0]) + lead
            held = None
            start = len(lead)
        stop = seg.size if scan.end_ms is None else max(start, _seek_ms(seg, scan.end_ms, scan.clock))
        for off, head, raw, complete in _keyword_entries(seg, start, stop, keyword, insensitive, scan):
            if raw is not None and not complete:
                held = (i, off, head, raw)
            else:
                yield i, off, head, raw
        if stop < seg.size:
            return  # the entry at `stop` (yielded last) is past the window
    if held is not None:
        yield held


def _keyword_entries(seg: Segment, start: int, stop: int, keyword: bytes, insensitive: bool, scan: Scan
                     ) -> Iterator[tuple[int, Head, bytes | None, bool]]:
    """(offset, head, raw, complete) of each entry of ``seg`` in ``[start, stop)`` (``start`` an
    entry start, ``stop`` an entry start or the end) whose bytes hold ``keyword`` (in the
    lower-cased data when ``insensitive``); ``complete`` is False for the segment's last entry.
    After a chunk without more hits, (offset, head, None, True) of the entry holding the chunk's
    end: searched up to there; when ``stop`` is before the end, the entry there likewise, last.

    Every hit of a chunk is taken from that chunk (one read per 4 MiB whatever the number of
    hits), with stringzilla's SIMD search: CPython's ``bytes.find`` reaches a third of grep's
    speed here, stringzilla more than grep's (docs/benchmarks.md)."""
    overlap = len(keyword) - 1
    pos = start
    while pos < stop:
        n = min(4 * CHUNK, stop - pos)
        data = seg.pread(pos, n + overlap)
        hay = data.lower() if insensitive else data
        done = 0  # data[:done] is searched, and every entry with a hit there yielded
        i = _find(hay, keyword, 0, len(hay))
        while 0 <= i < n:
            entry_start = _entry_start(seg, pos + i, start)
            if entry_start is None:  # continuation lines before the segment's first entry: not ours
                nl = data.find(b"\n", i)
                done = nl + 1 if 0 <= nl < n else n
            else:
                entry_end, head, raw = _entry_at(seg, entry_start)
                scan.scanned += max(0, entry_end - (pos + done))
                yield entry_start, head, raw, entry_end < seg.size
                done = entry_end - pos
            if done >= n:
                break
            i = _find(hay, keyword, done, len(hay))
        if done >= n:  # the last entry found runs past the chunk: go on after it
            pos += done
            continue
        scan.scanned += n - done
        pos += n
        reached = _entry_start(seg, pos - 1, start)
        if reached is not None:
            yield reached, _head_at(seg, reached), None, True
    if stop < seg.size:
        yield stop, _head_at(seg, stop), None, True


def _head_at(seg: Segment, off: int) -> Head:
    head = match_head(seg.pread(off, PREFIX_MAX))
    assert head is not None
    return head


def _entries_forward(segments: list[Segment], index: int, offset: int, scan: Scan
                     ) -> Iterator[tuple[Head, bytes, int, int] | None]:
    """(head, raw bytes with continuation lines, segment index, offset) of every entry from
    ``segments[index]`` at ``offset`` on, across segments; None after each chunk read."""
    pending: tuple[Head, list[bytes], int, int] | None = None
    for i in range(index, len(segments)):
        for off, head, line in _lines(segments[i], offset if i == index else 0, scan):
            if line is None:
                yield None
            elif head is not None:
                if pending is not None:
                    yield pending[0], b"".join(pending[1]), pending[2], pending[3]
                pending = (head, [line], i, off)
            elif pending is not None:
                pending[1].append(line)
            # continuation lines before any entry (only at the very start): not ours
    if pending is not None:
        yield pending[0], b"".join(pending[1]), pending[2], pending[3]


def _lines(seg: Segment, start: int, scan: Scan) -> Iterator[tuple[int, Head | None, bytes | None]]:
    """(offset, head or None, line) of each line from ``start``; (offset, None, None) after each chunk."""
    pos, carry = start, b""
    while pos < seg.size:
        data = seg.pread(pos, min(CHUNK, seg.size - pos))
        if not data:
            break
        scan.scanned += len(data)
        buf = carry + data if carry else data
        base = pos - len(carry)
        pos += len(data)
        i = 0
        find = buf.find
        while (nl := find(b"\n", i)) >= 0:
            head = match_head(buf, i)
            if head is not None:
                head.body -= i  # from the line's start, as _record reads it
            yield base + i, head, buf[i:nl + 1]
            i = nl + 1
        carry = buf[i:]
        yield pos, None, None
    if carry:
        yield pos - len(carry), match_head(carry), carry


def _entry_start(seg: Segment, x: int, lo: int) -> int | None:
    """Offset of the entry holding byte ``x`` (its first line's start), not before ``lo``; None
    when ``x`` lies in continuation lines before any entry."""
    for off, _head in _heads_backward(seg, x + 1, lo, from_line_of=True, step=_SMALL_BLOCK):
        return off
    return None


def _entry_at(seg: Segment, off: int) -> tuple[int, Head, bytes]:
    """(end, head, raw) of the entry starting at ``off``: its line and the continuation lines after it."""
    hit = next_entry(seg, off + 1, seg.size)
    end = hit[0] if hit is not None else seg.size
    raw = seg.pread(off, end - off)
    head = match_head(raw)
    assert head is not None
    return end, head, raw


def _leading_lines(seg: Segment) -> bytes:
    """The continuation lines before the first entry of ``seg`` (they belong to the segment before)."""
    hit = next_entry(seg, 0, seg.size)
    end = hit[0] if hit is not None else seg.size
    return seg.pread(0, end)


# --- backward -------------------------------------------------------------------------------


def _upper(scan: Scan) -> tuple[int | None, Key | None]:
    """(first time not wanted, or None; the key below which a backward scan returns, or None)."""
    end_ms = scan.end_ms
    if scan.after is not None:
        t = scan.after[0] + 1
        end_ms = t if end_ms is None else min(end_ms, t)
    return end_ms, scan.after


def _backward(segments: list[Segment], scan: Scan) -> Iterator[Record | Checkpoint]:
    """Entries newest first. A run of same-millisecond entries is gathered whole before any of
    it is returned: an entry's ``seq`` counts from the run's oldest entry."""
    clock, start_ms = scan.clock, scan.start_ms
    end_ms, below = _upper(scan)
    group: list[tuple[Head, bytes]] = []
    group_ms: int | None = None
    last_key: Key | None = None
    read_since = 0

    def flush() -> Iterator[Record]:
        nonlocal last_key
        n = len(group)
        for j, (head, raw) in enumerate(group):  # newest first; seq from the oldest
            key = (group_ms or 0, n - 1 - j)
            last_key = key
            if below is not None and key >= below:
                continue
            record = _record(head, raw, key, scan.filters)
            if record is not None:
                yield record

    for head, raw in _entries_backward(segments, end_ms, clock):
        t = clock.epoch_ms(head)
        if t != group_ms:
            if group:
                yield from flush()
                group.clear()
                if read_since >= CHUNK and last_key is not None and (below is None or last_key < below):
                    yield Checkpoint(last_key)
                    read_since = 0
            if t < start_ms:
                return
            group_ms = t
        group.append((head, raw))
        scan.scanned += len(raw)
        read_since += len(raw)
    if group:
        yield from flush()


def _entries_backward(segments: list[Segment], end_ms: int | None, clock: Clock) -> Iterator[tuple[Head, bytes]]:
    """(head, raw) of the entries before ``end_ms`` (every entry if None), newest first."""
    tail = b""  # continuation lines at the start of a later segment: they end this segment's last entry
    for i in range(len(segments) - 1, -1, -1):
        seg = segments[i]
        if end_ms is not None:
            first = next_entry(seg, 0, seg.size)
            if first is not None and clock.epoch_ms(first[1]) >= end_ms:
                tail = _leading_lines(seg)  # they end the last entry of the segment before
                continue
            upper = _seek_ms(seg, end_ms, clock)
            if upper < seg.size:
                tail = b""
        else:
            upper = seg.size
        top = upper
        for off, head in _heads_backward(seg, upper, 0):
            raw = seg.pread(off, top - off)
            if top == seg.size:
                raw += tail
            yield head, raw
            top = off
        tail = seg.pread(0, top) + (tail if top == seg.size else b"")


def _heads_backward(seg: Segment, x: int, lo: int, from_line_of: bool = False,
                    step: int = _BACK_BLOCK) -> Iterator[tuple[int, Head]]:
    """(offset, head) of the entries starting in ``[lo, x)``, newest first. ``x`` must be a line
    start (or the end), unless ``from_line_of``: then the line holding byte ``x - 1`` is looked at
    first. ``lo`` is taken as a line start."""
    end = x
    block_size = step
    first = True
    while end > lo:
        start = max(lo, end - block_size)
        block = seg.pread(start, end - start)
        if first and from_line_of:
            # the rest of the line holding x - 1, so that its prefix is whole
            more = seg.pread(end, PREFIX_MAX)
            nl = more.find(b"\n")
            block += more if nl < 0 else more[:nl + 1]
        first = False
        lowest = None
        # Line starts inside the block: after a newline (one at the block's very end starts a line at
        # `end`, already looked at) and the block's start when it is `lo`.
        nl = block.rfind(b"\n", 0, end - start - 1) if end - start > 0 else -1
        while nl >= 0:
            lowest = nl + 1
            head = _head_in(seg, block, start, lowest)
            if head is not None:
                yield start + lowest, head
            nl = block.rfind(b"\n", 0, nl)
        if start == lo:
            head = _head_in(seg, block, start, 0)
            if head is not None:
                yield start, head
            return
        if lowest is None:
            block_size *= 2  # one line longer than the block: read further back
            continue
        end = start + lowest
        block_size = step


def _head_in(seg: Segment, block: bytes, start: int, i: int) -> Head | None:
    """The head of the line at ``block[i]`` (read at ``start``), its ``body`` from the line's start."""
    if len(block) - i < PREFIX_MAX and start + len(block) < seg.size:
        return match_head(seg.pread(start + i, PREFIX_MAX))
    head = match_head(block, i)
    if head is not None:
        head.body -= i
    return head


# --- shared ---------------------------------------------------------------------------------


def _last_head(seg: Segment) -> tuple[int, Head] | None:
    for hit in _heads_backward(seg, seg.size, 0):
        return hit
    return None


def _seek_ms(seg: Segment, ms: int, clock: Clock) -> int:
    """Offset of the first entry of ``seg`` at or after ``ms``, else ``seg.size``."""
    lo, hi = 0, seg.size
    best = seg.size
    while lo < hi:
        mid = (lo + hi) // 2
        hit = next_entry(seg, mid, hi)
        if hit is None:
            hi = mid
        elif clock.epoch_ms(hit[1]) >= ms:
            best, hi = hit[0], mid
        else:
            lo = hit[0] + 1
    return best


def _same_ms_before(segments: list[Segment], index: int, offset: int, ms: int, clock: Clock) -> int:
    """How many entries right before the one at ``segments[index]``/``offset`` have time ``ms``."""
    count = 0
    for i in range(index, -1, -1):
        seg = segments[i]
        upper = offset if i == index else seg.size
        for _off, head in _heads_backward(seg, upper, 0, step=_SMALL_BLOCK):
            if clock.epoch_ms(head) != ms:
                return count
            count += 1
    return count


def _record(head: Head, raw: bytes, key: Key, filters: Filters) -> Record | None:
    """The record of an entry, or None when the filters turn it away."""
    if not filters.head_matches(head):
        return None
    first_end = raw.find(b"\n")
    if first_end < 0:
        first_end = len(raw)
    message = raw[head.body:first_end]
    if message.endswith(b"\r"):
        message = message[:-1]
    if head.format == "logfmt" and raw[head.body - 9:head.body] == b'message="' and message.endswith(b'"'):
        message = message[:-1]  # Valkey writes no escapes: the message is what lies between the quotes
    lines = raw[first_end + 1:].split(b"\n") if first_end < len(raw) else []
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    keyword = filters.keyword
    if keyword is not None:
        if filters.insensitive:
            found = keyword in message.lower() or any(keyword in line.lower() for line in lines)
        else:
            found = keyword in message or any(keyword in line for line in lines)
        if not found:
            return None
    return Record(key[0], key[1], head.pid, head.role, head.level, head.format, message, lines)
