import errno
import gzip
import os
import random
import threading
from datetime import UTC, date, timedelta
from zoneinfo import ZoneInfo

import pytest

from dcslog.runlog import UnknownLogFormat, day_range, iter_day, search, slicer, write_day
from dcslog.runlog.search import FileSource, day_bounds
from tests.runlog_reference import STYLES, at, read_all, reference_day, write_entry

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
D1, D2, D3, D4 = (date(2026, 11, 24) + timedelta(days=i) for i in range(4))

LOGO = [
    b"                _._                                                  \n",
    b"           _.-``__ ''-._                                             \n",
    b"      _.-``    `.  `_.  ''-._           Redis 7.2.4 (00000000/0) 64 bit\n",
    b"  .-`` .-```.  ```\\/    _.,_ ''-._                                  \n",
    b"\n",
]
CRASH = [
    b"\n",
    b"=== REDIS BUG REPORT START: Cut & paste starting from here ===\n",
    b"------ STACK TRACE ------\n",
    b"redis-server *:6379(debugCommand+0x1a7)[0x55d2b1e0c1a7]\n",
    b"/lib/x86_64-linux-gnu/libc.so.6(+0x29d90)[0x7f0e3c029d90]\n",
    b"=== REDIS BUG REPORT END. Make sure to include from START to END. ===\n",
]


def entry(day, sec=0, msg="Background saving terminated with success", pid=4242, role="M", level="*"):
    h, rem = divmod(sec % 86400, 3600)
    return (f"{pid}:{role} {day.day:02d} {MONTHS[day.month - 1]} {day.year} "
            f"{h:02d}:{rem // 60:02d}:{rem % 60:02d}.{sec % 1000:03d} {level} {msg}\n").encode()


def write(path, lines, gz=False):
    data = b"".join(lines)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return str(path)


def reference(paths, day, tz=UTC):
    return reference_day(paths, day, tz)


def sliced(logfile, day, tmp_path, tz=None):
    out = tmp_path / "out.bin"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        n = write_day(logfile, day, fd, tz)
    finally:
        os.close(fd)
    data = out.read_bytes()
    assert n == len(data)
    for chunk_size in (1, 61, 1 << 20):
        chunks = list(iter_day(logfile, day, chunk_size, tz))
        assert all(0 < len(c) <= chunk_size for c in chunks)
        assert b"".join(chunks) == data
    return data


# --- single plain file -------------------------------------------------------

def test_day_at_start_middle_end_and_absent(tmp_path):
    lines = [entry(D1, i) for i in range(3)] + [entry(D2, i) for i in range(4)] + [entry(D4, 5)]
    path = write(tmp_path / "redis.log", lines)
    data = b"".join(lines)
    a, b = len(b"".join(lines[:3])), len(b"".join(lines[:7]))
    assert day_range(path, D1) == (0, a)
    assert day_range(path, D2) == (a, b)
    assert day_range(path, D4) == (b, len(data))
    s, e = day_range(path, D3)
    assert s == e
    assert day_range(path, D1 - timedelta(days=1))[0] == day_range(path, D1 - timedelta(days=1))[1]
    assert sliced(path, D2, tmp_path) == b"".join(lines[3:7])
    assert sliced(path, D4, tmp_path) == lines[7]
    assert sliced(path, D3, tmp_path) == b""
    assert sliced(path, date(2030, 1, 1), tmp_path) == b""


def test_crash_report_crossing_midnight_stays_with_its_day(tmp_path):
    d1 = [entry(D1, 86390), entry(D1, 86399, "Received SIGSEGV", level="#")] + CRASH * 3
    d2 = [entry(D2, 1, "Server initialized")]
    path = write(tmp_path / "redis.log", d1 + d2)
    assert sliced(path, D1, tmp_path) == b"".join(d1)
    assert sliced(path, D2, tmp_path) == b"".join(d2)


def test_startup_logo_belongs_to_the_entry_before(tmp_path):
    d1 = [entry(D1, 10, "oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo")] + LOGO
    d2 = [entry(D2, 3, "Server started")] + LOGO + [entry(D2, 4)]
    path = write(tmp_path / "redis.log", d1 + d2)
    assert sliced(path, D1, tmp_path) == b"".join(d1)
    assert sliced(path, D2, tmp_path) == b"".join(d2)


def test_leading_continuation_lines_of_first_source_go_to_first_entry(tmp_path):
    lines = LOGO + CRASH + [entry(D2, 5), entry(D3, 6)]
    path = write(tmp_path / "redis.log", lines)
    assert day_range(path, D2) == (0, len(b"".join(lines[:-1])))
    assert sliced(path, D2, tmp_path) == b"".join(lines[:-1])
    assert sliced(path, D1, tmp_path) == b""


def test_leading_continuation_lines_of_newer_source_go_to_older_source_day(tmp_path):
    write(tmp_path / "redis.log.1", [entry(D1, 1), entry(D1, 86399, "crash", level="#")] + CRASH[:3])
    current = CRASH[3:] + [entry(D2, 1)]
    path = write(tmp_path / "redis.log", current)
    assert sliced(path, D1, tmp_path).endswith(b"".join(CRASH[3:]))
    assert sliced(path, D2, tmp_path) == entry(D2, 1)
    # Alone, the same file gives its leading lines to its first entry.
    assert day_range(path, D2) == (0, len(b"".join(current)))


def test_no_trailing_newline(tmp_path):
    lines = [entry(D1, 1), entry(D2, 1), entry(D2, 2)[:-1]]
    path = write(tmp_path / "redis.log", lines)
    assert sliced(path, D2, tmp_path) == b"".join(lines[1:])
    path = write(tmp_path / "redis.log", [entry(D1, 1), b"7:M 25 Nov 2026 00:00:01.000 *"])
    assert sliced(path, D2, tmp_path) == b"7:M 25 Nov 2026 00:00:01.000 *"
    assert sliced(path, D1, tmp_path) == entry(D1, 1)


def test_empty_and_blank_files_give_an_empty_day(tmp_path):
    path = write(tmp_path / "redis.log", [])
    assert day_range(path, D1) == (0, 0)
    assert sliced(path, D1, tmp_path) == b""
    path = write(tmp_path / "redis.log", [b"\n", b"  \r\n"])
    assert sliced(path, D1, tmp_path) == b""


@pytest.mark.parametrize("lines", [
    LOGO,
    [b"[1234] 26 Nov 14:03:07.123 * Redis 2.8 style, no year\n"] * 3,
    [b'{"level":"info","ts":"2026-11-24T10:00:00Z","msg":"a JSON logger"}\n'],
    [b"\n"] * 70000 + [b"x\n"],  # blank beyond the sample, then text
])
def test_a_log_with_no_known_entry_is_an_error_not_an_empty_day(tmp_path, lines):
    path = write(tmp_path / "redis.log", lines)
    s, e = day_range(path, D1)
    assert s == e
    with pytest.raises(UnknownLogFormat) as caught:
        sliced(path, D1, tmp_path)
    first = next((line for line in lines[:100] if line.strip()), b"").strip().decode()
    assert path in str(caught.value)
    assert (first[:40] if first else "first 64 KiB are blank") in str(caught.value)
    with pytest.raises(UnknownLogFormat):
        list(iter_day(path, D1))
    write(tmp_path / "redis.log.1.gz", lines, gz=True)  # rotated copies count as the log
    with pytest.raises(UnknownLogFormat):
        sliced(path, D1, tmp_path)


def test_a_log_with_entries_in_some_file_is_readable(tmp_path):
    write(tmp_path / "redis.log.1", LOGO)
    path = write(tmp_path / "redis.log", [entry(D2, 1)])
    assert sliced(path, D2, tmp_path) == b"".join(LOGO) + entry(D2, 1)
    assert sliced(path, D1, tmp_path) == b""


def test_missing_everything_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_day(str(tmp_path / "redis.log"), D1, 1)
    with pytest.raises(FileNotFoundError):
        iter_day(str(tmp_path / "redis.log"), D1)  # eagerly, before iteration


def test_day_range_rejects_gzip(tmp_path):
    path = write(tmp_path / "redis.log.gz", [entry(D1)], gz=True)
    with pytest.raises(ValueError):
        day_range(path, D1)


# --- several sources ---------------------------------------------------------

def test_day_spanning_three_files(tmp_path):
    old = [entry(D1, 1), entry(D2, 1)] + CRASH
    mid = [entry(D2, 2)] + LOGO + [entry(D2, 3)]
    cur = [entry(D2, 4), entry(D3, 1)]
    write(tmp_path / "redis.log.2.gz", old, gz=True)
    write(tmp_path / "redis.log.1", mid)
    path = write(tmp_path / "redis.log", cur)
    assert sliced(path, D2, tmp_path) == b"".join(old[1:] + mid + cur[:1])
    assert sliced(path, D1, tmp_path) == entry(D1, 1)
    assert sliced(path, D3, tmp_path) == entry(D3, 1)


def test_dateext_rotation_and_missing_current_file(tmp_path):
    write(tmp_path / "redis.log-20261125.gz", [entry(D1, 1), entry(D2, 1)], gz=True)
    write(tmp_path / "redis.log-20261126", [entry(D2, 2), entry(D3, 1)])
    logfile = str(tmp_path / "redis.log")
    assert sliced(logfile, D2, tmp_path) == entry(D2, 1) + entry(D2, 2)


def test_day_entirely_inside_gz(tmp_path):
    lines = [entry(D1, i) for i in range(50)] + [entry(D2, i) for i in range(50)] + CRASH \
        + [entry(D3, i) for i in range(50)]
    write(tmp_path / "redis.log.1.gz", lines, gz=True)
    path = write(tmp_path / "redis.log", [entry(D4, 1)])
    assert sliced(path, D2, tmp_path) == b"".join(lines[50:100] + CRASH)


def test_gz_after_the_day_is_not_decompressed_further(tmp_path, monkeypatch):
    monkeypatch.setattr(slicer, "_CHUNK", 4096)
    body = gzip.compress(b"".join([entry(D1, 1), entry(D2, 1)] + [entry(D3, i) for i in range(5000)]))
    (tmp_path / "redis.log.1.gz").write_bytes(body[: len(body) // 2])  # truncated: reading it all fails
    path = write(tmp_path / "redis.log", [entry(D4, 1)])
    assert sliced(path, D1, tmp_path) == entry(D1, 1)
    with pytest.raises(EOFError):
        sliced(path, D4, tmp_path)  # would have to read through the damage


def test_gz_entirely_before_the_day_is_skipped(tmp_path):
    body = gzip.compress(b"".join([entry(D1, i) for i in range(5000)]))
    (tmp_path / "redis.log.2.gz").write_bytes(body[: len(body) // 2])
    write(tmp_path / "redis.log.1", [entry(D2, 1), entry(D3, 1)])
    path = write(tmp_path / "redis.log", [entry(D3, 2)])
    assert sliced(path, D3, tmp_path) == entry(D3, 1) + entry(D3, 2)


def test_empty_current_file_after_rotation(tmp_path):
    write(tmp_path / "redis.log.1", [entry(D1, 1), entry(D2, 1)])
    path = write(tmp_path / "redis.log", [])
    assert sliced(path, D2, tmp_path) == entry(D2, 1)


def test_undated_oldest_source_goes_to_first_entry_after_it(tmp_path):
    write(tmp_path / "redis.log.2", LOGO)
    write(tmp_path / "redis.log.1", CRASH + [entry(D2, 1)])
    path = write(tmp_path / "redis.log", [entry(D3, 1)])
    assert sliced(path, D2, tmp_path) == b"".join(LOGO + CRASH) + entry(D2, 1)
    assert sliced(path, D3, tmp_path) == entry(D3, 1)


# --- output descriptors and copy fallbacks -----------------------------------

def test_appends_at_current_position_and_to_o_append(tmp_path):
    path = write(tmp_path / "redis.log", [entry(D1, 1), entry(D2, 1)])
    out = tmp_path / "out"
    out.write_bytes(b"HEAD")
    fd = os.open(out, os.O_WRONLY | os.O_APPEND)
    try:
        assert write_day(path, D2, fd) == len(entry(D2, 1))
    finally:
        os.close(fd)
    assert out.read_bytes() == b"HEAD" + entry(D2, 1)


def test_writes_to_a_pipe(tmp_path):
    lines = [entry(D1, i, "x" * 200) for i in range(3000)]
    path = write(tmp_path / "redis.log", lines)
    r, w = os.pipe()
    got = []
    reader = threading.Thread(target=lambda: got.append(os.fdopen(r, "rb").read()))
    reader.start()
    try:
        n = write_day(path, D1, w)
    finally:
        os.close(w)
    reader.join()
    assert n == len(got[0]) and got[0] == b"".join(lines)


@pytest.mark.parametrize("broken", [("copy_file_range",), ("copy_file_range", "sendfile")])
@pytest.mark.parametrize("err", [errno.EXDEV, errno.ENOSYS, errno.EINVAL])
def test_copy_fallbacks(tmp_path, monkeypatch, broken, err):
    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))

    for name in broken:
        monkeypatch.setattr(os, name, fail)
    lines = [entry(D1, 1)] + [entry(D2, i, "y" * 100) for i in range(20000)] + [entry(D3, 1)]
    path = write(tmp_path / "redis.log", lines)
    assert sliced(path, D2, tmp_path) == b"".join(lines[1:-1])


def test_other_copy_errors_propagate(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, "full")

    monkeypatch.setattr(os, "copy_file_range", fail)
    path = write(tmp_path / "redis.log", [entry(D1, 1)])
    with pytest.raises(OSError) as info:
        with open(tmp_path / "out", "wb") as out:
            write_day(path, D1, out.fileno())
    assert info.value.errno == errno.ENOSPC


# --- cost --------------------------------------------------------------------

class CountingSource(FileSource):
    reads = 0
    bytes = 0

    def pread(self, offset, n):
        data = super().pread(offset, n)
        self.reads += 1
        self.bytes += len(data)
        return data


def test_search_reads_are_logarithmic(tmp_path):
    block = b"".join(entry(D1, i, f"DB saved on disk, {i} changes") for i in range(2000))
    days = [D1 + timedelta(days=i) for i in range(10)]
    path = tmp_path / "redis.log"
    with open(path, "wb") as f:
        for d in days:
            chunk = block.replace(b" 24 Nov 2026 ", f" {d.day:02d} {MONTHS[d.month - 1]} {d.year} ".encode())
            for _ in range(50):  # ~10 MiB per day, 100 MiB in all
                f.write(chunk)
    size = path.stat().st_size
    with open(path, "rb") as f:
        for d in days:
            src = CountingSource(f.fileno(), size)
            start, end = day_bounds(src, d)
            assert (end - start) * 10 == size
            assert src.reads <= 4 * 27 and src.bytes <= 4 * 27 * search.BLOCK


# --- randomized, against the reference ----------------------------------------

def random_log(rng, days, tz=None, styles=None):
    """Entries of ``days`` with crash reports, logos and long lines between them; in the
    legacy format, or (``styles``) each entry in one of those (log-format, timestamp) styles."""
    lines = []
    if rng.random() < 0.3:
        lines += rng.choice([LOGO, CRASH, [b"\n"]])
    for d in days:
        for _ in range(rng.choice([0, 1, 2, 5, 30])):
            message, pid = "m" * rng.randrange(0, 300), rng.randrange(1, 10 ** 7)
            if styles:
                lines.append(write_entry(at(d, rng.randrange(86400), tz), message, style=rng.choice(styles), tz=tz,
                                         pid=pid, role=rng.choice(["master", "slave", "child", "sentinel"]),
                                         level=rng.choice(["debug", "verbose", "notice", "warning"])))
            else:
                lines.append(entry(d, rng.randrange(86400), message, pid=pid, role=rng.choice("MSCX"),
                                   level=rng.choice(".-*#")))
            r = rng.random()
            if r < 0.1:
                lines += CRASH * rng.randrange(1, 4)
            elif r < 0.15:
                lines += LOGO
            elif r < 0.2:
                lines.append(b"x" * rng.randrange(5000, 20000) + b"\n")  # longer than a probe block
    if lines and rng.random() < 0.3:
        lines[-1] = lines[-1].rstrip(b"\n")
    return lines


TIME_ZONES = [None, ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")]


@pytest.mark.parametrize("block", [search.BLOCK, 65, 300])
@pytest.mark.parametrize("seed", range(25))
def test_random_logs_match_reference(tmp_path, monkeypatch, seed, block):
    check_random_logs(tmp_path, monkeypatch, seed, block)


@pytest.mark.parametrize("block", [search.BLOCK, 300])
@pytest.mark.parametrize("seed", range(25))
def test_random_logs_of_every_format_and_zone_match_reference(tmp_path, monkeypatch, seed, block):
    """Valkey 8.1's formats, several in one file (CONFIG SET log-format at run time), in an
    instance time zone where the zoned timestamps' days differ from their UTC days."""
    rng = random.Random(seed)
    styles = rng.choice([STYLES, rng.sample(STYLES, 2), [rng.choice(STYLES)]])
    check_random_logs(tmp_path, monkeypatch, seed, block, TIME_ZONES[seed % len(TIME_ZONES)] or UTC,
                      styles)


def check_random_logs(tmp_path, monkeypatch, seed, block, tz=None, styles=None):
    monkeypatch.setattr(search, "BLOCK", block)
    monkeypatch.setattr(slicer, "_CHUNK", random.Random(seed).choice([70, 1000, 1 << 20]))
    rng = random.Random(seed * 1000 + block)
    all_days = [D1 + timedelta(days=i) for i in range(8)]
    cut = sorted(rng.sample(range(len(all_days) + 1), rng.randrange(0, 3)))
    groups, prev = [], 0
    for c in cut + [len(all_days)]:
        days = [d for d in all_days[prev:c] if rng.random() < 0.7]
        if groups and groups[-1] and rng.random() < 0.5:
            days.insert(0, groups[-1][-1])  # a day continuing in the next file
        groups.append(days)
        prev = c
    paths = []
    n = len(groups)
    for i, days in enumerate(groups):
        name = "redis.log" if i == n - 1 else f"redis.log.{n - 1 - i}" + (".gz" if rng.random() < 0.5 else "")
        paths.append(write(tmp_path / name, random_log(rng, days, tz, styles), gz=name.endswith(".gz")))
    logfile = str(tmp_path / "redis.log")
    if not any(reference_day(paths, day, tz or UTC) for day in all_days):
        return  # no entry at all: an UnknownLogFormat (tested above), or nothing
    for day in [D1 - timedelta(days=1)] + all_days + [all_days[-1] + timedelta(days=1)]:
        assert sliced(logfile, day, tmp_path, tz) == reference(paths, day, tz or UTC), day
    plain = paths[-1]
    for day in all_days:
        s, e = day_range(plain, day, tz)
        assert read_all(plain)[s:e] == reference([plain], day, tz or UTC), day


def test_a_source_that_shrinks_while_read_raises_instead_of_writing_a_short_day(tmp_path):
    # copytruncate: the file we are reading is truncated under us.
    from dcslog.runlog.slicer import SourceChanged, _copy_range

    log = tmp_path / "redis.log"
    log.write_bytes(b"x" * 100_000)
    out = tmp_path / "out"
    with open(log, "rb") as src, open(out, "wb") as dst:
        os.truncate(log, 10)
        with pytest.raises(SourceChanged):
            _copy_range(src.fileno(), dst.fileno(), 0, 100_000)


def test_iter_day_raises_when_the_source_shrinks_mid_stream(tmp_path):
    from dcslog.runlog.slicer import SourceChanged, iter_day

    day = date(2026, 11, 20)
    lines = b"".join(f"1:M 20 Nov 2026 10:{i // 60:02d}:{i % 60:02d}.000 * line {i}\n".encode() for i in range(2000))
    log = tmp_path / "redis.log"
    log.write_bytes(lines)
    chunks = iter_day(str(log), day, chunk_size=4096)
    assert next(chunks) == lines[:4096]
    os.truncate(log, 5000)
    with pytest.raises(SourceChanged):
        list(chunks)


def copytruncate_window(tmp_path, copied: int | None = None, one_day: bool = False):
    """redis.log.2.gz (older), redis.log.1 a copy of redis.log's first ``copied`` bytes (all of
    them when None: logrotate has copied and not yet truncated), and redis.log, to which
    Redis went on appending meanwhile. ``one_day``: everything in redis.log is D2 (a rotation
    by size during the day). Returns (logfile, older)."""
    older = write(tmp_path / "redis.log.2.gz", [entry(D1, s) for s in range(0, 3000, 7)], gz=True)
    if one_day:
        current_lines = [entry(D2, 10), *LOGO, *[entry(D2, s) for s in range(20, 4000, 3)]]
        appended = [entry(D2, s) for s in range(5000, 5600, 5)]
    else:
        current_lines = [entry(D1, 80000), *CRASH, entry(D2, 10), *LOGO, *[entry(D2, s) for s in range(20, 4000, 3)]]
        appended = [entry(D3, s) for s in range(0, 600, 5)]
    current = write(tmp_path / "redis.log", current_lines)
    head = read_all(current)
    (tmp_path / "redis.log.1").write_bytes(head if copied is None else head[:copied])
    with open(current, "ab") as f:  # Redis writes on between the copy and the truncate
        f.write(b"".join(appended))
    return current, older


WINDOWS = {"copied": (None, False), "copying-1B": (1, False), "copying-5KB": (5000, False),
           "copying-70KB": (70_000, False), "one day, copied": (None, True), "one day, copying": (30_000, True)}


@pytest.mark.parametrize("copied, one_day", WINDOWS.values(), ids=WINDOWS.keys())
def test_copytruncate_window_the_day_is_not_sliced_twice(tmp_path, copied, one_day):
    logfile, older = copytruncate_window(tmp_path, copied, one_day)
    assert read_all(tmp_path / "redis.log.1")  # the copy is there, and its bytes are also in redis.log
    for day in (D1, D2, D3):
        assert sliced(logfile, day, tmp_path) == reference([older, logfile], day), day
        assert b"".join(iter_day(logfile, day, chunk_size=997)) == reference([older, logfile], day), day


def test_after_the_truncate_both_files_are_read(tmp_path):
    logfile, older = copytruncate_window(tmp_path)
    rotated = str(tmp_path / "redis.log.1")
    os.truncate(logfile, 0)  # logrotate's truncate; then Redis writes on
    write(logfile, [entry(D3, s) for s in range(1000, 1600, 5)])
    for day in (D1, D2, D3):
        assert sliced(logfile, day, tmp_path) == reference([older, rotated, logfile], day), day
    assert sliced(logfile, D2, tmp_path)  # D2 is only in redis.log.1 now


def test_a_rotated_file_that_merely_starts_like_the_log_is_read(tmp_path):
    """Same first 64 KiB, different afterwards: not a copy of the log's head, so both count."""
    head = b"".join(entry(D1, s) for s in range(0, 2000))
    assert len(head) > 64 * 1024
    rotated = write(tmp_path / "redis.log.1", [head, entry(D1, 70000, msg="only in the rotated file")])
    logfile = write(tmp_path / "redis.log", [head, entry(D2, 5, msg="only in the log")])
    assert sliced(logfile, D1, tmp_path) == reference([rotated, logfile], D1)
    assert b"only in the rotated file" in sliced(logfile, D1, tmp_path)
