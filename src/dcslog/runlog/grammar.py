"""The Redis (>= 4) log line grammar, reduced to what slicing needs: a line's date.

A log entry starts with ``PID:ROLE DD Mon YYYY HH:MM:SS.mmm LEVEL message``,
ROLE one of ``M S C X`` and LEVEL one of ``. - * #``, for example::

    12345:M 26 Nov 2026 14:03:07.123 * Ready to accept connections tcp

Any other line (start-up logo, crash report, stack trace, blank line) is a
*continuation line* of the entry before it. Dates are the naive local dates
written by the Redis host; no time-zone conversion happens here.
"""

from __future__ import annotations

from datetime import date

__all__ = ["PREFIX_MAX", "match_date", "parse_line_date"]

_MONTHS = {m.encode(): i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

#: Bytes of a line that always suffice to decide whether it is prefixed
#: (20-digit pid + ":M 26 Nov 2026 14:03:07.123 * " is 50).
PREFIX_MAX = 64

# Checked by hand rather than with `re`: importing `re` alone would double the
# start-up time of a one-shot slicing process. Offsets are from ROLE in
# "M 26 Nov 2026 14:03:07.123 * ".
_SPACES = (1, 4, 8, 13, 26)
_DIGITS = ((2, 4), (9, 13), (14, 16), (17, 19), (20, 22), (23, 26))


def match_date(buf: bytes, pos: int = 0) -> date | None:
    """Date of the line starting at ``buf[pos]``, or None for a continuation line.

    ``buf`` must hold at least ``PREFIX_MAX`` bytes from ``pos`` or the whole
    rest of the line; an impossible date (31 Feb) counts as a continuation line.
    """
    colon = buf.find(b":", pos, pos + 21)
    if colon <= pos or not buf[pos:colon].isdigit():
        return None
    head = buf[colon + 1:colon + 30]
    if (len(head) < 28 or head[0] not in b"MSCX" or head[27] not in b".-*#"
            # After LEVEL Redis writes a space; an empty message may end the line or the data.
            or (len(head) == 29 and head[28] not in b" \r\n")
            or any(head[i] != 32 for i in _SPACES)
            or head[16] != 58 or head[19] != 58 or head[22] != 46
            or not all(head[a:b].isdigit() for a, b in _DIGITS)
            or (month := _MONTHS.get(head[5:8])) is None):
        return None
    try:
        return date(int(head[9:13]), month, int(head[2:4]))
    except ValueError:
        return None


def parse_line_date(line: bytes) -> date | None:
    """Date of a prefixed log line, None for a continuation line."""
    return match_date(line)
