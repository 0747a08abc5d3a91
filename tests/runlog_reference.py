"""An independent reading of Redis/Valkey run-log lines, for tests: regular expressions
written from the formats Redis and Valkey document (not from dcslog's grammar), a
line-by-line reference for "the lines of one day", and writers of entries in every format.
"""

from __future__ import annotations

import gzip
import re
from datetime import UTC, date, datetime, timedelta, tzinfo

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_TS = (r"(?P<legacy>\d\d (?:" + "|".join(MONTHS) + r") \d{4} \d\d:\d\d:\d\d\.\d{3})"
       r"|(?P<ms>\d{10,15})"
       r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:[+-]\d\d:?\d\d|Z))")
LEGACY = re.compile(rb"(?P<pid>\d{1,20}):(?P<role>[MSCX]) (?:" + _TS.encode() + rb") (?P<level>[.\-*#])(?: |\r?\n|$)")
LOGFMT = re.compile(rb'pid=(?P<pid>\d+) role=(?P<role>primary|replica|RDB/AOF|sentinel|master|slave|child) '
                    rb'timestamp="(?:' + _TS.encode() + rb')" level=(?P<level>debug|info|verbose|notice|warning)'
                    rb'(?: |\r?\n|$)')
ROLE_WORDS = {b"M": "master", b"S": "slave", b"C": "child", b"X": "sentinel", b"primary": "master",
              b"replica": "slave", b"RDB/AOF": "child", b"sentinel": "sentinel", b"master": "master",
              b"slave": "slave", b"child": "child"}
LEVEL_WORDS = {b".": "debug", b"-": "verbose", b"*": "notice", b"#": "warning", b"debug": "debug",
               b"info": "verbose", b"verbose": "verbose", b"notice": "notice", b"warning": "warning"}


def parse(line: bytes, tz: tzinfo = UTC) -> dict | None:
    """{format, pid, role, level, day, time_ms} of an entry's first line, None for a continuation line."""
    m = LEGACY.match(line) or LOGFMT.match(line)
    if m is None:
        return None
    try:
        if m["legacy"]:
            naive = datetime.strptime(m["legacy"].decode(), "%d %b %Y %H:%M:%S.%f")
            moment = naive.replace(tzinfo=tz)
            day = naive.date()
        elif m["ms"]:
            moment = datetime.fromtimestamp(int(m["ms"]) / 1000, UTC)
            day = moment.astimezone(tz).date()
        else:
            moment = datetime.fromisoformat(m["iso"].decode().replace("Z", "+00:00"))
            day = moment.astimezone(tz).date()
    except ValueError:  # 31 Feb, 25:00, a +25:00 offset
        return None
    if m.re is LOGFMT:
        fmt = "logfmt"
    else:
        fmt = "legacy" if m["legacy"] else "legacy-ms" if m["ms"] else "legacy-iso8601"
    return {"format": fmt, "pid": int(m["pid"]), "role": ROLE_WORDS[m["role"]], "level": LEVEL_WORDS[m["level"]],
            "day": day, "time_ms": round(moment.timestamp() * 1000)}


def read_all(path) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def reference_day(paths, day: date, tz: tzinfo = UTC) -> bytes:
    """The bytes of ``day``: every entry of that day with its continuation lines, sources
    oldest first; lines before the first entry anywhere go with that first entry."""
    out, cur, pending = [], None, []
    for path in paths:
        for line in read_all(path).splitlines(keepends=True):
            head = parse(line, tz)
            if head is not None:
                if cur is None and head["day"] == day:
                    out.extend(pending)
                cur = head["day"]
            if cur is None:
                pending.append(line)
            elif cur == day:
                out.append(line)
    return b"".join(out)


# --- writing entries --------------------------------------------------------

#: (log-format, log-timestamp-format) pairs Valkey 8.1 writes.
STYLES = [("legacy", "legacy"), ("legacy", "milliseconds"), ("legacy", "iso8601"),
          ("logfmt", "legacy"), ("logfmt", "milliseconds"), ("logfmt", "iso8601")]
_LEGACY_ROLE = {"master": "M", "slave": "S", "child": "C", "sentinel": "X"}
_LOGFMT_ROLE = {"master": "primary", "slave": "replica", "child": "RDB/AOF", "sentinel": "sentinel"}
_LEGACY_LEVEL = {"debug": ".", "verbose": "-", "notice": "*", "warning": "#"}
_LOGFMT_LEVEL = {"debug": "debug", "verbose": "info", "notice": "notice", "warning": "warning"}


def stamp(moment: datetime, ts_format: str, tz: tzinfo) -> str:
    """``moment`` (aware) as Valkey writes it with ``log-timestamp-format ts_format`` on a host in ``tz``."""
    local = moment.astimezone(tz)
    if ts_format == "milliseconds":
        return str(round(moment.timestamp() * 1000))
    if ts_format == "iso8601":
        offset = local.strftime("%z")
        return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond // 1000:03d}{offset[:3]}:{offset[3:]}"
    return f"{local.day:02d} {MONTHS[local.month - 1]} {local.year} {local:%H:%M:%S}.{local.microsecond // 1000:03d}"


def write_entry(moment: datetime, message: str = "DB saved on disk", *, style=("legacy", "legacy"),
                tz: tzinfo = UTC, pid: int = 4242, role: str = "master", level: str = "notice") -> bytes:
    log_format, ts_format = style
    ts = stamp(moment, ts_format, tz)
    if log_format == "logfmt":
        text = message.replace('"', "'").replace("\n", " ")
        return (f'pid={pid} role={_LOGFMT_ROLE[role]} timestamp="{ts}" level={_LOGFMT_LEVEL[level]} '
                f'message="{text}"\n').encode()
    return f"{pid}:{_LEGACY_ROLE[role]} {ts} {_LEGACY_LEVEL[level]} {message}\n".encode()


def at(day: date, second: float, tz: tzinfo) -> datetime:
    """The instant ``second`` seconds after the start of ``day`` in ``tz`` (wall-clock)."""
    return (datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(seconds=second)).astimezone(UTC)
