"""A Redis run as a systemd unit without ``logfile``: its log read from the journal.

With ``logfile ""`` Redis writes its log to stdout, and under systemd
(``StandardOutput=journal``, the default) journald stores every line it reads
from that pipe as one journal entry: ``MESSAGE`` is the line without its
newline, ``_TRANSPORT=stdout``, ``_SYSTEMD_UNIT`` the unit, and
``__REALTIME_TIMESTAMP`` the moment journald read it. A node whose log is
there is named at import with ``--journal HOST:PORT=UNIT`` and stored as its
log source ``journal:UNIT`` (``journal:UNIT?path=P`` when the journal to read
is not the host's own: ``P`` a journal directory, ``journalctl --directory``,
or a journal file, ``--file``).

**Read through journalctl**, never a shell: ``journalctl --unit UNIT --since
@S --until @U --output=export --all`` with its arguments as a list (the
journal export format: binary-safe, and journalctl writes it about twice as
fast as ``--output=json``). Only the
unit's stdout stream (``_TRANSPORT=stdout``) is the Redis log: ``--unit``
also matches what systemd itself logs about the unit (``Started …``, a
coredump), which Redis did not write. (journald cannot tell the unit's stdout
from its stderr when both go to the journal; Redis writes its whole log to
stdout and nothing to stderr once it logs.)

**What is collected is the Redis log itself**: the ``MESSAGE`` of each
entry followed by the newline journald took off, byte for byte what Redis
wrote, which is byte for byte the file it would have written with
``logfile`` set. ``MESSAGE`` comes as text, or in the format's binary form
(its length, then its bytes) when it is not printable UTF-8; both are read. A line journald cut because it
was longer than its ``LineMax`` (48 KiB by default) comes as entries marked
``_LINE_BREAK=line-max``, joined again here; ``_LINE_BREAK=nul`` ends a line
with the NUL it was cut at, ``eof`` and ``pid-change`` with nothing.

**A day is found by seeking.** ``--since``/``--until`` are answered from the
journal's own index (``sd_journal_seek_realtime_usec``: a binary search of
each journal file's entry array by time), so a day costs the entries of the
day, whatever the size of the journal. The window asked for is the day in the
instance's time zone, widened by ``MARGIN`` on both sides; within it the day
is cut by the run-log grammar, as in a plain log: an entry's day is Redis's
own timestamp (the one the node's other logs and the records agree with),
its continuation lines (a crash report) go with it, and lines before the
window's first entry — continuing an entry older than the window — go by
their journal time, as a container log's lines before its first entry go by
their wrapper's. Decision: the journal's time never splits an entry; it only
finds the day's neighbourhood.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Protocol
from urllib.parse import quote, unquote

from dcslog.runlog.grammar import Clock, match_head
from dcslog.runlog.search import FileSource, day_bounds, next_dated

__all__ = ["JOURNAL_SCHEME", "MARGIN", "JournalError", "JournalLog", "JournalPart", "check_unit", "first_ms",
           "journalctl_path", "parse", "render", "scan_segments", "write_day"]

#: How a node's log source names the journal (``journal:UNIT``), where other nodes have a path.
JOURNAL_SCHEME = "journal:"
#: How far around the day the journal is read: an entry's Redis timestamp is a little before
#: journald's (the pipe, a busy journald), and the day is cut by Redis's.
MARGIN = timedelta(minutes=10)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The characters of a unit name (systemd's ``unit_name_is_valid``), plus the glob characters
#: ``--unit`` accepts.
_UNIT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@*[]")
#: What a ``_LINE_BREAK`` put where the newline would be (none: a newline).
_LINE_BREAKS = {"line-max": b"", "nul": b"\0", "eof": b"", "pid-change": b""}
#: What journalctl says on stderr, exiting 0, when it could not open the system's journal files.
_JOURNAL_HINT = "You are currently not seeing messages from other users and the system"
#: … and when it found none.
_NO_FILES = "No journal files were found"


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...  # (and read1, when it has one)


class JournalError(OSError):
    """The journal could not be read: journalctl is missing, failed, or may not read it."""

    def __init__(self, message: str):
        super().__init__(errno.EIO, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class JournalLog:
    """A node's log in the journal: its ``unit``, and the journal ``path`` to read (a directory or
    a file) when not the host's own."""

    __slots__ = ("unit", "path")

    def __init__(self, unit: str, path: str | None = None):
        self.unit, self.path = unit, path

    def __str__(self) -> str:
        return render(self.unit, self.path)


def check_unit(unit: str) -> str:
    """``unit`` when it can be a unit name (or a pattern of them); raises ValueError otherwise."""
    if not unit or unit.startswith("-") or not set(unit) <= _UNIT_CHARS or len(unit) > 256:
        raise ValueError(f"{unit!r} is not a systemd unit name (e.g. redis-server.service)")
    return unit


def render(unit: str, path: str | None = None) -> str:
    """The log source naming ``unit`` in the journal at ``path`` (None: the host's)."""
    return f"{JOURNAL_SCHEME}{check_unit(unit)}" + (f"?path={quote(path)}" if path else "")


def parse(log_file: str | None) -> JournalLog | None:
    """The journal a node's log source names, None when it is a path."""
    if not log_file or not log_file.startswith(JOURNAL_SCHEME):
        return None
    unit, _, query = log_file[len(JOURNAL_SCHEME):].partition("?")
    path = unquote(query[len("path="):]) if query.startswith("path=") else None
    return JournalLog(unit, path or None)


def journalctl_path() -> str | None:
    """journalctl on this host, None when it has none."""
    return shutil.which("journalctl")


def command(journal: JournalLog, since: datetime | None, until: datetime | None) -> list[str]:
    """The journalctl invocation reading ``journal``'s unit from ``since`` to ``until`` (None: from
    the start, to the end)."""
    journalctl = journalctl_path()
    if journalctl is None:
        raise JournalError("journalctl is not installed on this host: a node whose log is in the journal "
                           "(--journal) is read through it (Debian: package systemd).")
    where: list[str] = []
    if journal.path:
        if not os.path.exists(journal.path):
            raise JournalError(f"No journal at {journal.path} on this host.")
        where = ["--directory" if os.path.isdir(journal.path) else "--file", journal.path]
    # (journalctl takes no time before the epoch: from there is from the start)
    window = [] if since is None or since.timestamp() <= 0 else ["--since", f"@{since.timestamp():.6f}"]
    if until is not None:
        window += ["--until", f"@{until.timestamp():.6f}"]
    return [journalctl, *where, "--unit", journal.unit, *window, "--output=export", "--all", "--no-pager",
            "--output-fields=MESSAGE,_TRANSPORT,_LINE_BREAK"]


def entries(journal: JournalLog, since: datetime | None, until: datetime | None) -> Iterator[tuple[int, bytes]]:
    """(journal time in µs since the epoch, the bytes Redis wrote) of each stdout entry of the
    unit in ``[since, until]`` (None: open), oldest first: a line with its newline, or a piece of
    one. Closing the iterator early ends journalctl."""
    argv = command(journal, since, until)
    # Not --quiet: journalctl tells on stderr (and exits 0) when it could open only some journal
    # files (the user's own, not the system's); that is a failure, not an empty day.
    with tempfile.TemporaryFile() as err, \
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err) as proc:
        assert proc.stdout is not None
        try:
            for fields in export_entries(proc.stdout):
                item = _entry(fields)
                if item is not None:
                    yield item
        finally:
            proc.stdout.close()
            if proc.poll() is None:  # the consumer stopped early, or failed
                proc.kill()
            status = proc.wait()
        err.seek(0)
        stderr = err.read(8192).decode("utf-8", "replace")
    if status != 0:
        first = next((line for line in stderr.splitlines() if line.strip()), f"exit status {status}")
        raise JournalError(f"journalctl cannot read the journal of {journal.unit}: {first}")
    if _JOURNAL_HINT in stderr:
        raise JournalError(f"This user may not read the system journal, where {journal.unit} logs: run dcslog as a "
                           "member of group systemd-journal (or adm), or read the node through `dcslog agent`.")
    if _NO_FILES in stderr:
        raise JournalError(f"No journal files on this host{f' in {journal.path}' if journal.path else ''}.")


def _entry(fields: dict[bytes, bytes]) -> tuple[int, bytes] | None:
    """What an entry (its fields) carries of the Redis log: None for one not on the unit's stdout."""
    message = fields.get(b"MESSAGE")
    if fields.get(b"_TRANSPORT") != b"stdout" or message is None:
        return None
    end = _LINE_BREAKS.get(fields.get(b"_LINE_BREAK", b"").decode("ascii", "replace"), b"\n")
    try:
        realtime = int(fields[b"__REALTIME_TIMESTAMP"])
    except (KeyError, ValueError):
        raise JournalError("journalctl wrote an entry without its time (__REALTIME_TIMESTAMP)") from None
    return realtime, message + end


#: The fields of an entry that are read; the others are skipped.
_WANTED = frozenset((b"MESSAGE", b"_TRANSPORT", b"_LINE_BREAK", b"__REALTIME_TIMESTAMP"))


def export_entries(stream: _Readable, chunk: int = 1 << 20) -> Iterator[dict[bytes, bytes]]:
    """The entries of journalctl's ``--output=export`` (systemd's journal export format) read
    from ``stream``: each as its wanted fields (a field given twice: its first value).

    An entry is its fields, one after the other, and a blank line. A field is ``NAME=value\n``,
    or, for a value that is not printable text (a newline, bytes that are not UTF-8), ``NAME\n``,
    its length as a little-endian 64-bit number, the value, ``\n``. Memory: a read chunk and the
    longest field."""
    buf, pos = b"", 0
    fields: dict[bytes, bytes] = {}
    # A pipe's read1 answers what journalctl has written so far: both sides work at once.
    read = getattr(stream, "read1", stream.read)

    def more(need: int) -> bool:
        """Read until ``buf`` holds ``need`` bytes from ``pos`` (False at the end of the stream)."""
        nonlocal buf, pos
        while len(buf) - pos < need:
            data = read(max(chunk, need))
            if not data:
                return False
            buf, pos = buf[pos:] + data, 0
        return True

    while True:
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if not more(len(buf) - pos + 1):
                break
            continue
        if nl == pos:  # the blank line after an entry
            if fields:
                yield fields
                fields = {}
            pos = nl + 1
            continue
        eq = buf.find(b"=", pos, nl)
        if eq >= 0:
            name = buf[pos:eq]
            if name in _WANTED and name not in fields:
                fields[name] = buf[eq + 1:nl]
            pos = nl + 1
            continue
        name = buf[pos:nl]
        head = nl + 1 - pos
        if not more(head + 8):
            raise JournalError("journalctl's output ends inside a field")
        size = int.from_bytes(buf[pos + head:pos + head + 8], "little")
        if not more(head + 8 + size + 1):
            raise JournalError("journalctl's output ends inside a field")
        start = pos + head + 8
        if buf[start + size:start + size + 1] != b"\n":
            raise JournalError(f"journalctl's output is not the journal export format (at field {name[:40]!r})")
        if name in _WANTED and name not in fields:
            fields[name] = buf[start:start + size]
        pos = start + size + 1
    if fields:
        yield fields


def day_window(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """``day`` in ``tz`` as [start, end) (23 or 25 hours on a DST change)."""
    return datetime.combine(day, time(), tz), datetime.combine(day + timedelta(days=1), time(), tz)


def write_day(journal: JournalLog, day: date, out_fd: int, tz: tzinfo | None = None) -> int:
    """Write every byte of ``day`` (in ``tz``, default UTC) of the unit's Redis log to ``out_fd``;
    return the number of bytes written. The window around the day is unwrapped into a temporary
    file (its size ∝ the day) and cut there as a plain log is (see the module's docstring)."""
    clock = Clock(tz)
    start, end = day_window(day, clock.tz)
    written = 0
    with tempfile.TemporaryFile(prefix="dcslog-journal-") as tmp:
        leading, line_day, begins = True, None, True
        for usec, text in entries(journal, start - MARGIN, end + MARGIN):
            if leading:
                if begins and clock.day_at(text) is not None:
                    leading = False
                else:
                    # Lines before the window's first entry: by the journal's day, a line cut into
                    # pieces by its first piece's.
                    if begins:
                        line_day = datetime.fromtimestamp(usec // 1_000_000, clock.tz).date()
                    if line_day == day:
                        written += _write_all(out_fd, text)
                    begins = text.endswith(b"\n") or text.endswith(b"\0")
                    continue
            tmp.write(text)
        tmp.flush()
        size = tmp.tell()
        if not size:
            return written
        fd = tmp.fileno()
        src = FileSource(fd, size)
        first = next_dated(src, 0, size, clock)
        lead = first[1] if first else day
        lo, hi = day_bounds(src, day, lead, clock)
        offset = lo
        while offset < hi:
            chunk = os.pread(fd, min(1 << 20, hi - offset), offset)
            written += _write_all(out_fd, chunk)
            offset += len(chunk)
    return written


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return len(data)


# --- records (search, follow, events) ---------------------------------------------------------

#: The newest part of a descending scan's window, in journal time; each older part is
#: ``_PART_GROWTH`` times longer (see ``scan_segments``).
_PART = timedelta(hours=1)
_PART_GROWTH = 4


def scan_segments(journal: JournalLog, start_ms: int, end_ms: int | None, after: tuple[int, int] | None,
                  descending: bool, stack: ExitStack) -> list[FileSource | JournalPart]:
    """The unit's Redis log for a records scan of ``[start_ms, end_ms)`` (``end_ms`` None: open)
    continuing after the key ``after``, as segments for ``records.scan_node``, oldest first.

    The window (from the cursor on) is widened by ``MARGIN`` on both sides: record keys count the
    entries of one millisecond, and the margin puts every entry of the window's first millisecond
    in it, so the keys are the plain log's. Ascending, it is one segment, spooled now. Descending,
    a scan usually stops early (the newest entry before a position, a page): the window is cut, in
    journal time, into parts — the newest hour, the 4 hours before it, then ×4 each — each read
    from the journal (seeking) only when the scan reaches it."""
    lo, hi = start_ms, end_ms
    if after is not None:
        lo, hi = (lo, after[0] + 1 if hi is None else min(hi, after[0] + 1)) if descending else (max(lo, after[0]), hi)
    since = datetime.fromtimestamp(lo / 1000, UTC) - MARGIN
    now = datetime.now(UTC)
    until = None if hi is None or hi > now.timestamp() * 1000 else datetime.fromtimestamp(hi / 1000, UTC) + MARGIN
    if not descending:
        return [JournalPart(journal, since, until, stack)]
    cuts: list[datetime | None] = [until]
    top, span = until or now + MARGIN, _PART
    while top - span > since:
        cuts.append(top - span)
        top, span = top - span, span * _PART_GROWTH
    cuts.append(since)
    cuts.reverse()
    return [JournalPart(journal, a, b, stack) for a, b in zip(cuts, cuts[1:], strict=False)]


class JournalPart:
    """The unit's entries whose journal time is in ``[since, until)`` (``until`` None: to the end),
    as the Redis log they carry, spooled into a temporary file (closed with ``stack``) when first
    read. Consecutive parts hold consecutive entries: their concatenation is the whole."""

    def __init__(self, journal: JournalLog, since: datetime | None, until: datetime | None, stack: ExitStack):
        self._journal, self._since, self._until, self._stack = journal, since, until, stack
        self._plain: FileSource | None = None

    def _open(self) -> FileSource:
        if self._plain is None:
            tmp = self._stack.enter_context(tempfile.TemporaryFile(prefix="dcslog-journal-"))
            # journalctl's --until is inclusive: an entry at the boundary is the next part's.
            limit = None if self._until is None else _usec(self._until)
            for usec, text in entries(self._journal, self._since, self._until):
                if limit is None or usec < limit:
                    tmp.write(text)
            tmp.flush()
            self._plain = FileSource(tmp.fileno(), tmp.tell())
        return self._plain

    @property
    def size(self) -> int:
        return self._open().size

    def pread(self, offset: int, n: int) -> bytes:
        return self._open().pread(offset, n)


def _usec(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def first_ms(journal: JournalLog, clock: Clock) -> int | None:
    """Time (ms) of the unit's first entry in the journal (what was vacuumed before it, collected
    days serve), None when it holds none. journalctl seeks to the unit's first entry; reading stops
    at the first line that starts an entry."""
    it = entries(journal, None, None)
    try:
        for _usec, text in it:
            head = match_head(text)
            if head is not None:
                return clock.epoch_ms(head)
    finally:
        it.close()  # type: ignore[attr-defined]
    return None
