from datetime import date

import pytest

from dcslog.runlog.grammar import PREFIX_MAX, match_date, parse_line_date


@pytest.mark.parametrize("line, expected", [
    (b"12345:M 26 Nov 2026 14:03:07.123 * Ready to accept connections tcp\n", date(2026, 11, 26)),
    (b"1:S 01 Jan 2027 00:00:00.000 # WARNING overcommit_memory", date(2027, 1, 1)),
    (b"99:C 29 Feb 2028 23:59:59.999 . child done\r\n", date(2028, 2, 29)),
    (b"7:X 09 Dec 2026 10:00:00.500 - empty follows", date(2026, 12, 9)),
    (b"7:M 09 Dec 2026 10:00:00.500 *", date(2026, 12, 9)),
    (b"7:M 09 Dec 2026 10:00:00.500 *\n", date(2026, 12, 9)),
])
def test_prefixed_lines(line, expected):
    assert parse_line_date(line) == expected


@pytest.mark.parametrize("line", [
    b"",
    b"\n",
    b"                _._                                                  \n",
    b"=== REDIS BUG REPORT START: Cut & paste starting from here ===\n",
    b"redis-server *:6379(debugCommand+0x1a7)[0x55d2b1e0c1a7]\n",
    b"[1234] 26 Nov 14:03:07.123 * Redis 2.8 style\n",  # no year: pre-4 format
    b"12345:Q 26 Nov 2026 14:03:07.123 * bad role\n",
    b"12345:M 26 Nov 2026 14:03:07.123 ! bad level\n",
    b"12345:M 26 Foo 2026 14:03:07.123 * bad month\n",
    b"12345:M 31 Feb 2026 14:03:07.123 * impossible date\n",
    b"12345:M 26 Nov 2026 14:03:07 * no millis\n",
    b" 12345:M 26 Nov 2026 14:03:07.123 * indented\n",
    b"12345:M 26 Nov 2026 14:03:07.123 *x no space after level\n",
])
def test_continuation_lines(line):
    assert parse_line_date(line) is None


def test_match_inside_buffer_stops_at_line_end():
    buf = b"junk\n1:M 02 Mar 2026 01:02:03.004 *\n2:M 03 Mar 2026 01:02:03.004 * x\n"
    assert match_date(buf, 5) == date(2026, 3, 2)
    assert match_date(buf, 0) is None


def test_prefix_max_covers_longest_prefix():
    line = b"9" * 20 + b":M 26 Nov 2026 14:03:07.123 * "
    assert len(line) <= PREFIX_MAX
    assert match_date(line[:PREFIX_MAX]) == date(2026, 11, 26)
