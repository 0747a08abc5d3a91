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

Cost: the start and the end of a window are found by binary search on entry
times (the same probe reads as a day's slice), then only the window's bytes are
read, in blocks of whole entries, each once. A keyword is looked for in the raw
bytes first (SIMD search) and only entries that hold it are parsed; so are the
level markers of a minimum level (`` #``, `` level=warning``) where they are
sparse; otherwise every entry of the window is parsed. Memory is bounded by the
read chunk (or the longest entry), whatever the window.

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
from collections.abc import Generator, Iterator, Sequence
from contextlib import ExitStack

from stringzilla import count as _count
from stringzilla import find as _find
from stringzilla import rfind as _rfind
from stringzilla import translate as _translate

from dcslog.pacing import PACER
from dcslog.runlog.containers import DETECT_BYTES, UnwrappedReader, WrappedSource, detect
from dcslog.runlog.grammar import LEVELS, PREFIX_MAX, ROLES, Clock, Head, HeadReader, match_head
from dcslog.runlog.search import FileSource, Source, is_head_of, next_entry
from dcslog.runlog.sources import log_sources

__all__ = ["CHUNK", "Checkpoint", "Filters", "Record", "Scan", "Segment", "first_time", "host_segments",
           "record_from_wire", "record_to_wire", "scan_node"]

CHUNK = 1 << 20
_BACK_BLOCK = 16 * 1024
#: Read size of a descending scan, block by block backwards.
_DESC_BLOCK = 64 * 1024
#: Read size when counting back the entries of a millisecond before a scan's first one.
_SMALL_BLOCK = 1024
_GZIP_MAGIC = b"\x1f\x8b"
_LOWER = bytes(range(256)).lower()  # ASCII letters without case, as `bytes.lower`
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
        self.time_ms = time_ms
        self.seq = seq
        self.pid = pid
        self.role = role
        self.level = level
        self.format = format
        self.message = message
        self.lines = lines

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
            continue
        size = os.fstat(f.fileno()).st_size
        kind = detect(os.pread(f.fileno(), DETECT_BYTES, 0)) if size else None
        if kind is None:
            segments.append(FileSource(f.fileno(), size))
        else:
            segments.extend(_unwrapped_parts(WrappedSource(f.fileno(), size, kind), stack))
    if not segments:
        raise FileNotFoundError(f"{logfile}: no run log or rotated run log")
    if len(segments) >= 2 and isinstance(segments[-2], FileSource) and isinstance(segments[-1], FileSource) \
            and is_head_of(segments[-2], segments[-1]):
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
            with gzip.GzipFile(fileobj=self._file) as g:
                kind = detect(g.read(DETECT_BYTES))
            self._file.seek(0)
            plain = self._stack.enter_context(tempfile.TemporaryFile())
            with gzip.GzipFile(fileobj=self._file) as g:
                shutil.copyfileobj(UnwrappedReader(g, kind) if kind else g, plain, CHUNK)
            plain.flush()
            self._plain = FileSource(plain.fileno(), plain.tell())
        return self._plain

    @property
    def size(self) -> int:
        return self._open().size

    def pread(self, offset: int, n: int) -> bytes:
        return self._open().pread(offset, n)


#: The newest part of a container log unwrapped on its own (``_unwrapped_parts``); each older one
#: is _PART_GROWTH times larger.
_PART = 256 * 1024
_PART_GROWTH = 4


def _unwrapped_parts(source: WrappedSource, stack: ExitStack) -> list[Segment]:
    """A container log as segments (oldest first) cut where entries begin: the newest ``_PART``
    bytes, the ``_PART_GROWTH`` times more before them, and so on. A scan reads a segment at the
    Redis log's own offsets, which the container file does not hold, so a segment is unwrapped
    into a temporary file when first read; and a scan starts from the newest segment that reaches
    its window (``_start_segment``): a window near the present (a follow's poll, the last hour)
    unwraps the newest part alone, an older one what lies between it and the present."""
    cuts, span = [source.size], _PART
    while cuts[-1] > 0:
        target = source.size - span
        span *= _PART_GROWTH
        if target <= 0:
            cuts.append(0)
        elif (hit := source.next_entry(target, cuts[-1])) is not None:
            cuts.append(hit[0])
    cuts.reverse()
    return [_UnwrappedSegment(source, start, end, stack) for start, end in zip(cuts, cuts[1:], strict=False)
            if end > start]


class _UnwrappedSegment:
    """The wrapper lines ``[start, end)`` of a container log (see ``containers``) read as the
    Redis log they carry, unwrapped into a temporary file on first use."""

    def __init__(self, source: WrappedSource, start: int, end: int, stack: ExitStack):
        self._source, self._start, self._end, self._stack = source, start, end, stack
        self._plain: FileSource | None = None

    def _open(self) -> FileSource:
        if self._plain is None:
            plain = self._stack.enter_context(tempfile.TemporaryFile())
            for chunk in self._source.unwrap(self._start, self._end):
                plain.write(chunk)
            plain.flush()
            self._plain = FileSource(plain.fileno(), plain.tell())
        return self._plain

    @property
    def size(self) -> int:
        return self._open().size

    def pread(self, offset: int, n: int) -> bytes:
        return self._open().pread(offset, n)


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

#: An entry's line starts with its pid (legacy) or "pid=" (logfmt): a line starting otherwise
#: is a continuation line, without a look at its prefix.
_ENTRY_FIRST = frozenset(b"0123456789p")
#: Per level, what the prefix of each of its entries holds: legacy " LEVEL", logfmt " level=WORD".
_MARKERS = {"debug": (b" .", b" level=debug"), "verbose": (b" -", b" level=info", b" level=verbose"),
            "notice": (b" *", b" level=notice"), "warning": (b" #", b" level=warning")}
#: A block is searched for a minimum level's markers, rather than parsed line by line, when
#: fewer than one line in _SPARSE holds one.
_SPARSE = 2
_SAMPLE = 64 * 1024
#: What a block's scan returns when it has met an entry at or after the window's end.
_END: Key = (-1, -1)


def _lower_key(scan: Scan) -> Key:
    """The smallest key a forward scan may return."""
    low = (scan.start_ms, 0)
    if scan.after is not None:
        low = max(low, (scan.after[0], scan.after[1] + 1))
    return low


def _forward(segments: list[Segment], scan: Scan) -> Iterator[Record | Checkpoint]:
    """Entries oldest first, read in blocks of whole entries (``_blocks``). With a keyword, only
    the entries holding it are parsed (found by a SIMD search of the block); with a minimum level,
    only the lines holding one of its markers, in a block where they are sparse; otherwise every
    entry. ``seq`` is counted within the block (and from the block before it at its start). After
    each block, a checkpoint: the key of its last entry.

    Block sizes: searched blocks are large, so that the search runs long between two reads (4 MiB
    with a keyword, 1 MiB with a level); a block whose every entry is parsed is held for as long
    as the parsing takes (0.1–0.25 s a MiB), beside which its read costs nothing, so it is small
    (256 KiB): that is what an export holds."""
    clock, filters = scan.clock, scan.filters
    low = _lower_key(scan)
    # The first segment whose last entry is not before the lower bound: a run of same-millisecond
    # entries may begin at the end of the segment before the one holding the bound's time.
    start_index = _start_segment(segments, low[0], clock)
    if start_index is None:
        return
    offset = _seek_ms(segments[start_index], low[0], clock)
    keyword = filters.keyword
    markers = () if keyword is not None or filters.min_rank == 0 else \
        tuple(m for level in LEVELS[filters.min_rank:] for m in _MARKERS[level])
    run: _Run | None = None
    last: Key | None
    size = 4 * CHUNK if keyword is not None else CHUNK if markers else CHUNK // 4
    folded = bytearray()  # case=insensitive: the block lower-cased, searched in its place
    for data, cut, index, pos in _blocks(segments, start_index, offset, scan, size):
        if run is None:
            run = _Run(segments, clock, index, pos)
        scan.scanned += cut
        if keyword is not None:
            hay: bytes | bytearray = data
            if filters.insensitive:
                # One buffer a scan, written over (`bytes.lower` made a new 4 MiB copy per block,
                # 13x slower, and two blocks freed together at the top of glibc's heap pass its
                # trim threshold: the heap was given back and faulted in again every few blocks).
                if len(folded) < len(data):
                    folded = bytearray(len(data))
                hay = _translate(data, _LOWER, out=folded)
            last = yield from _keyword_block(data, hay, cut, keyword, scan, low, run)
            hay = b""
        elif markers and _sparse(data, cut, markers):
            last = yield from _marked_block(data, cut, markers, scan, low, run)
        else:
            last = yield from _every_entry(data, cut, scan, low, run)
        # The block is let go before the next is read (see _blocks): one block in memory, not two
        # or three (the reader kept the last block it read a head from: a sparse keyword's blocks
        # have none for long stretches).
        del data
        run.heads.forget()
        if last is _END:
            return  # an entry at or after the window's end
        if last is None:
            continue  # (not expected: a block begins with an entry)
        run.ms, run.seq = last
        if last >= low:  # never at or behind the cursor: no progress
            yield Checkpoint(last)


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


def _blocks(segments: list[Segment], index: int, offset: int, scan: Scan, size: int
            ) -> Iterator[tuple[bytes, int, int, int]]:
    """(data, cut, segment index, offset) of each block from ``segments[index]`` at ``offset`` (an
    entry's start) to the window's end: ``data`` was read at ``offset`` and ``data[:cut]`` holds
    whole entries, the first at ``data[0]`` (bytes after ``cut`` may be looked at, as what follows,
    but belong to the next block). A block ends where an entry begins, and the next block begins
    there; ``size`` bytes are read at a time, more when one entry is longer. The last entry of a
    segment comes as a block of its own with the continuation lines at the top of the segments
    after it. Nothing past the window's end is read: the first entry at or after it is found in
    each segment by binary search."""
    clock, end_ms = scan.clock, scan.end_ms
    i, pos = index, offset
    while i < len(segments):
        seg = segments[i]
        stop = seg.size if end_ms is None else max(pos, _seek_ms(seg, end_ms, clock))
        want = size
        tail: bytes | None = None
        tail_at = pos
        while pos < stop:
            data = b""  # the block before, gone before this one is read (its consumer let it go too)
            PACER.pause(scan.scanned)
            data = seg.pread(pos, min(want, stop - pos))
            if not data:
                break
            if pos + len(data) < stop:
                cut = _last_entry_line(data, data.rfind(b"\n") + 1)
                if cut == 0:  # one entry longer than the read: read more
                    want *= 2
                    continue
                yield data, cut, i, pos
                pos, want = pos + cut, size
                continue
            if stop < seg.size:  # the window ends at the entry at `stop`
                yield data, len(data), i, pos
                return
            cut = _last_entry_line(data, len(data))
            if cut > 0:
                yield data, cut, i, pos
            tail, tail_at = data[cut:], pos + cut
            break
        if stop < seg.size:
            return
        # The lines at the top of the next segments, before their first entry, end this one's last.
        tail_index, lead = i, b""
        i += 1
        while i < len(segments):
            lead = _leading_lines(segments[i])
            if tail is not None:
                tail += lead
            if len(lead) < segments[i].size:
                break
            i += 1
        if tail is not None:
            yield tail, len(tail), tail_index, tail_at
        pos = len(lead)


def _last_entry_line(data: bytes, end: int) -> int:
    """Start of the last line of ``data`` beginning before ``end`` (a line start, or the end of
    the data) that starts an entry, other than ``data[0]``; 0 if there is none."""
    first = _ENTRY_FIRST
    p = end
    while p > 0:
        p = _rfind(data, b"\n", 0, p - 1) + 1
        if p > 0 and data[p] in first and match_head(data, p) is not None:
            return p
    return 0


class _Run:
    """The entries right before a block: the time and ``seq`` of the last of them. Before the
    scan's first block (``ms`` None) they are counted back in the files, from ``index``/``offset``,
    when an entry's ``seq`` needs them. (And the scan's ``HeadReader``.)"""

    __slots__ = ("ms", "seq", "segments", "clock", "index", "offset", "heads")

    def __init__(self, segments: list[Segment], clock: Clock, index: int, offset: int):
        self.ms: int | None = None
        self.seq = -1
        self.segments, self.clock, self.index, self.offset = segments, clock, index, offset
        self.heads = HeadReader(clock)  # the scan's prefix reader

    def count(self, ms: int) -> int:
        """How many entries right before the block have time ``ms``."""
        if self.ms is None:
            n = _same_ms_before(self.segments, self.index, self.offset, ms, self.clock)
            if n:
                self.ms, self.seq = ms, n - 1
            return n
        return self.seq + 1 if self.ms == ms else 0


def _next_entry_line(data: bytes, j: int, cut: int, run: _Run) -> int:
    """The first line start at or after ``j`` (a line start) that starts an entry, else ``cut``."""
    first, is_entry = _ENTRY_FIRST, run.heads.is_entry
    while j < cut and not (data[j] in first and is_entry(data, j)):
        j = _find(data, b"\n", j, cut) + 1 or cut
    return j


def _every_entry(data: bytes, cut: int, scan: Scan, low: Key, run: _Run) -> Generator[Record, None, Key | None]:
    """Every entry of the block ``data[:cut]`` parsed; its records. Returns the key of the last
    entry (None if none), _END when an entry is at or after the window's end."""
    end_ms, filters, timed = scan.end_ms, scan.filters, run.heads.timed
    first, (low_t, low_seq) = _ENTRY_FIRST, low
    prev_ms, seq = run.ms, run.seq
    start = 0
    head, t = timed(data, 0)
    if head is None:  # (not expected: a block begins with an entry)
        start = _next_entry_line(data, 0, cut, run)
        head, t = timed(data, start) if start < cut else (None, 0)
    while head is not None:
        j = _find(data, b"\n", start, cut) + 1 or cut
        following, following_t = None, 0
        while j < cut:
            if data[j] in first:
                following, following_t = timed(data, j)
                if following is not None:
                    break
            j = _find(data, b"\n", j, cut) + 1 or cut
        if end_ms is not None and t >= end_ms:
            return _END
        if t == prev_ms:
            seq += 1
        else:
            seq = run.count(t) if prev_ms is None else 0
        prev_ms = t
        if (t > low_t or (t == low_t and seq >= low_seq)) \
                and (record := _record(head, data, start, j, (t, seq), filters)) is not None:
            yield record
        start, head, t = j, following, following_t
    return None if prev_ms is None else (prev_ms, seq)


def _sparse(data: bytes, cut: int, markers: tuple[bytes, ...]) -> bool:
    """Whether fewer than one line in _SPARSE of the block holds one of ``markers``, judging by its
    first _SAMPLE bytes."""
    n = min(cut, _SAMPLE)
    lines = _count(data, b"\n", 0, n) + 1
    hits = 0
    for marker in markers:
        hits += _count(data, marker, 0, n)
        if hits * _SPARSE >= lines:
            return False
    return True


def _marked_block(data: bytes, cut: int, markers: tuple[bytes, ...], scan: Scan, low: Key, run: _Run
                  ) -> Generator[Record, None, Key | None]:
    """The records of the block ``data[:cut]`` at a minimum level: only the lines holding one of
    its ``markers`` (SIMD search) are parsed, as entries when a marker is in their prefix; then the
    line after each (does the entry go on?) and the line before it (its ``seq``). Returns the key
    of the block's last entry (None if none), _END when an entry is at or after the window's end."""
    end_ms, filters = scan.end_ms, scan.filters
    min_rank, role, rank = filters.min_rank, filters.role, _LEVEL_RANK
    timed, is_entry, same_time = run.heads.timed, run.heads.is_entry, run.heads.same_time
    first, (low_t, low_seq) = _ENTRY_FIRST, low
    known_at = known_ms = known_seq = -1  # start, time and seq of the last entry whose seq is known
    found = [(x, marker) for marker in markers if (x := _find(data, marker, 0, cut)) >= 0]
    hits, markers = [x for x, _ in found], tuple(marker for _, marker in found)
    marker = markers[0] if len(markers) == 1 else b""  # one marker (one format) in the block: the usual case
    i = min(hits, default=-1)
    while i >= 0:
        start = _rfind(data, b"\n", 0, i) + 1
        line_end = _find(data, b"\n", i, cut)
        end = line_end + 1 if line_end >= 0 else cut  # where the line ends; then where the entry ends
        head, t = timed(data, start) if i - start < PREFIX_MAX and data[start] in first else (None, 0)
        if head is not None and rank[head.level] >= min_rank and (role is None or head.role == role):
            if end_ms is not None and t >= end_ms:
                return _END
            if end < cut and not (data[end] in first and is_entry(data, end)):
                end = _next_entry_line(data, end, cut, run)  # continuation lines
            before = _rfind(data, b"\n", 0, start - 1) + 1 if start else -1
            if before >= 0 and before != known_at and data[before] in first \
                    and same_time(data, before, start, t) is False:
                seq = 0  # the line before: an entry of another time
            else:
                seq = _seq_back(data, start, t, (known_at, known_ms, known_seq), run)
            known_at, known_ms, known_seq = start, t, seq
            if t > low_t or (t == low_t and seq >= low_seq):
                yield _make_record(head, data, line_end if line_end >= 0 else cut, end, t, seq)
        if marker:
            i = _find(data, marker, end, cut)
            continue
        for k, x in enumerate(hits):
            if 0 <= x < end:
                hits[k] = _find(data, markers[k], end, cut)
        i = min((x for x in hits if x >= 0), default=-1)
    return _last_key(data, cut, (known_at, known_ms, known_seq), run)


def _keyword_block(data: bytes, hay: bytes | bytearray, cut: int, keyword: bytes, scan: Scan, low: Key, run: _Run
                   ) -> Generator[Record, None, Key | None]:
    """The records of the block ``data[:cut]`` that hold ``keyword``: the block is searched for it
    (SIMD: CPython's ``bytes.find`` reaches a third of grep's speed here, stringzilla more than
    grep's; docs/benchmarks.md) and only the entries holding it are parsed, with the line before
    each (its ``seq``). ``hay`` is what is searched: ``data``, or ``data`` lower-cased for a
    keyword without case (perhaps longer: nothing after ``cut`` is searched). Returns the key of
    the block's last entry (None if none), _END when an entry is at or after the window's end."""
    end_ms, filters = scan.end_ms, scan.filters
    min_rank, role, rank = filters.min_rank, filters.role, _LEVEL_RANK
    heads = run.heads
    first, (low_t, low_seq) = _ENTRY_FIRST, low
    known = (-1, 0, 0)  # (start, time, seq) of the last entry whose seq is known
    i = _find(hay, keyword, 0, cut)
    while i >= 0:
        start = _rfind(data, b"\n", 0, i) + 1
        head = heads.head(data, start) if data[start] in first else None
        while head is None and start > 0:  # the hit is in a continuation line: back to its entry
            start = _rfind(data, b"\n", 0, start - 1) + 1
            if data[start] in first:
                head = heads.head(data, start)
        end = _next_entry_line(data, _find(data, b"\n", i, cut) + 1 or cut, cut, run)
        if head is not None and rank[head.level] >= min_rank and (role is None or head.role == role):
            t = heads.clock.epoch_ms(head)
            if end_ms is not None and t >= end_ms:
                return _END
            seq = _seq_back(data, start, t, known, run)
            known = (start, t, seq)
            if (t > low_t or (t == low_t and seq >= low_seq)) \
                    and (record := _record(head, data, start, end, (t, seq), filters)) is not None:
                yield record
        if end >= cut:
            break
        i = _find(hay, keyword, end, cut)
    return _last_key(data, cut, known, run)


def _seq_back(data: bytes, start: int, ms: int, known: tuple[int, int, int], run: _Run) -> int:
    """The ``seq`` of the entry at ``data[start]`` (time ``ms``): the entries of that time right
    before it, counted back in the block, then before it (``run``); ``known``: (start, time, seq)
    of an entry of the block already counted."""
    count, p = 0, start
    first, time = _ENTRY_FIRST, run.heads.time
    while p > 0:
        p = _rfind(data, b"\n", 0, p - 1) + 1
        if p == known[0]:
            return count + known[2] + 1 if known[1] == ms else count
        if data[p] in first and (t := time(data, p)) is not None:
            if t != ms:
                return count
            count += 1
    return count + run.count(ms)


def _last_key(data: bytes, cut: int, known: tuple[int, int, int], run: _Run) -> Key | None:
    """The key of the last entry of the block ``data[:cut]``."""
    first, time = _ENTRY_FIRST, run.heads.time
    p = cut
    while p > 0:
        p = _rfind(data, b"\n", 0, p - 1) + 1
        if p == known[0]:
            return known[1], known[2]
        if data[p] in first and (t := time(data, p)) is not None:
            return t, _seq_back(data, p, t, known, run)
    return None if run.ms is None else (run.ms, run.seq)  # (not expected: a block begins with an entry)


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
            record = _record(head, raw, 0, len(raw), key, scan.filters)
            if record is not None:
                yield record

    for head, raw in _entries_backward(segments, end_ms, clock, scan):
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


def _entries_backward(segments: list[Segment], end_ms: int | None, clock: Clock, scan: Scan
                      ) -> Iterator[tuple[Head, bytes]]:
    """(head, raw) of the entries before ``end_ms`` (every entry if None), newest first, sliced
    from blocks read backwards (``_DESC_BLOCK`` bytes, more when one line is longer)."""
    tail = b""  # continuation lines at the start of a later segment: they end this segment's last entry
    first, read = _ENTRY_FIRST, HeadReader(clock).head
    for i in range(len(segments) - 1, -1, -1):
        seg = segments[i]
        if end_ms is not None:
            hit = next_entry(seg, 0, seg.size)
            if hit is not None and clock.epoch_ms(hit[1]) >= end_ms:
                tail = _leading_lines(seg)  # they end the last entry of the segment before
                continue
            upper = _seek_ms(seg, end_ms, clock)
            if upper < seg.size:
                tail = b""
        else:
            upper = seg.size
        carry = tail  # the bytes from `end` on that belong to the entry found next
        end, step = upper, _DESC_BLOCK  # `end`: a line start (or the segment's end)
        while end > 0:
            start = max(0, end - step)
            PACER.pause(scan.scanned)
            block = seg.pread(start, end - start)
            if not block:
                break
            top = len(block)  # block[top:] + carry: the entry found next
            lowest = -1  # the lowest line start seen in the block
            # Line starts inside the block: after a newline (one at the block's very end starts a
            # line at `end`, already looked at), and the block's start when it is the segment's.
            nl = block.rfind(b"\n", 0, top - 1)
            while nl >= 0 or start == 0:
                ls = lowest = nl + 1
                if block[ls] in first and (head := read(block, ls)) is not None:
                    head.body -= ls
                    yield head, block[ls:top] + carry if carry else block[ls:top]
                    top, carry = ls, b""
                if ls == 0:
                    break
                nl = block.rfind(b"\n", 0, nl)
            if start == 0:
                tail = block[:top] + carry
                break
            if lowest < 0:  # one line longer than the block: read further back
                step *= 2
                continue
            carry = block[lowest:top] + carry
            end, step = start + lowest, _DESC_BLOCK
        else:
            tail = carry


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


def _record(head: Head, data: bytes, start: int, end: int, key: Key, filters: Filters) -> Record | None:
    """The record of the entry ``data[start:end]`` (``head.body``: where its message begins in
    ``data``), or None when the filters turn it away."""
    if _LEVEL_RANK[head.level] < filters.min_rank or (filters.role is not None and head.role != filters.role):
        return None
    first_end = data.find(b"\n", start, end)
    record = _make_record(head, data, end if first_end < 0 else first_end, end, key[0], key[1])
    keyword = filters.keyword
    if keyword is not None:
        if filters.insensitive:
            found = keyword in record.message.lower() or any(keyword in line.lower() for line in record.lines)
        else:
            found = keyword in record.message or any(keyword in line for line in record.lines)
        if not found:
            return None
    return record


def _make_record(head: Head, data: bytes, first_end: int, end: int, time_ms: int, seq: int) -> Record:
    """The record of the entry whose first line ends at ``data[first_end]`` (its b"\\n", or
    ``end``) and that ends at ``end``; ``head.body``: where its message begins in ``data``."""
    body, stop = head.body, first_end
    if stop > body and data[stop - 1] == 13:  # b"\r"
        stop -= 1
    if head.format == "logfmt" and stop > body and data[stop - 1] == 34 and data[body - 9:body] == b'message="':
        stop -= 1  # Valkey writes no escapes: the message is what lies between the quotes
    message = data[body:stop]
    if first_end + 1 < end:
        lines = data[first_end + 1:end].split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    else:
        lines = []
    return Record(time_ms, seq, head.pid, head.role, head.level, head.format, message, lines)
