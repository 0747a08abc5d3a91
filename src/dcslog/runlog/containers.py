"""Container runtimes' log files: the Redis log inside them, found by seeking, unwrapped byte for byte.

A Redis in a container (``logfile ""``) writes its log to stdout; the runtime
wraps every line it reads from the container's pipe and appends it to a file
on the host. Two shapes are read here, recognised by the file's first line:

``docker`` (Docker's ``json-file`` driver, moby ``daemon/logger/jsonfilelog``)::

    {"log":"1:M 26 Nov 2026 14:03:07.123 * Ready\\n","stream":"stdout","time":"2026-11-26T14:03:07.1234Z"}

  one JSON object a line; ``log`` is the line with its newline, or, for a line
  longer than the driver's 16 KiB buffer, a piece of it without one (the last
  piece has the newline); ``attrs`` may come before ``time``. Go's encoder
  escapes ``"`` ``\\`` control characters ``<`` ``>`` ``&`` U+2028 U+2029 and
  writes invalid UTF-8 as U+FFFD (Redis writes UTF-8 or ASCII).

``cri`` (the CRI log format: containerd and CRI-O for Kubernetes, podman's ``k8s-file``)::

    2026-11-26T14:03:07.123456789Z stdout F 1:M 26 Nov 2026 14:03:07.123 * Ready

  ``<RFC 3339 time> <stream> <tag> <text>``, the tag ``F`` for a full line and
  ``P`` for a partial one (a line longer than the runtime's maximum, 16 KiB by
  default, cut into ``P`` pieces and a last ``F``; or a last line with no
  newline when the stream ends). The text is the line's bytes as written, minus
  its newline (and a ``\\r`` before it, which containerd drops).

**Which stream.** The Redis log is what Redis writes to stdout: with
``logfile ""`` every line of it (entries, the logo, a crash report, its stack
trace) goes there. stderr carries what is not part of the log (a fatal error in
the configuration before logging starts, a library's own message) and is left
out, so the unwrapped stream is byte for byte the file Redis would have written
with ``logfile`` set.

**Seeking.** Offsets are the container file's own: an entry is found at the
offset of the wrapper line that begins it (``WrappedSource.next_entry``, which
``search`` asks instead of reading the bytes as lines itself), so a day's
first and last wrapper lines are found by the same binary search as in a plain
log, and only the day's wrapper lines are then unwrapped (``unwrap``).

**Times.** An entry's time is Redis's own timestamp (``grammar``), as in a
plain log, and its continuation lines go with it. Lines that continue no entry
— before the first entry of the node's log — have the wrapper's time instead
(``leading``): a plain log can only guess their day, a container log says it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from dcslog.runlog.grammar import PREFIX_MAX, Clock, Head, match_head

__all__ = ["CRI", "DOCKER", "KINDS", "Piece", "UnwrappedReader", "WrappedSource", "detect", "leading_pieces", "parse",
           "unwrap_lines", "wrapper_ms"]

DOCKER = "docker"
CRI = "cri"
KINDS = (DOCKER, CRI)
#: The stream that holds the Redis log.
STREAM = b"stdout"
#: Bytes of a file read to recognise its shape: the CRI header alone tells, and so does a Docker
#: line's start when the line is longer (see ``detect``).
DETECT_BYTES = 4096
#: Read size of a probe: a few wrapper lines around the probed offset (as ``search.BLOCK``).
_PROBE = 4096
#: Read size when unwrapping a range.
_BLOCK = 1 << 20
#: The longest wrapper line read as one. The runtimes cut a line into 16 KiB pieces (json-file,
#: containerd, CRI-O); escaped, a piece's wrapper line stays below 100 KiB. A longer one is damaged
#: or hostile (a gzip copy a few MiB big can hold a line of gigabytes): skipped to its end, never
#: held — what a plain log's reading bounds the same way ("a huge line comes in pieces").
MAX_WRAPPER_LINE = 1 << 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DOCKER_LOG = b'{"log":"'
_DOCKER_STREAM = b'","stream":"'
_DOCKER_TIME = b'","time":"'


class Piece:
    """One wrapper line: its ``stream``, whether its ``text`` is a ``partial`` line (to be joined
    with the stream's next piece), the text itself (the line's bytes, without the newline of a
    full line) and the wrapper's raw ``time`` (RFC 3339)."""

    __slots__ = ("stream", "partial", "text", "time")

    def __init__(self, stream: bytes, partial: bool, text: bytes, time: bytes):
        self.stream, self.partial, self.text, self.time = stream, partial, text, time

    @property
    def inner(self) -> bytes:
        """The bytes Redis wrote that this line carries."""
        return self.text if self.partial else self.text + b"\n"


def detect(data: bytes) -> str | None:
    """The shape (``DOCKER``, ``CRI``) of a file beginning with ``data``, None for any other
    (a plain log: no Redis line begins with ``{`` or with a date and a stream name)."""
    end = data.find(b"\n")
    line = data if end < 0 else data[:end + 1]
    if line.startswith(b"{"):
        if end < 0:  # a first line longer than what was read: its prefix must do
            return DOCKER if line.startswith(_DOCKER_LOG) else None
        piece = _docker_slow(line)
        return DOCKER if piece is not None else None
    if _cri(line if end >= 0 else line + b"\n") is not None:
        return CRI
    return None


def parse(kind: str, line: bytes) -> Piece | None:
    """The piece a wrapper line (with its ``\\n``) carries; None for a line that is not one (the
    runtime's file damaged: a crash mid-write)."""
    return _cri(line) if kind == CRI else _docker(line)


def _cri(line: bytes) -> Piece | None:
    a = line.find(b" ")
    b = line.find(b" ", a + 1)
    c = line.find(b" ", b + 1)
    if a < 20 or b < 0 or c < 0 or line[4:5] != b"-" or line[10:11] != b"T" or not line.endswith(b"\n"):
        return None
    tag = line[b + 1:c]
    # The CRI leaves room for more tags after the first, separated by ":".
    partial = tag[:1] == b"P"
    if not (partial or tag[:1] == b"F") or (len(tag) > 1 and tag[1:2] != b":"):
        return None
    return Piece(line[a + 1:b], partial, line[c + 1:-1], line[:a])


def _docker(line: bytes) -> Piece | None:
    # Fast path: what Docker writes for a line without a character JSON escapes (the usual Redis
    # line): {"log":"TEXT\n","stream":"stdout","time":"…"} — TEXT is then its bytes as they are.
    if line.startswith(_DOCKER_LOG):
        k = line.find(_DOCKER_STREAM, 8)
        if k > 0:
            raw = line[8:k]
            full = raw.endswith(b"\\n")
            # No quote either: Go escapes every one, so a bare quote is a torn line's end (a crash
            # mid-write, the next line appended to it) — parsed, and refused, below.
            if b"\\" not in (raw[:-2] if full else raw) and b'"' not in raw:
                s = k + len(_DOCKER_STREAM)
                q = line.find(b'"', s)
                if line.startswith(_DOCKER_TIME, q) and line.endswith(b'"}\n'):
                    return Piece(line[s:q], not full, raw[:-2] if full else raw, line[q + len(_DOCKER_TIME):-3])
    return _docker_slow(line)


def _docker_slow(line: bytes) -> Piece | None:
    import json  # only here: it imports re, which a plain log's slice never pays for

    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth: no wrapper line
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("time"), str) \
            or not isinstance(obj.get("log", ""), str) or not isinstance(obj.get("stream", ""), str):
        return None
    text = obj.get("log", "").encode("utf-8", "surrogatepass")
    full = text.endswith(b"\n")
    return Piece(obj.get("stream", "").encode(), not full, text[:-1] if full else text, obj["time"].encode())


def wrapper_ms(raw: bytes) -> int | None:
    """Epoch milliseconds of an RFC 3339 time (``2026-11-26T14:03:07.123456789Z``, any number of
    fraction digits, ``Z`` or ``±hh:mm``), None when it is not one."""
    if raw[4:5] != b"-" or raw[7:8] != b"-" or raw[10:11] not in (b"T", b"t") or raw[13:14] != b":" \
            or raw[16:17] != b":":
        return None
    try:
        moment = datetime(int(raw[0:4]), int(raw[5:7]), int(raw[8:10]), int(raw[11:13]), int(raw[14:16]),
                          int(raw[17:19]), tzinfo=UTC)
        i, milli = 19, 0
        if raw[19:20] == b".":
            i = 20
            while raw[i:i + 1].isdigit():
                i += 1
            milli = int((raw[20:i] + b"00")[:3])
        zone = raw[i:]
        if zone in (b"Z", b"z"):
            offset = 0
        elif len(zone) == 6 and zone[:1] in (b"+", b"-") and zone[3:4] == b":":
            offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * (-1 if zone[:1] == b"-" else 1)
        else:
            return None
    except ValueError:
        return None
    return (moment - _EPOCH) // timedelta(milliseconds=1) + milli - offset * 60_000


def wrapper_day(raw: bytes, clock: Clock) -> date | None:
    ms = wrapper_ms(raw)
    return None if ms is None else datetime.fromtimestamp(ms // 1000, clock.tz).date()


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class WrappedSource:
    """An open container log file, seen as its first ``size`` bytes (a snapshot), holding the
    Redis log in its stdout pieces. Offsets are the file's; the entry-finding methods take and
    give offsets of wrapper lines. Read with ``os.pread`` only, so one open file serves many."""

    __slots__ = ("fd", "size", "kind")

    def __init__(self, fd: int, size: int, kind: str):
        self.fd, self.size, self.kind = fd, size, kind

    def pread(self, offset: int, n: int) -> bytes:
        return self._read(max(0, min(n, self.size - offset)), offset)

    def _read(self, n: int, offset: int) -> bytes:
        """Every read of the file goes through here (tests count them)."""
        return os.pread(self.fd, n, offset)

    # --- walking wrapper lines ---------------------------------------------------------------

    def lines(self, start: int, end: int, size: int = _PROBE) -> Iterator[tuple[int, bytes]]:
        """(offset, line with its ``\\n``) of the wrapper lines starting in ``[start, end)``;
        ``start`` is a line start. A last line without its newline (being written) is left out.
        Read ``size`` bytes at a time (more for a longer line), never far past ``end``."""
        pos, carry = start, b""
        while pos < self.size:
            want = min(max(size, len(carry)), self.size - pos, max(end - pos, _PROBE))
            block = self._read(want, pos)
            if len(block) < want:
                raise _shrank()
            data = carry + block if carry else block
            base = pos - len(carry)
            i = 0
            while True:
                if base + i >= end:
                    return
                nl = data.find(b"\n", i)
                if nl < 0:
                    break
                yield base + i, data[i:nl + 1]
                i = nl + 1
            carry = data[i:]
            pos += len(block)
            if len(carry) > MAX_WRAPPER_LINE:  # damaged: skipped to its end
                pos, carry = self._next_line_start(pos), b""

    def _next_line_start(self, x: int) -> int:
        """The offset after the first newline at or after ``x`` (the size: none)."""
        while x < self.size:
            block = self._read(min(_BLOCK, self.size - x), x)
            if not block:
                break
            nl = block.find(b"\n")
            if nl >= 0:
                return x + nl + 1
            x += len(block)
        return self.size

    def lines_backward(self, end: int) -> Iterator[tuple[int, bytes]]:
        """(offset, line) of the wrapper lines ending at or before ``end`` (a line start or the
        size), newest first. A last line without its newline is left out."""
        top = end
        if top == self.size and top > 0 and self._read(1, top - 1) != b"\n":
            top = self._line_start(top - 1)  # the line being written
        step = _PROBE
        while top > 0:
            start = max(0, top - step)
            block = self._read(top - start, start)
            if len(block) < top - start:
                raise _shrank()
            nl = block.rfind(b"\n", 0, len(block) - 1)
            if nl < 0 and start > 0:
                if step > MAX_WRAPPER_LINE:  # damaged: skipped to its start
                    top, step = self._line_start(start), _PROBE
                    continue
                step *= 2  # one line longer than the block
                continue
            cut = top - start
            while nl >= 0:
                yield start + nl + 1, block[nl + 1:cut]
                cut = nl + 1
                nl = block.rfind(b"\n", 0, nl)
            if start == 0:
                yield 0, block[:cut]
                return
            top, step = start + cut, _PROBE

    def _line_start(self, x: int) -> int:
        """The start of the line holding byte ``x``."""
        while x > 0:
            start = max(0, x - _PROBE)
            block = self._read(x - start, start)
            nl = block.rfind(b"\n")
            if nl >= 0:
                return start + nl + 1
            x = start
        return 0

    def _after_complete(self, offset: int) -> bool:
        """Whether the stdout piece before the wrapper line at ``offset`` ended its line (so the
        next stdout piece begins one). True at the start of the file."""
        for _off, line in self.lines_backward(offset):
            piece = parse(self.kind, line)
            if piece is not None and piece.stream == STREAM:
                return not piece.partial
        return True

    def _pieces(self, start: int, end: int) -> Iterator[tuple[int, Piece, bool]]:
        """(offset, piece, whether it begins a line) of the stdout pieces of the wrapper lines
        starting in ``[start, end)``; ``start`` is a line start."""
        begins = start == 0 or self._after_complete(start)
        for off, line in self.lines(start, end):
            piece = parse(self.kind, line)
            if piece is None or piece.stream != STREAM:
                continue
            yield off, piece, begins
            begins = not piece.partial

    # --- what search.py asks -----------------------------------------------------------------

    def next_entry(self, x: int, hi: int) -> tuple[int, Head] | None:
        """(offset of its wrapper line, parsed prefix) of the first entry whose wrapper line starts
        in ``[x, hi)``, else None (``search.next_entry`` for a container log)."""
        start = x if x == 0 else self._next_line(x)
        if start is None:
            return None
        for off, piece, begins in self._pieces(start, min(hi, self.size)):
            if begins and (head := self._head(piece, off)) is not None:
                return off, head
        return None

    def last_entry(self) -> tuple[int, Head] | None:
        """(offset, prefix) of the last entry, read backwards from the end."""
        candidate: tuple[int, Head] | None = None
        for off, line in self.lines_backward(self.size):
            piece = parse(self.kind, line)
            if piece is None or piece.stream != STREAM:
                continue
            if candidate is not None:
                if not piece.partial:
                    return candidate  # the piece before it ended its line: it begins one
                candidate = None
            head = self._head(piece, off)
            if head is not None:
                candidate = (off, head)
        return candidate

    def _next_line(self, x: int) -> int | None:
        """The first line start at or after ``x`` (> 0), None when there is none before the end."""
        pos = x - 1
        while pos < self.size:
            block = self._read(min(_PROBE, self.size - pos), pos)
            nl = block.find(b"\n")
            if nl >= 0:
                return pos + nl + 1
            if not block:
                break
            pos += len(block)
        return None

    def _head(self, piece: Piece, offset: int) -> Head | None:
        text = piece.text
        if piece.partial and len(text) < PREFIX_MAX:  # a short piece: the line goes on in the next ones
            text = self._joined(offset, piece)
        elif not piece.partial:
            text += b"\n"
        return match_head(text)

    def _joined(self, offset: int, first: Piece) -> bytes:
        """The start of the line whose first piece (at ``offset``) is ``first``: PREFIX_MAX bytes
        of it, or the whole line."""
        text = b""
        for _off, piece, _begins in self._pieces(offset, self.size):
            text += piece.inner
            if not piece.partial or len(text) >= PREFIX_MAX:
                break
        return text

    # --- the Redis log's bytes ---------------------------------------------------------------

    def unwrap(self, start: int, end: int) -> Iterator[bytes]:
        """The Redis log's bytes carried by the wrapper lines starting in ``[start, end)`` (``end``
        a line start, or the size), read ``_BLOCK`` bytes at a time; one piece per read."""
        pos, carry, skipping = start, b"", False
        while pos < end:
            want = min(_BLOCK, end - pos)
            block = self._read(want, pos)
            if len(block) < want:
                raise _shrank()
            pos += want
            complete, carry, skipping = complete_lines(carry, block, skipping)
            if complete:
                yield unwrap_lines(self.kind, complete)

    def leading(self, end: int, day: date, clock: Clock) -> Iterator[bytes]:
        """The lines before ``end`` (the first entry's offset, or the size) whose wrapper time is
        on ``day`` (``leading_pieces``)."""
        return leading_pieces((piece for _off, piece, _begins in self._pieces(0, end)), day, clock)


def leading_pieces(pieces: Iterable[Piece | None], day: date, clock: Clock) -> Iterator[bytes]:
    """Of a container log's pieces from its start (None: a line that is none), the stdout lines
    before its first entry whose wrapper time is on ``day``: lines that continue no entry (see the
    module's docstring). A line cut into pieces has the time of its first piece."""
    begins, line_day = True, None
    for piece in pieces:
        if piece is None or piece.stream != STREAM:
            continue
        if begins:
            if match_head(piece.text if piece.partial else piece.text + b"\n") is not None:
                return
            line_day = wrapper_day(piece.time, clock)
        if line_day == day:
            yield piece.inner
        begins = not piece.partial


def complete_lines(carry: bytes, block: bytes, skipping: bool) -> tuple[bytes, bytes, bool]:
    """Of ``carry`` (an unfinished wrapper line) and the next ``block`` read: (the complete lines,
    what is left of an unfinished one, whether a line over ``MAX_WRAPPER_LINE`` is being skipped).
    Memory: at most that bound plus the block, whatever the line."""
    if skipping:
        nl = block.find(b"\n")
        if nl < 0:
            return b"", b"", True
        block = block[nl + 1:]
    data = carry + block if carry else block
    cut = data.rfind(b"\n") + 1
    rest = data[cut:]  # a line that goes on in the next read (or is being written, at the end)
    if len(rest) > MAX_WRAPPER_LINE:
        return data[:cut], b"", True
    return data[:cut], rest, False


def bounded_lines(f: _Readable) -> Iterator[bytes]:
    """The complete lines of the stream ``f`` (a gzip copy), those over ``MAX_WRAPPER_LINE`` left
    out, read ``_BLOCK`` at a time (``for line in f`` would hold any line whole)."""
    carry, skipping = b"", False
    while block := f.read(_BLOCK):
        complete, carry, skipping = complete_lines(carry, block, skipping)
        yield from complete.splitlines(keepends=True)


def _shrank() -> OSError:
    from dcslog.runlog.slicer import SourceChanged  # (slicer imports this module)

    return SourceChanged(-1)


class UnwrappedReader:
    """A readable stream of container log lines (a gzip-compressed rotated copy) read as the Redis
    log they carry: ``read`` and ``readline`` answer its bytes. Memory: one chunk read, and a
    line cut into pieces."""

    def __init__(self, raw: _Readable, kind: str, chunk: int = 1 << 20):
        self._raw, self._kind, self._chunk = raw, kind, chunk
        self._buf = bytearray()
        self._carry = b""
        self._skipping = False
        self._eof = False

    def _fill(self) -> bool:
        """Unwrap one more chunk into the buffer; False at the end."""
        if self._eof:
            return False
        data = self._raw.read(self._chunk)
        if not data:
            self._eof = True  # a last line without its newline was being written: left out
            return False
        complete, self._carry, self._skipping = complete_lines(self._carry, data, self._skipping)
        self._buf += unwrap_lines(self._kind, complete)
        return True

    def read(self, n: int = -1) -> bytes:
        while (n < 0 or len(self._buf) < n) and self._fill():
            pass
        if n < 0:
            n = len(self._buf)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def readline(self, limit: int = -1) -> bytes:
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0 or (0 <= limit <= len(self._buf)) or not self._fill():
                break
        end = len(self._buf) if nl < 0 else nl + 1
        if limit >= 0:
            end = min(end, limit)
        out = bytes(self._buf[:end])
        del self._buf[:end]
        return out


_CRI_STDOUT_F = b" stdout F "
_DOCKER_STDOUT = b'\\n","stream":"stdout","time":"'


def unwrap_lines(kind: str, data: bytes) -> bytes:
    """What the complete wrapper lines ``data`` carry of the Redis log (their stdout pieces).

    The common line — a full stdout line (CRI), one whose text json-file did not escape (Docker)
    — is recognised by a few searches and cut where it stands; any other (a partial piece, a
    stderr line, an escape other than of ``<`` ``>`` ``&``) is parsed (``parse``)."""
    lines = data.split(b"\n")
    lines.pop()  # (data ends with a newline)
    if kind == CRI:
        out = [line[k + 10:] + b"\n" if (k := line.find(b" ")) >= 20 and line.startswith(_CRI_STDOUT_F, k)
               else _inner(kind, line) for line in lines]
    else:
        out = [line[8:k] + b"\n" if (k := line.find(_DOCKER_STDOUT, 8)) > 0 and line.find(b"\\", 8, k) < 0
               and line.find(b'"', 8, k) < 0 and line.startswith(_DOCKER_LOG) else _docker_inner(line, k)
               for line in lines]
    return b"".join(out)


def _docker_inner(line: bytes, k: int) -> bytes:
    """What a json-file ``line`` other than the plainest carries: one whose only escapes are of
    ``<`` ``>`` ``&`` (Go's, in every "MASTER <-> REPLICA" line) by replacing them — exact, since
    a backslash left over means one was something else, and then the line is parsed."""
    if k > 0 and line.startswith(_DOCKER_LOG):
        text = line[8:k].replace(b"\\u003c", b"<").replace(b"\\u003e", b">").replace(b"\\u0026", b"&")
        if b"\\" not in text and b'"' not in text:
            return text + b"\n"
    return _inner(DOCKER, line)


def _inner(kind: str, line: bytes) -> bytes:
    """What the wrapper ``line`` (without its newline) carries of the Redis log."""
    piece = parse(kind, line + b"\n")
    return piece.inner if piece is not None and piece.stream == STREAM else b""
