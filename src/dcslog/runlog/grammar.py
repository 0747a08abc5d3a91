"""What a Redis or Valkey run-log entry is: the one place that knows the line formats.

An *entry* starts with a prefix that says who wrote it, when, and how loud;
any other line (the start-up logo, a crash report, a stack trace, a blank
line) is a *continuation line* of the entry before it. The prefixes, per
entry (``CONFIG SET log-format`` / ``log-timestamp-format`` change them at run
time, so one file can hold several):

``legacy`` (Redis >= 4, Valkey's default)::

    12345:M 26 Nov 2026 14:03:07.123 * Ready to accept connections tcp

``legacy-ms`` and ``legacy-iso8601`` (Valkey >= 8.1 ``log-timestamp-format``)::

    12345:M 1796511756724 * Ready to accept connections tcp
    12345:M 2026-11-26T14:03:07.123+01:00 * Ready to accept connections tcp

``logfmt`` (Valkey >= 8.1 ``log-format logfmt``, with any of the three timestamps)::

    pid=12345 role=primary timestamp="26 Nov 2026 14:03:07.123" level=notice message="Ready …"

ROLE is ``M S C X`` (legacy) or ``primary replica RDB/AOF sentinel`` (logfmt),
LEVEL ``. - * #`` or ``debug info notice warning``; both are reported in
Redis's words (``master``, ``slave``, ``child``, ``sentinel``; ``debug``,
``verbose``, ``notice``, ``warning``).

Times: the legacy timestamp is the Redis host's local wall-clock time with no
zone, taken as written in the instance's time zone; epoch milliseconds and
ISO 8601 with an offset are instants, placed in the instance's time zone by
:class:`Clock`. Parsing is done by hand rather than with ``re``: it runs for
every line a search steps over, and a one-shot slicing process should not pay
for importing ``re``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

__all__ = ["PREFIX_MAX", "Clock", "Head", "HeadReader", "match_head", "FORMATS", "LEVELS", "ROLES"]

#: Bytes of a line that always suffice to decide whether it starts an entry
#: (the longest: a logfmt prefix with a 20-digit pid and an ISO 8601 timestamp, ~105).
PREFIX_MAX = 128

FORMATS = ("legacy", "legacy-ms", "legacy-iso8601", "logfmt")
ROLES = ("master", "slave", "child", "sentinel")
#: In increasing order of importance.
LEVELS = ("debug", "verbose", "notice", "warning")

_MONTHS = {m.encode(): i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_LEGACY_ROLES = {ord("M"): "master", ord("S"): "slave", ord("C"): "child", ord("X"): "sentinel"}
_LEGACY_LEVELS = {ord("."): "debug", ord("-"): "verbose", ord("*"): "notice", ord("#"): "warning"}
# Valkey writes primary/replica; the Redis words are accepted too, should a fork write them.
_LOGFMT_ROLES = {b"primary": "master", b"replica": "slave", b"RDB/AOF": "child", b"sentinel": "sentinel",
                 b"master": "master", b"slave": "slave", b"child": "child"}
_LOGFMT_LEVELS = {b"debug": "debug", b"info": "verbose", b"verbose": "verbose", b"notice": "notice",
                  b"warning": "warning"}
_LEGACY_STAMP = 24  # len("26 Nov 2026 14:03:07.123")
_ISO_STAMP = 23  # len("2026-11-26T14:03:07.123"), before the offset
_EPOCH_DIGITS = range(10, 16)  # epoch milliseconds from 1970-04-27 to 33658 AD
_UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_LINE_END = (b"\r", b"\n", b"")
#: What follows the minute of a legacy prefix, read by HeadReader: ":SS." (as milliseconds),
#: "mmm" (_MILLIS), then " L" and the byte after it: (the level, where the message begins from
#: the colon after the pid).
_SECONDS_PART = {b":%02d." % s: s * 1000 for s in range(60)}
#: ... and all of it, ":SS.mmm L" and the byte after, is valid when translated by _TAIL_CLASS
#: (digits 0-5 to "0", 6-9 to "6", any other byte that cannot be there to "x") it is in _TAILS.
_TAIL_CLASS = bytes(48 if 48 <= b <= 53 else 54 if 54 <= b <= 57 else b if b in b":. \r\n.-*#" else 120
                    for b in range(256))
_TAILS = frozenset(b":0" + bytes([s2]) + b"." + bytes([m1, m2, m3]) + b" " + bytes([level]) + after
                   for s2 in b"06" for m1 in b"06" for m2 in b"06" for m3 in b"06" for level in b".-*#"
                   for after in (b" ", b"\r", b"\n"))
_LEVEL_TAIL = {b" " + bytes([char]) + after: (level, 27 + 3 - (after != b" "))
               for char, level in _LEGACY_LEVELS.items() for after in (b" ", b"\r", b"\n")}
#: "SS" and "mmm" of a time of day, as milliseconds: a lookup checks them too.
_SECONDS = {b"%02d" % s: s * 1000 for s in range(60)}
_MILLIS = {b"%03d" % m: m for m in range(1000)}
_NO_TIME: tuple[None, int, None, str] = (None, 0, None, "")
_MISSING: object = object()
#: Timestamp minutes parsed so far ("26 Nov 2026 14:03" -> naive datetime; "2026-11-26T14:03"
#: + offset -> epoch ms; None: not a time), emptied when they reach _MEMO_MAX.
_LEGACY_MINUTES: dict[bytes, datetime | None] = {}
_ISO_MINUTES: dict[bytes, int | None] = {}
_MEMO_MAX = 4096


class Head:
    """A parsed entry prefix. A legacy timestamp (local wall-clock time as written) is kept
    as its ``minute`` and the milliseconds ``milli`` within it (``naive`` puts them together),
    a zoned one as ``epoch_ms``; ``body`` is the offset in the buffer where the message starts."""

    __slots__ = ("format", "pid", "role", "level", "minute", "milli", "epoch_ms", "body")

    def __init__(self, format: str, pid: int, role: str, level: str, minute: datetime | None, milli: int,
                 epoch_ms: int | None, body: int):
        self.format = format
        self.pid = pid
        self.role = role
        self.level = level
        self.minute = minute
        self.milli = milli
        self.epoch_ms = epoch_ms
        self.body = body

    @property
    def naive(self) -> datetime | None:
        """The legacy timestamp as written (no zone), None for a zoned one."""
        return None if self.minute is None else self.minute + timedelta(milliseconds=self.milli)

    def __repr__(self) -> str:
        when = self.naive.isoformat() if self.naive is not None else f"{self.epoch_ms}ms"
        return f"Head({self.format}, pid={self.pid}, {self.role}, {self.level}, {when}, body={self.body})"


def match_head(buf: bytes | bytearray | memoryview, pos: int = 0) -> Head | None:
    """The entry prefix of the line starting at ``buf[pos]``, or None for a continuation line.

    ``buf`` must hold at least ``PREFIX_MAX`` bytes from ``pos`` or the whole
    rest of the line. An impossible time (31 Feb, 25:00) makes a continuation line.
    """
    try:
        if type(buf) is bytes:  # read in place (a legacy prefix never reaches PREFIX_MAX)
            if buf.startswith(b"pid=", pos):
                return _logfmt(buf[pos:pos + PREFIX_MAX], pos)
            return _legacy(buf, pos)
        head = bytes(buf[pos:pos + PREFIX_MAX])
        if head[:4] == b"pid=":
            return _logfmt(head, pos)
        found = _legacy(head, 0)
        if found is not None:
            found.body += pos
        return found
    except (ValueError, IndexError, OverflowError):
        return None


def _legacy(buf: bytes, p: int) -> Head | None:
    """The legacy prefix of the line at ``buf[p]`` (``body`` an offset in ``buf``); IndexError
    when ``buf`` ends before the prefix does."""
    colon = buf.find(b":", p, p + 21)
    if colon <= p or not buf[p:colon].isdigit():
        return None
    role = _LEGACY_ROLES.get(buf[colon + 1])
    if role is None or buf[colon + 2] != 32:
        return None
    stamp = colon + 3
    # The legacy timestamp holds spaces ("26 Nov 2026 14:03:07.123"), the others none.
    if buf[stamp + 2] == 32:  # the legacy one, read here rather than by _timestamp: it is the most common
        end = stamp + _LEGACY_STAMP
        if buf[end] != 32 or buf[stamp + 6] != 32 or buf[stamp + 11] != 32:
            return None
        key = buf[stamp:stamp + 17]
        minute = _LEGACY_MINUTES.get(key, _MISSING)
        if minute is _MISSING:
            minute = _minute_of(key, b"", _LEGACY_MINUTES)
        seconds, milli = _SECONDS.get(buf[stamp + 18:stamp + 20]), _MILLIS.get(buf[stamp + 21:end])
        if minute is None or seconds is None or milli is None or buf[stamp + 17] != 58 or buf[stamp + 20] != 46:
            return None
        fmt, milli, epoch_ms = "legacy", seconds + milli, None
    else:
        end = buf.find(b" ", stamp, p + PREFIX_MAX)
        if end < 0:
            return None
        minute, milli, epoch_ms, fmt = _timestamp(buf[stamp:end])
        if not fmt:
            return None
    level = _LEGACY_LEVELS.get(buf[end + 1])
    if level is None:
        return None
    # After LEVEL Redis writes a space; an empty message may end the line or the data.
    after = buf[end + 2:end + 3]
    if after == b" ":
        body = end + 3
    elif after in _LINE_END:
        body = end + 2
    else:
        return None
    return Head(fmt, int(buf[p:colon]), role, level, minute, milli, epoch_ms, body)  # type: ignore[arg-type]


def _find(buf: bytes, sub: bytes, start: int, end: int) -> int:
    return buf.find(sub, start, end)


def _startswith(buf: bytes, prefix: bytes, start: int) -> bool:
    return buf.startswith(prefix, start)


def _load_stringzilla() -> None:
    """stringzilla's find and startswith for HeadReader's: the same answers, cheaper calls. Loaded
    by the first HeadReader, so that a process that only slices a day never imports it."""
    global _find, _startswith
    from stringzilla import find, startswith

    _find, _startswith = find, startswith


class HeadReader:
    """``match_head`` and ``clock.epoch_ms`` of it for many lines of ``bytes`` buffers, faster
    where they look alike (a scan's lines: records.py). Kept: the minutes of the last two legacy
    timestamps read in full (`` 26 Nov 2026 14:03``) and the start of the last legacy prefix
    ``head`` read, up to its minute (``4242:M 26 Nov 2026 14:03``). Of a legacy line that begins
    with that start, only the rest of the prefix is read (seconds, milliseconds, level: lookups);
    of one whose timestamp begins with one of the minutes, the pid and role too; whether a line
    is an entry, or one of the same time as another, is then decided without building a Head.
    Same answers as ``match_head`` (tests/test_runlog_grammar.py checks them against the
    reference). Lines of other formats (logfmt, zoned timestamps) are read by match_head, no faster."""

    __slots__ = ("clock", "_stamp", "_minute", "_stamp2", "_minute2", "_line", "_line_pid", "_line_role",
                 "_line_minute", "_line_base", "_at", "_at_buf")

    def __init__(self, clock: Clock | None = None) -> None:
        if _find.__module__ == __name__:
            _load_stringzilla()
        self.clock = clock or Clock()
        self._stamp = self._stamp2 = self._line = b"\n"  # (in no prefix)
        self._minute: datetime | None = None
        self._minute2: datetime | None = None
        self._line_minute: datetime | None = None
        self._line_pid, self._line_role = 0, ""
        self._line_base: int | None = None  # the epoch ms of _line's minute (None: its offset changes)
        self._at, self._at_buf = -1, b""  # where the last head read began with _line

    def head(self, buf: bytes, pos: int, keep: bool = True) -> Head | None:
        """``match_head(buf, pos)``; unless not to ``keep``, its start is the one kept after this."""
        if _startswith(buf, self._line, pos):
            k = pos + len(self._line)  # ":SS.mmm L"
            if len(buf) > k + 9:
                seconds, milli = _SECONDS_PART.get(buf[k:k + 4]), _MILLIS.get(buf[k + 4:k + 7])
                tail = _LEVEL_TAIL.get(buf[k + 7:k + 10])
                if seconds is None or milli is None or tail is None:
                    return None
                if keep:
                    self._at, self._at_buf = pos, buf
                return Head("legacy", self._line_pid, self._line_role, tail[0], self._line_minute, seconds + milli,
                            None, k - 20 + tail[1])
        colon = _find(buf, b":", pos, pos + 21)
        if colon > pos and len(buf) > colon + 29:  # "PID:R DD Mon YYYY HH:MM:SS.mmm L" and one byte
            if _startswith(buf, self._stamp, colon + 2):
                minute = self._minute
            elif _startswith(buf, self._stamp2, colon + 2):
                minute = self._minute2
            else:
                return self._learn(buf, pos)
            role = _LEGACY_ROLES.get(buf[colon + 1])
            pid = buf[pos:colon]
            if role is None or not pid.isdigit():
                return match_head(buf, pos)
            seconds, milli = _SECONDS_PART.get(buf[colon + 20:colon + 24]), _MILLIS.get(buf[colon + 24:colon + 27])
            tail = _LEVEL_TAIL.get(buf[colon + 27:colon + 30])
            if seconds is None or milli is None or tail is None:
                return None
            if keep:
                if minute is not self._line_minute:
                    base = self.clock._minutes.get(minute, _MISSING)  # type: ignore[arg-type]
                    self._line_base = self.clock._learn(minute) if base is _MISSING else base  # type: ignore
                self._line, self._line_pid, self._line_role, self._line_minute = \
                    buf[pos:colon + 20], int(pid), role, minute
                self._at, self._at_buf = pos, buf
            return Head("legacy", int(pid), role, tail[0], minute, seconds + milli, None, colon + tail[1])
        return self._learn(buf, pos)

    def forget(self) -> None:
        """Let go of the last buffer ``head`` read (kept for ``same_time``): a scan calls it once
        done with a block, so that the block is freed before the next one is read."""
        self._at, self._at_buf = -1, b""

    def _learn(self, buf: bytes, pos: int) -> Head | None:
        head = match_head(buf, pos)
        if head is not None and head.format == "legacy":
            stamp = _find(buf, b":", pos, pos + 21) + 2
            self._stamp2, self._minute2 = self._stamp, self._minute
            self._stamp, self._minute = buf[stamp:stamp + 18], head.minute
        return head

    def timed(self, buf: bytes, pos: int) -> tuple[Head | None, int]:
        """(``head(buf, pos)``, its time), (None, 0) for a continuation line."""
        base = self._line_base
        if base is not None and _startswith(buf, self._line, pos):  # head's first case, with the time
            k = pos + len(self._line)  # ":SS.mmm L"
            if len(buf) > k + 9:
                seconds, milli = _SECONDS_PART.get(buf[k:k + 4]), _MILLIS.get(buf[k + 4:k + 7])
                tail = _LEVEL_TAIL.get(buf[k + 7:k + 10])
                if seconds is None or milli is None or tail is None:
                    return None, 0
                self._at, self._at_buf = pos, buf
                milli += seconds
                return Head("legacy", self._line_pid, self._line_role, tail[0], self._line_minute, milli, None,
                            k - 20 + tail[1]), base + milli
        head = self.head(buf, pos)
        if head is None:
            return None, 0
        if head.minute is self._line_minute and self._line_base is not None:
            return head, self._line_base + head.milli
        return head, self.clock.epoch_ms(head)

    def is_entry(self, buf: bytes, pos: int) -> bool:
        """``match_head(buf, pos) is not None``."""
        line = self._line
        if _startswith(buf, line, pos):
            k = pos + len(line)
            if len(buf) > k + 9:
                return buf[k:k + 10].translate(_TAIL_CLASS) in _TAILS
        colon = _find(buf, b":", pos, pos + 21)
        if colon > pos and len(buf) > colon + 29 and buf[colon + 1] in _LEGACY_ROLES \
                and (_startswith(buf, self._stamp, colon + 2) or _startswith(buf, self._stamp2, colon + 2)) \
                and buf[pos:colon].isdigit():
            return buf[colon + 20:colon + 30].translate(_TAIL_CLASS) in _TAILS
        return self.head(buf, pos, False) is not None

    def same_time(self, buf: bytes, pos: int, like: int, ms: int) -> bool | None:
        """Whether the line at ``buf[pos]`` is an entry of time ``ms`` (None: a continuation line),
        ``buf[like]`` being the start of an entry of that time: when it is the last one ``head``
        read and both begin with the start kept, their ":SS.mmm" are compared byte for byte (the
        same minute, whose offset does not change)."""
        line = self._line
        if like == self._at and buf is self._at_buf and self._line_base is not None:
            if _startswith(buf, line, pos):
                k = pos + len(line)
            else:  # another pid or role, the same minute?
                colon = _find(buf, b":", pos, pos + 21)
                k = colon + 20
                if not (colon > pos and buf[colon + 1] in _LEGACY_ROLES and _startswith(buf, line[-18:], colon + 2)
                        and buf[pos:colon].isdigit()):
                    k = -1
            if k >= 0 and len(buf) > k + 9:
                if buf[k:k + 10].translate(_TAIL_CLASS) not in _TAILS:
                    return None
                j = like + len(line)
                return _startswith(buf, buf[j:j + 7], k)
        t = self.time(buf, pos)
        return None if t is None else t == ms

    def time(self, buf: bytes, pos: int) -> int | None:
        """``clock.epoch_ms(match_head(buf, pos))``, None for a continuation line."""
        clock = self.clock
        if _startswith(buf, self._line, pos):
            k = pos + len(self._line)  # ":SS.mmm L"
            base = self._line_base
            if base is not None and len(buf) > k + 9:
                seconds, milli = _SECONDS_PART.get(buf[k:k + 4]), _MILLIS.get(buf[k + 4:k + 7])
                if seconds is None or milli is None or buf[k + 7:k + 10] not in _LEVEL_TAIL:
                    return None
                return base + seconds + milli
        colon = _find(buf, b":", pos, pos + 21)
        if colon > pos and len(buf) > colon + 29:
            if _startswith(buf, self._stamp, colon + 2):
                base = clock._minutes.get(self._minute)  # type: ignore[arg-type]
            elif _startswith(buf, self._stamp2, colon + 2):
                base = clock._minutes.get(self._minute2)  # type: ignore[arg-type]
            else:
                base = None
            if base is not None and buf[colon + 1] in _LEGACY_ROLES and buf[pos:colon].isdigit():
                seconds = _SECONDS_PART.get(buf[colon + 20:colon + 24])
                milli = _MILLIS.get(buf[colon + 24:colon + 27])
                if seconds is None or milli is None or buf[colon + 27:colon + 30] not in _LEVEL_TAIL:
                    return None
                return base + seconds + milli
        head = self.head(buf, pos, False)
        return None if head is None else clock.epoch_ms(head)


def _logfmt(head: bytes, pos: int) -> Head | None:
    # pid=N role=R timestamp="T" level=L message="…"
    space = head.find(b" ", 4)
    if space < 5 or not head[4:space].isdigit() or head[space + 1:space + 6] != b"role=":
        return None
    role_end = head.find(b" ", space + 6)
    role = _LOGFMT_ROLES.get(head[space + 6:role_end]) if role_end > 0 else None
    if role is None or head[role_end + 1:role_end + 12] != b'timestamp="':
        return None
    stamp = role_end + 12
    quote = head.find(b'"', stamp)
    if quote < 0 or head[quote + 1:quote + 8] != b" level=":
        return None
    minute, milli, epoch_ms, fmt = _timestamp(head[stamp:quote])
    if not fmt:
        return None
    level_start = quote + 8
    level_end = head.find(b" ", level_start)
    if level_end < 0:  # an entry with nothing after its level: only at the end of the line
        level_end = len(head.rstrip(b"\r\n"))
        if level_end == len(head) and len(head) == PREFIX_MAX:
            return None
    level = _LOGFMT_LEVELS.get(head[level_start:level_end])
    if level is None:
        return None
    body = level_end + 1
    if head[body:body + 9] == b'message="':
        body += 9
    return Head("logfmt", int(head[4:space]), role, level, minute, milli, epoch_ms, pos + min(body, len(head)))


def _timestamp(raw: bytes) -> tuple[datetime | None, int, int | None, str]:
    """(minute, milliseconds in it, epoch_ms, legacy-line format name) of a timestamp in any of
    the three forms: the minute and milliseconds of a legacy (naive) one, the epoch_ms of a zoned
    one; the name is empty for no timestamp.

    The minute of a legacy or ISO 8601 timestamp is parsed once (``_minute_of``) and looked up
    after that: lines come by the thousand per minute. The seconds and milliseconds are looked
    up too, which checks them (00-59, 000-999) as ``datetime`` would."""
    if len(raw) == _LEGACY_STAMP and raw[2] == 32 and raw[6] == 32 and raw[11] == 32:
        key = raw[:17]  # "26 Nov 2026 14:03"
        minute = _LEGACY_MINUTES.get(key, _MISSING)
        if minute is _MISSING:
            minute = _minute_of(key, b"", _LEGACY_MINUTES)
        seconds, milli = _SECONDS.get(raw[18:20]), _MILLIS.get(raw[21:])
        if minute is None or seconds is None or milli is None or raw[17] != 58 or raw[20] != 46:
            return _NO_TIME
        return minute, seconds + milli, None, "legacy"  # type: ignore[return-value]
    if len(raw) >= _ISO_STAMP + 1 and raw[4] == 45 and raw[7] == 45 and raw[10] == 84:  # "-", "-", "T"
        key = raw[:16] + raw[_ISO_STAMP:]  # "2026-11-26T14:03" and the offset
        base = _ISO_MINUTES.get(key, _MISSING)
        if base is _MISSING:
            base = _minute_of(raw[:16], raw[_ISO_STAMP:], _ISO_MINUTES)
        seconds, milli = _SECONDS.get(raw[17:19]), _MILLIS.get(raw[20:_ISO_STAMP])
        if base is None or seconds is None or milli is None or raw[16] != 58 or raw[19] != 46:
            return _NO_TIME
        return None, 0, base + seconds + milli, "legacy-iso8601"  # type: ignore[operator]
    if raw.isdigit():
        if len(raw) not in _EPOCH_DIGITS:
            return _NO_TIME
        return None, 0, int(raw), "legacy-ms"
    return _NO_TIME


def _minute_of(minute: bytes, offset: bytes, memo: dict) -> datetime | int | None:
    """The minute ``minute`` (then ``offset``) of a timestamp, parsed in full and remembered in
    ``memo``: the naive datetime of a legacy one, the epoch ms of an ISO 8601 one; None when no
    time of that minute is valid (whatever its seconds, since ":00.000" is)."""
    try:
        naive, epoch_ms, _ = _parse_timestamp(minute + b":00.000" + offset)
    except (ValueError, IndexError, OverflowError):
        naive = epoch_ms = None
    value = naive if naive is not None else epoch_ms
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo[minute + offset] = value
    return value


def _parse_timestamp(raw: bytes) -> tuple[datetime | None, int | None, str]:
    """(naive, epoch_ms, legacy-line format name) of a timestamp in any of the three forms."""
    if raw.isdigit():
        if len(raw) not in _EPOCH_DIGITS:
            return None, None, ""
        return None, int(raw), "legacy-ms"
    if len(raw) == _LEGACY_STAMP and raw[2] == 32 and raw[6] == 32 and raw[11] == 32:
        month = _MONTHS.get(raw[3:6])
        if month is None or not (raw[0:2] + raw[7:11]).isdigit():
            return None, None, ""
        return datetime(int(raw[7:11]), month, int(raw[0:2]), *_clock(raw[12:])), None, "legacy"
    if len(raw) >= _ISO_STAMP + 1 and raw[4] == 45 and raw[7] == 45 and raw[10] == 84:  # "-", "-", "T"
        if not (raw[0:4] + raw[5:7] + raw[8:10]).isdigit():
            return None, None, ""
        local = datetime(int(raw[0:4]), int(raw[5:7]), int(raw[8:10]), *_clock(raw[11:_ISO_STAMP]))
        offset = _offset(raw[_ISO_STAMP:])
        if offset is None:
            return None, None, ""
        return None, _ms(local.replace(tzinfo=timezone(offset))), "legacy-iso8601"
    return None, None, ""


def _clock(raw: bytes) -> tuple[int, int, int, int]:
    """``HH:MM:SS.mmm`` → (hour, minute, second, microsecond); ValueError when malformed."""
    if len(raw) != 12 or raw[2] != 58 or raw[5] != 58 or raw[8] != 46 \
            or not (raw[0:2] + raw[3:5] + raw[6:8] + raw[9:12]).isdigit():
        raise ValueError("not a time of day")
    return int(raw[0:2]), int(raw[3:5]), int(raw[6:8]), int(raw[9:12]) * 1000


def _offset(raw: bytes) -> timedelta | None:
    """``+01:00`` / ``-0530`` / ``Z`` → the UTC offset."""
    if raw == b"Z":
        return timedelta(0)
    digits = raw[1:].replace(b":", b"", 1)
    if raw[:1] not in (b"+", b"-") or len(digits) != 4 or not digits.isdigit() \
            or (len(raw) == 6 and raw[3] != 58):
        return None
    minutes = int(digits[:2]) * 60 + int(digits[2:])
    return timedelta(minutes=-minutes if raw[0] == 45 else minutes)


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


class Clock:
    """Entries' times in the instance's time zone (``tz``, default UTC): the zone Redis
    writes its naive legacy timestamps in, and in which days begin and end.

    The epoch ms of a legacy timestamp's minute is computed once per minute and remembered,
    unless the zone's offset changes within that minute (then each time is converted)."""

    __slots__ = ("tz", "_minutes")

    def __init__(self, tz: tzinfo | None = None):
        self.tz = tz or _UTC
        self._minutes: dict[datetime, int | None] = {}

    def day(self, head: Head) -> date:
        """The calendar day of the entry, in the instance's time zone."""
        if head.minute is not None:
            return head.minute.date()
        return datetime.fromtimestamp(head.epoch_ms // 1000, self.tz).date()  # type: ignore[operator]

    def epoch_ms(self, head: Head) -> int:
        ms = head.epoch_ms
        if ms is not None:
            return ms
        minute = head.minute
        base = self._minutes.get(minute, _MISSING)  # type: ignore[arg-type]
        if base is _MISSING:
            base = self._learn(minute)  # type: ignore[arg-type]
        if base is not None:
            return base + head.milli  # type: ignore[operator]
        return _ms(head.naive.replace(tzinfo=self.tz))  # type: ignore[union-attr]

    def _learn(self, minute: datetime) -> int | None:
        """The epoch ms of ``minute`` in the zone, remembered; None (remembered too) when the
        zone's offset is not the same at its first and last millisecond (a DST change)."""
        first = _ms(minute.replace(tzinfo=self.tz))
        last = _ms((minute + timedelta(milliseconds=59_999)).replace(tzinfo=self.tz))
        base = first if last - first == 59_999 else None
        if len(self._minutes) >= _MEMO_MAX:
            self._minutes.clear()
        self._minutes[minute] = base
        return base

    def day_at(self, buf: bytes | bytearray | memoryview, pos: int = 0) -> date | None:
        """The day of the entry starting at ``buf[pos]``, None for a continuation line."""
        head = match_head(buf, pos)
        return None if head is None else self.day(head)
