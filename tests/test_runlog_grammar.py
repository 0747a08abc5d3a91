import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dcslog.runlog.grammar import PREFIX_MAX, Clock, HeadReader, match_head
from tests import runlog_reference as ref

UTC = UTC
TOKYO = ZoneInfo("Asia/Tokyo")


def day_of(line, tz=None):
    head = match_head(line)
    return None if head is None else Clock(tz).day(head)


@pytest.mark.parametrize("line, expected", [
    (b"12345:M 26 Nov 2026 14:03:07.123 * Ready to accept connections tcp\n", date(2026, 11, 26)),
    (b"1:S 01 Jan 2027 00:00:00.000 # WARNING overcommit_memory", date(2027, 1, 1)),
    (b"99:C 29 Feb 2028 23:59:59.999 . child done\r\n", date(2028, 2, 29)),
    (b"7:X 09 Dec 2026 10:00:00.500 - empty follows", date(2026, 12, 9)),
    (b"7:M 09 Dec 2026 10:00:00.500 *", date(2026, 12, 9)),
    (b"7:M 09 Dec 2026 10:00:00.500 *\n", date(2026, 12, 9)),
    # Valkey 8.1 log-timestamp-format milliseconds / iso8601 (zoned: the day is in UTC here)
    (b"3961:M 1796514508164 # WARNING Memory overcommit must be enabled!\n", date(2026, 12, 5)),
    (b"4075:S 2026-12-05T23:48:28.974+00:00 * Ready\n", date(2026, 12, 5)),
    (b"4075:S 2026-12-06T00:48:28.974+01:00 * Ready\n", date(2026, 12, 5)),
    (b"4075:S 2026-12-05T20:48:28.974-05:00 * Ready\n", date(2026, 12, 6)),
    (b"4075:S 2026-12-05T23:48:28.974Z * Ready\n", date(2026, 12, 5)),
    # log-format logfmt with the three timestamp formats
    (b'pid=3650 role=primary timestamp="2026-12-05T23:48:25.728+00:00" level=notice message="Ready"\n',
     date(2026, 12, 5)),
    (b'pid=3762 role=RDB/AOF timestamp="1796514506541" level=info message="x"\n', date(2026, 12, 5)),
    (b'pid=3896 role=replica timestamp="05 Dec 2026 23:48:27.351" level=warning message="loaded"\n',
     date(2026, 12, 5)),
    (b'pid=1 role=sentinel timestamp="05 Dec 2026 23:48:27.351" level=debug message=""', date(2026, 12, 5)),
])
def test_entry_lines(line, expected):
    assert day_of(line) == expected
    assert match_head(line).format == ref.parse(line)["format"]


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
    b"12345:M 179651450 * too few digits for epoch milliseconds\n",
    b"12345:M 2026-12-05T23:48:28.974 * iso without offset\n",
    b"12345:M 2026-12-05T23:48:28.974+25:00 * impossible offset\n",
    b"12345:M 2026-12-05 23:48:28.974+00:00 * not iso\n",
    b"4288 bio_aof\n",
    b'pid=3650 role=leader timestamp="1796514506541" level=notice message="unknown role"\n',
    b'pid=3650 role=primary timestamp="1796514506541" level=loud message="unknown level"\n',
    b'pid=x role=primary timestamp="1796514506541" level=notice message="bad pid"\n',
    b'pid=3650 role=primary timestamp="yesterday" level=notice message="bad time"\n',
    b'pid=3650 role=primary level=notice timestamp="1796514506541" message="other order"\n',
])
def test_continuation_lines(line):
    assert match_head(line) is None
    assert ref.parse(line) is None


def test_match_inside_buffer_stops_at_line_end():
    buf = b"junk\n1:M 02 Mar 2026 01:02:03.004 *\n2:M 03 Mar 2026 01:02:03.004 * x\n"
    assert Clock().day_at(buf, 5) == date(2026, 3, 2)
    assert Clock().day_at(buf, 0) is None


def test_head_fields_in_redis_words():
    head = match_head(b"77:S 26 Nov 2026 14:03:07.123 # Connection lost\n")
    assert (head.format, head.pid, head.role, head.level) == ("legacy", 77, "slave", "warning")
    line = b'pid=9 role=RDB/AOF timestamp="1796514506541" level=info message="Fork CoW"\n'
    head = match_head(line)
    assert (head.format, head.pid, head.role, head.level, head.epoch_ms) == ("logfmt", 9, "child", "verbose",
                                                                             1796514506541)
    assert line[head.body:] == b'Fork CoW"\n'


def test_prefix_max_covers_the_longest_prefixes():
    lines = [b"9" * 20 + b":M 26 Nov 2026 14:03:07.123 * ",
             b"9" * 20 + b":M 2026-11-26T14:03:07.123+05:30 * ",
             b"pid=" + b"9" * 20 + b' role=sentinel timestamp="2026-11-26T14:03:07.123+05:30" level=warning message="']
    for line in lines:
        assert len(line) <= PREFIX_MAX
        assert match_head(line[:PREFIX_MAX] + b"x" * 100) is not None


def test_zoned_times_land_in_the_instance_day():
    # 16:30 UTC is already the next day in Tokyo; a naive legacy time is taken as written there.
    assert day_of(b"1:M 2026-12-05T16:30:00.000+00:00 * x\n", TOKYO) == date(2026, 12, 6)
    assert day_of(b"1:M 1796488200000 * x\n", TOKYO) == date(2026, 12, 6)  # 2026-12-05T16:30Z
    assert day_of(b"1:M 05 Dec 2026 16:30:00.000 * x\n", TOKYO) == date(2026, 12, 5)
    head = match_head(b"1:M 05 Dec 2026 16:30:00.000 * x\n")
    assert Clock(TOKYO).epoch_ms(head) == 1796488200000 - 9 * 3600 * 1000


@pytest.mark.parametrize("tz", [UTC, TOKYO, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")])
def test_random_entries_agree_with_the_reference(tz):
    rng = random.Random(str(tz))
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for _ in range(2000):
        moment = start + timedelta(milliseconds=rng.randrange(400 * 86400 * 1000))
        style = rng.choice(ref.STYLES)
        line = ref.write_entry(moment, "m" * rng.randrange(3), style=style, tz=tz, pid=rng.randrange(1, 10 ** 7),
                               role=rng.choice(["master", "slave", "child", "sentinel"]),
                               level=rng.choice(["debug", "verbose", "notice", "warning"]))
        expected = ref.parse(line, tz)
        head = match_head(line)
        clock = Clock(tz)
        assert (head.format, head.pid, head.role, head.level, clock.day(head)) == (
            expected["format"], expected["pid"], expected["role"], expected["level"], expected["day"]), line
        if style[1] != "legacy":  # a naive time in a DST fold is ambiguous; zoned ones are exact
            assert clock.epoch_ms(head) == expected["time_ms"], line


@pytest.mark.parametrize("tz", [UTC, ZoneInfo("Asia/Kolkata")])
def test_the_head_reader_agrees_with_the_reference(tz):
    """HeadReader (match_head faster for lines alike) on lines of one buffer, in order and out of
    order: entries of every style, few pids and minutes, and copies of legacy ones broken after
    their minute (seconds 60, a letter in the milliseconds, no level, no space after it), at the
    end of the buffer too."""
    rng = random.Random(str(tz))
    start = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    lines = []
    for n in range(3000):
        moment = start + timedelta(milliseconds=n * rng.choice([1, 7, 600]))
        style = rng.choice(ref.STYLES[:1] * 6 + ref.STYLES)
        line = ref.write_entry(moment, rng.choice(["x", "", "a # b"]), style=style, tz=tz, pid=rng.choice([7, 4242]),
                               role=rng.choice(["master", "child"]), level=rng.choice(["notice", "warning", "debug"]))
        if rng.random() < 0.1:
            line = line.replace(b" \n", b"\n").replace(b"\n", rng.choice([b"\n", b"\r\n"]))
        if rng.random() < 0.2 and style == ("legacy", "legacy"):
            cut = line.index(b" ") + 18  # "PID:R DD Mon YYYY HH:MM"
            line = line[:cut] + rng.choice([b":60.000 * x\n", b":07.1x3 * x\n", b":07.123 ! x\n", b":07.123 *x\n",
                                            b":07.123\n", b":7.123 * x\n", b":07,123 * x\n"])
        lines.append(line)
    buf = b"".join(lines) + lines[0][:40]  # and a cut line at the end
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    clock = Clock(tz)
    reader = HeadReader(clock)
    for pos in starts[:-1] + rng.sample(starts[:-1], 500) + [starts[-1]]:
        expected = ref.parse(buf[pos:buf.find(b"\n", pos) + 1 or len(buf)], tz)
        head, t = reader.timed(buf, pos)
        assert (head is None) == (expected is None) == (not reader.is_entry(buf, pos)), buf[pos:pos + 60]
        assert reader.time(buf, pos) == (None if expected is None else expected["time_ms"])
        assert reader.head(buf, pos) is not None if head is not None else reader.head(buf, pos) is None
        if head is not None:
            assert (head.format, head.pid, head.role, head.level) == (
                expected["format"], expected["pid"], expected["role"], expected["level"])
            assert head.body == match_head(buf, pos).body
            assert t == expected["time_ms"] == clock.epoch_ms(head)
            reader.head(buf, pos)  # the last one read (same_time compares bytes with it)
            for other in rng.sample(starts[:-1], 3) + [starts[max(0, starts.index(pos) - 1)]]:
                theirs = ref.parse(buf[other:buf.find(b"\n", other) + 1], tz)
                assert reader.same_time(buf, other, pos, t) == (
                    None if theirs is None else theirs["time_ms"] == t), buf[other:other + 60]
