"""Cutting one calendar day out of a Redis run log and its rotated files.

The day of an entry is its day in the instance's time zone (``tz``; see
``grammar``: legacy timestamps are taken as written in it, zoned ones are
converted to it). Continuation lines (logo, crash report, stack trace, blank lines) belong
to the entry before them, hence to its day, even when a crash report written
just before midnight is followed by entries of the next day.

Continuation lines at the very start of a file, before its first entry, belong
to the day of the newest entry of the older sources (the rotated files before
it); when there is none, to the day of the first entry after them. A file
holding no entry at all is treated the same way, as a whole.

Sources are read oldest first (see ``sources.log_sources``); each is opened
once, up front, so a rotation happening meanwhile cannot shift what we read,
and a plain file is read only up to its size at that moment. A newest rotated
file that is byte for byte the head of the current log (logrotate's
``copytruncate`` between its copy and its truncate) is left out: the current
log holds those bytes. A truncate while we read raises ``SourceChanged``. Plain files are
searched (``search.day_bounds``) and copied in the kernel; gzip files are
stream-decompressed in fixed-size chunks. Memory stays bounded by the chunk
size whatever the size of the files or of the day.

A log that holds bytes but not one entry of any known format raises
``UnknownLogFormat``: an empty day is an answer, a log we cannot read is not.

A container runtime's log file (Docker ``json-file``, CRI; see ``containers``)
is recognised by its first line and read as the Redis log it carries: searched
by its own lines' offsets, and only the day's lines unwrapped; lines before the
log's first entry take their wrapper's day.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from datetime import date, tzinfo
from io import BufferedIOBase, RawIOBase

from dcslog.runlog.containers import (
    DETECT_BYTES,
    UnwrappedReader,
    WrappedSource,
    bounded_lines,
    detect,
    leading_pieces,
    parse,
)
from dcslog.runlog.grammar import FORMATS, PREFIX_MAX, Clock
from dcslog.runlog.search import BufferSource, FileSource, day_bounds, is_head_of, last_dated, next_dated
from dcslog.runlog.sources import log_sources

__all__ = ["SourceChanged", "UnknownLogFormat", "day_range", "day_size", "iter_day", "write_day"]

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
#: Largest single kernel copy; keeps one call well under the 2 GiB syscall limit.
_COPY_MAX = 1 << 30
#: errno values meaning "this copy method does not work for these fds": try the next one.
_UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF}


def day_range(path: str, day: date, tz: tzinfo | None = None) -> tuple[int, int]:
    """Byte offsets ``[start, end)`` of ``day``'s lines in the uncompressed file ``path``.

    Continuation lines are included with their entry; leading continuation
    lines count for the file's first entry (there is no older source here).
    ``(x, x)`` when the day is absent. Costs O(log size) small reads. In a
    container log the offsets are the file's: the range holds the day's lines
    as the runtime wrapped them.
    """
    with open(path, "rb", buffering=0) as f:
        if f.read(2) == _GZIP_MAGIC:
            raise ValueError(f"{path} is gzip-compressed; use write_day or iter_day")
        return day_bounds(_searchable(f.fileno(), os.fstat(f.fileno()).st_size), day, clock=Clock(tz))


def day_size(path: str, day: date, tz: tzinfo | None = None) -> int:
    """About how many bytes of ``day`` the uncompressed file ``path`` holds (for progress): the
    length of ``day_range`` in a plain log; in a container log, that range's wrapped bytes times
    the share of them that is the Redis log's, judged on one read at its start."""
    with open(path, "rb", buffering=0) as f:
        if f.read(2) == _GZIP_MAGIC:
            raise ValueError(f"{path} is gzip-compressed; use write_day or iter_day")
        src = _searchable(f.fileno(), os.fstat(f.fileno()).st_size)
        start, end = day_bounds(src, day, clock=Clock(tz))
        if end <= start or not isinstance(src, WrappedSource):
            return end - start
        raw = src.pread(start, min(end - start, 1 << 16))
        cut = raw.rfind(b"\n") + 1
        if not cut:
            return end - start
        return (end - start) * len(b"".join(src.unwrap(start, start + cut))) // cut


def _searchable(fd: int, size: int) -> FileSource | WrappedSource:
    """The open plain file ``fd`` as a source to search: a container log's lines unwrapped."""
    kind = detect(os.pread(fd, DETECT_BYTES, 0)) if size else None
    return FileSource(fd, size) if kind is None else WrappedSource(fd, size, kind)


def write_day(logfile: str, day: date, out_fd: int, tz: tzinfo | None = None) -> int:
    """Write every byte of ``day`` (in time zone ``tz``, default UTC) from ``logfile`` and its
    rotated files (oldest first) to the open descriptor ``out_fd``; return the number of bytes
    written.

    Raises FileNotFoundError when neither the file nor a rotated sibling exists;
    a damaged gzip source raises (EOFError, gzip.BadGzipFile) if it has to be
    read past the damage; a log with bytes but no entry raises UnknownLogFormat. Sources are
    snapshotted when opened (see above).
    """
    written = 0
    for piece in _pieces(_sources(logfile), day, Clock(tz)):
        if isinstance(piece, _Range):
            written += _copy_range(piece.fd, out_fd, piece.start, piece.end)
        else:
            written += _write_all(out_fd, piece)
    return written


def iter_day(logfile: str, day: date, chunk_size: int = 1 << 20, tz: tzinfo | None = None) -> Iterator[bytes]:
    """The bytes ``write_day`` would write, as chunks of at most ``chunk_size`` bytes.

    Raises FileNotFoundError at once (not on first iteration) when neither the
    file nor a rotated sibling exists. Close the iterator to release files early.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    return _iter_chunks(_sources(logfile), day, chunk_size, Clock(tz))


def _iter_chunks(paths: list[str], day: date, chunk_size: int, clock: Clock) -> Iterator[bytes]:
    for piece in _pieces(paths, day, clock):
        if isinstance(piece, _Range):
            for offset in range(piece.start, piece.end, chunk_size):
                wanted = min(chunk_size, piece.end - offset)
                chunk = os.pread(piece.fd, wanted, offset)
                if len(chunk) < wanted:
                    raise SourceChanged(piece.fd)
                yield chunk
        else:
            for offset in range(0, len(piece), chunk_size):
                yield piece[offset:offset + chunk_size]


def _sources(logfile: str) -> list[str]:
    paths = log_sources(logfile)
    if not paths:
        raise FileNotFoundError(errno.ENOENT, "no run log or rotated run log", logfile)
    return paths


# Plain classes, not dataclasses: importing `dataclasses` costs more start-up
# time than the whole search.
class _Range:
    """Bytes ``[start, end)`` of the open plain file ``fd``."""

    __slots__ = ("fd", "start", "end")

    def __init__(self, fd: int, start: int, end: int):
        self.fd, self.start, self.end = fd, start, end


class _Opened:
    """An open source: gzip or plain (then with its size snapshot), and its first entry's date.
    A container log: its ``kind``, and when plain, the ``wrapped`` source and the offset of its
    first entry (``first_at``, the size when there is none)."""

    __slots__ = ("file", "gz", "size", "first", "kind", "wrapped", "first_at")

    def __init__(self, file: RawIOBase, gz: bool, size: int, first: date | None, kind: str | None = None,
                 wrapped: WrappedSource | None = None, first_at: int = 0):
        self.file, self.gz, self.size, self.first = file, gz, size, first
        self.kind, self.wrapped, self.first_at = kind, wrapped, first_at


def _pieces(paths: list[str], day: date, clock: Clock) -> Iterator[_Range | bytes]:
    """The day's bytes, oldest first: ranges of plain files, decompressed gzip chunks."""
    opened: list[_Opened] = []
    current_opened = False
    try:
        for path in paths:
            try:
                f = open(path, "rb", buffering=0)
            except FileNotFoundError:
                continue  # rotated away between listing and opening
            try:
                opened.append(_open(f, clock))
            except BaseException:
                f.close()
                raise
            current_opened = path == paths[-1]
        if not opened:
            raise FileNotFoundError(errno.ENOENT, "run log vanished while opening", paths[-1])
        if current_opened and len(opened) >= 2 and _is_head_of(opened[-2], opened[-1]):
            # logrotate's copytruncate between its copy and its truncate (or during the copy):
            # the newest rotated file is a copy of the head of the current log, which still
            # holds every one of those bytes. Read both and the day would be there twice.
            opened.pop(-2).file.close()
        firsts = [o.first for o in opened]
        lead = next((d for d in firsts if d is not None), None)
        if lead is None:  # no entry anywhere: no line has a day
            _check_blank(opened, paths[-1])
            return
        seen = False  # an entry in an older source
        for i, o in enumerate(opened):
            if o.kind is not None and not seen:
                # A container log's lines before the log's first entry continue no entry: each
                # has its wrapper's day, not the first entry's.
                if o.wrapped is not None:
                    yield from o.wrapped.leading(o.first_at, day, clock)
                else:
                    yield from _gz_leading(o.file, o.kind, day, clock)
                if o.first is None:
                    continue
            first_of_log, seen = not seen, seen or o.first is not None
            if lead > day:
                return  # this and every newer source come after the day
            newer = next((d for d in firsts[i + 1:] if d is not None), None)
            if newer is not None and newer < day:
                # Entirely before the day. Only "before the day" matters for the
                # next source's leading lines, so our first date serves as lead.
                lead = o.first or lead
                continue
            if o.gz:
                lead = yield from _gz_pieces(o.file, day, lead, clock, o.kind, skip_leading=first_of_log and o.kind)
                continue
            src = o.wrapped or FileSource(o.file.fileno(), o.size)
            start, end = day_bounds(src, day, lead, clock)
            if o.wrapped is not None:
                if first_of_log:  # its leading lines went by their own day, above
                    start = max(start, o.first_at)
                if end > start:
                    yield from o.wrapped.unwrap(start, end)
            elif end > start:
                yield _Range(o.file.fileno(), start, end)
            last = last_dated(src, clock)
            lead = last[1] if last else lead
    finally:
        for o in opened:
            o.file.close()


def _is_head_of(older: _Opened, current: _Opened) -> bool:
    """Whether the plain file ``older`` is byte for byte the start of the plain file ``current``."""
    return not older.gz and not current.gz and is_head_of(FileSource(older.file.fileno(), older.size),
                                                          FileSource(current.file.fileno(), current.size))


def _open(f: RawIOBase, clock: Clock) -> _Opened:
    """Classify an opened source and find the date of its first entry."""
    gz = f.read(2) == _GZIP_MAGIC
    f.seek(0)
    if gz:
        import gzip  # only here: most slices never touch a compressed file

        with gzip.GzipFile(fileobj=f) as g:
            kind = detect(g.read(DETECT_BYTES))
        f.seek(0)
        with gzip.GzipFile(fileobj=f) as g:
            first = _stream_first_date(UnwrappedReader(g, kind) if kind else g, clock)
        f.seek(0)
        return _Opened(f, True, 0, first, kind)
    size = os.fstat(f.fileno()).st_size
    src = _searchable(f.fileno(), size)
    hit = next_dated(src, 0, size, clock)
    wrapped = src if isinstance(src, WrappedSource) else None
    return _Opened(f, False, size, hit[1] if hit else None, wrapped.kind if wrapped else None, wrapped,
                   hit[0] if hit else size)


def _stream_first_date(g: BufferedIOBase | UnwrappedReader, clock: Clock) -> date | None:
    at_start = True
    while chunk := g.readline(_CHUNK):  # bounded: a huge line comes in pieces
        if at_start and (d := clock.day_at(chunk)) is not None:
            return d
        at_start = chunk.endswith(b"\n")
    return None


def _gz_pieces(f: RawIOBase, day: date, lead: date, clock: Clock, kind: str | None = None,
               skip_leading: bool | str | None = False):
    """Yield the day's bytes from gzip file ``f`` (``_CHUNK``-sized reads, pieces of
    at most ``_CHUNK + PREFIX_MAX`` bytes); return the effective date at its end.
    A compressed container log (``kind``) is read as the Redis log it carries; with
    ``skip_leading``, its lines before its first entry are left out (``_gz_leading`` gave them).

    Each decompressed chunk is searched like a small file: its lines are in
    order, so the day's part of it is one contiguous range. Stops decompressing
    once past the day (the returned date then tells the caller to stop too).
    """
    import gzip

    cur, at_start, carry = lead, True, b""
    with gzip.GzipFile(fileobj=f) as gz:
        g = UnwrappedReader(gz, kind) if kind else gz
        while cur <= day:
            data = g.read(_CHUNK)
            buf = carry + data
            cut = len(buf) if not data else _complete_prefixes(buf, at_start)
            buf, carry = buf[:cut], buf[cut:]
            if not buf:
                if not data:
                    break
                continue
            # buf[:k] ends the line in progress, of effective date `cur`.
            k = 0 if at_start else (buf.find(b"\n") + 1 or len(buf))
            rest = BufferSource(memoryview(buf)[k:])
            s, e = day_bounds(rest, day, cur, clock)
            start = 0 if cur == day else k + s
            if skip_leading:
                hit = next_dated(rest, 0, rest.size, clock)
                if hit is None:  # leading lines only, so far
                    at_start = buf.endswith(b"\n")
                    continue
                start, skip_leading = max(start, k + hit[0]), False
            if k + e > start:
                yield buf[start:k + e]
            last = last_dated(rest, clock)
            cur = last[1] if last else cur
            at_start = buf.endswith(b"\n")
    return cur


def _gz_leading(f: RawIOBase, kind: str, day: date, clock: Clock) -> Iterator[bytes]:
    """The lines of the compressed container log ``f`` before its first entry whose wrapper time
    is on ``day`` (``containers.leading_pieces``); ``f`` is left at its start."""
    import gzip

    f.seek(0)
    try:
        with gzip.GzipFile(fileobj=f) as g:
            yield from leading_pieces((parse(kind, line) for line in bounded_lines(g)), day, clock)
    finally:
        f.seek(0)


def _complete_prefixes(buf: bytes, at_start: bool) -> int:
    """Where to cut ``buf`` so every line starting before the cut has its prefix
    (``PREFIX_MAX`` bytes) before it too; the tail waits for the next chunk."""
    nl = buf.rfind(b"\n")
    last_start = nl + 1 if nl >= 0 else (0 if at_start else len(buf))
    return last_start if len(buf) - last_start < PREFIX_MAX else len(buf)


#: How much of a log with no entry is read to tell blank from unreadable, and to quote it.
_SAMPLE = 64 * 1024


def _check_blank(opened: list[_Opened], logfile: str) -> None:
    """Return when the sources hold nothing but whitespace (an empty day); raise
    UnknownLogFormat, quoting the first line, when they hold anything else."""
    import gzip

    for o in opened:
        o.file.seek(0)
        if o.gz:
            with gzip.GzipFile(fileobj=o.file) as gz:
                g = UnwrappedReader(gz, o.kind) if o.kind else gz
                sample, more = g.read(_SAMPLE), bool(g.read(1))
        elif o.wrapped is not None:
            sample = next(o.wrapped.unwrap(0, o.size), b"")
            sample, more = sample[:_SAMPLE], len(sample) > _SAMPLE
        else:
            sample, more = os.pread(o.file.fileno(), _SAMPLE, 0), o.size > _SAMPLE
        if sample.strip() or more:
            first_line = next((line for line in sample.splitlines() if line.strip()), b"")
            raise UnknownLogFormat(logfile, first_line)


class UnknownLogFormat(ValueError):
    """The log holds bytes but not one line starts an entry in a format dcslog reads."""

    def __init__(self, logfile: str, first_line: bytes):
        self.logfile = logfile
        self.first_line = first_line[:120].decode("utf-8", "replace")
        begins = f"it begins with: {self.first_line!r}" if self.first_line else "its first 64 KiB are blank"
        super().__init__(
            f"Log file {logfile} holds no line in a run-log format dcslog reads "
            f"({', '.join(FORMATS)}: Redis >= 4 or Valkey); {begins}")


class SourceChanged(OSError):
    """A source file shrank while it was read (a ``copytruncate`` rotation): the bytes
    written so far are not the day. Slicing again finds the day in the rotated copy."""

    def __init__(self, fd: int):
        super().__init__(errno.EIO, "the run log shrank while it was read (copytruncate rotation?)")


def _copy_range(in_fd: int, out_fd: int, start: int, end: int) -> int:
    """Copy ``[start, end)`` of ``in_fd`` to ``out_fd``'s current position, in the
    kernel when possible. Returns bytes copied; raises SourceChanged if the source shrank."""
    offset = start
    methods = [_copy_file_range, _sendfile, _pread_write]
    while offset < end:
        try:
            n = methods[0](in_fd, out_fd, offset, min(end - offset, _COPY_MAX))
        except OSError as e:
            if e.errno not in _UNSUPPORTED or len(methods) == 1:
                raise
            methods.pop(0)  # a failed call copies nothing, so `offset` stays exact
            continue
        if n == 0:
            raise SourceChanged(in_fd)
        offset += n
    return offset - start


def _copy_file_range(in_fd: int, out_fd: int, offset: int, count: int) -> int:
    if not hasattr(os, "copy_file_range"):
        raise OSError(errno.ENOSYS, "copy_file_range unavailable")
    return os.copy_file_range(in_fd, out_fd, count, offset)


def _sendfile(in_fd: int, out_fd: int, offset: int, count: int) -> int:
    return os.sendfile(out_fd, in_fd, offset, count)


def _pread_write(in_fd: int, out_fd: int, offset: int, count: int) -> int:
    chunk = os.pread(in_fd, min(count, _CHUNK), offset)
    return _write_all(out_fd, chunk)


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return len(data)
