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

__all__ = ["PREFIX_MAX", "Clock", "Head", "match_head", "FORMATS", "LEVELS", "ROLES"]

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


class Head:
    """A parsed entry prefix. ``naive`` is set for a legacy timestamp (local wall-clock
    time as written), ``epoch_ms`` for the zoned ones; ``body`` is the offset in the
    buffer where the message starts."""

    __slots__ = ("format", "pid", "role", "level", "naive", "epoch_ms", "body")

    def __init__(self, format: str, pid: int, role: str, level: str, naive: datetime | None,
                 epoch_ms: int | None, body: int):
        self.format, self.pid, self.role, self.level = format, pid, role, level
        self.naive, self.epoch_ms, self.body = naive, epoch_ms, body

    def __repr__(self) -> str:
        when = self.naive.isoformat() if self.naive is not None else f"{self.epoch_ms}ms"
        return f"Head({self.format}, pid={self.pid}, {self.role}, {self.level}, {when}, body={self.body})"


def match_head(buf: bytes | bytearray | memoryview, pos: int = 0) -> Head | None:
    """The entry prefix of the line starting at ``buf[pos]``, or None for a continuation line.

    ``buf`` must hold at least ``PREFIX_MAX`` bytes from ``pos`` or the whole
    rest of the line. An impossible time (31 Feb, 25:00) makes a continuation line.
    """
    head = bytes(buf[pos:pos + PREFIX_MAX])
    try:
        if head[:4] == b"pid=":
            return _logfmt(head, pos)
        return _legacy(head, pos)
    except (ValueError, IndexError, OverflowError):
        return None


def _legacy(head: bytes, pos: int) -> Head | None:
    colon = head.find(b":", 0, 21)
    if colon <= 0 or not head[:colon].isdigit() or head[colon + 2:colon + 3] != b" ":
        return None
    role = _LEGACY_ROLES.get(head[colon + 1])
    if role is None:
        return None
    stamp = colon + 3
    # The legacy timestamp holds spaces ("26 Nov 2026 14:03:07.123"), the others none.
    end = stamp + _LEGACY_STAMP if head[stamp + 2:stamp + 3] == b" " else head.find(b" ", stamp)
    if end < 0 or head[end:end + 1] != b" ":
        return None
    naive, epoch_ms, fmt = _timestamp(head[stamp:end], legacy_line=True)
    if naive is None and epoch_ms is None:
        return None
    level = _LEGACY_LEVELS.get(head[end + 1]) if end + 1 < len(head) else None
    # After LEVEL Redis writes a space; an empty message may end the line or the data.
    if level is None or head[end + 2:end + 3] not in (b" ", b"\r", b"\n", b""):
        return None
    body = end + 3 if head[end + 2:end + 3] == b" " else end + 2
    return Head(fmt, int(head[:colon]), role, level, naive, epoch_ms, pos + body)


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
    naive, epoch_ms, _ = _timestamp(head[stamp:quote], legacy_line=False)
    if naive is None and epoch_ms is None:
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
    return Head("logfmt", int(head[4:space]), role, level, naive, epoch_ms, pos + min(body, len(head)))


def _timestamp(raw: bytes, legacy_line: bool) -> tuple[datetime | None, int | None, str]:
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
    writes its naive legacy timestamps in, and in which days begin and end."""

    __slots__ = ("tz",)

    def __init__(self, tz: tzinfo | None = None):
        self.tz = tz or _UTC

    def day(self, head: Head) -> date:
        """The calendar day of the entry, in the instance's time zone."""
        if head.naive is not None:
            return head.naive.date()
        return datetime.fromtimestamp(head.epoch_ms // 1000, self.tz).date()  # type: ignore[operator]

    def epoch_ms(self, head: Head) -> int:
        if head.epoch_ms is not None:
            return head.epoch_ms
        return _ms(head.naive.replace(tzinfo=self.tz))  # type: ignore[union-attr]

    def day_at(self, buf: bytes | bytearray | memoryview, pos: int = 0) -> date | None:
        """The day of the entry starting at ``buf[pos]``, None for a continuation line."""
        head = match_head(buf, pos)
        return None if head is None else self.day(head)
