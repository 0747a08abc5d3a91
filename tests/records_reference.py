"""An independent, brute-force reading of run logs as records (SPEC section 6), for tests.

Written from the formats' documentation and the spec, not from dcslog's code: nothing here
imports ``dcslog.runlog``. Entry prefixes are recognised by ``tests.runlog_reference.parse``
(regular expressions); everything else is plain list work over whole files in memory, so it
is slow and obviously right rather than fast.

* ``reference_records``: every entry of a set of sources (rotated files oldest first, or bytes)
  as a record dict.
* ``filter_records``, ``merge_nodes``: what a records query should answer.
* ``write_multiday_log``, ``rotate_files``: synthetic logs to compare dcslog against this with.
"""

from __future__ import annotations

import gzip
import os
import random
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from tests.runlog_reference import LEGACY, LOGFMT, at, parse, read_all, write_entry

LEVELS = ["debug", "verbose", "notice", "warning"]
ROLES = ["master", "slave", "child", "sentinel"]
RECORD_KEYS = {"time_ms", "seq", "pid", "role", "level", "format", "message", "lines", "raw"}


# --- reading -------------------------------------------------------------------


def _source_bytes(source) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    return read_all(source)  # a path; gzip-compressed files are recognised by their magic bytes


def _lines(data: bytes) -> list[bytes]:
    """``data`` cut after every b"\\n" (each piece keeps its b"\\n"; a last piece without one is a
    line too). Not ``bytes.splitlines``: that also cuts at a lone b"\\r", which a log writer
    does not treat as the end of a line."""
    pieces = data.split(b"\n")
    lines = [piece + b"\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def _text(line: bytes) -> str:
    """A line without its b"\\n" and one trailing b"\\r" (CRLF), decoded."""
    return line.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8", errors="replace")


def _message(first_line: bytes) -> str:
    """The message of an entry's first line (which matches LEGACY or LOGFMT)."""
    m = LEGACY.match(first_line) or LOGFMT.match(first_line)
    assert m is not None
    # Both prefixes end in " ", a line end or the end of the data: what follows the match is the
    # rest of the line after "LEVEL " (legacy) or after "level=X " (logfmt), possibly empty.
    rest = first_line[m.end():].removesuffix(b"\n").removesuffix(b"\r")
    if m.re is LOGFMT and rest.startswith(b'message="'):
        inner = rest[len(b'message="'):]
        # Valkey writes no escapes (it turns '"' into "'"), so the message runs to the last '"'
        # of the line. An unclosed quote (a cut line): everything after message=" is the message.
        rest = inner[:-1] if inner.endswith(b'"') else inner
    return rest.decode("utf-8", errors="replace")


def reference_records(paths_or_bytes, tz: tzinfo | str) -> list[dict]:
    """Every entry of the concatenation of the sources (paths, oldest first, gzip allowed, or
    bytes objects), as records {time_ms, seq, pid, role, level, format, message, lines, raw}.

    An entry is a line with a run-log prefix plus the lines without one that follow it; lines
    before the first entry are dropped. Legacy naive timestamps are read in ``tz`` (an ambiguous
    wall-clock time, in the hour a DST change repeats, is taken as its first occurrence)."""
    if isinstance(tz, str):
        tz = ZoneInfo(tz)
    if isinstance(paths_or_bytes, bytes | bytearray | memoryview | str | os.PathLike):
        paths_or_bytes = [paths_or_bytes]
    # The sources are concatenated as they are: a source that does not end in b"\n" has its last
    # line continued by the next source's first line (rotation never does that; tests might).
    data = b"".join(_source_bytes(s) for s in paths_or_bytes)

    # Group lines into entries: [first line, [continuation lines], parse() of the first line].
    entries: list[tuple[bytes, list[bytes], dict]] = []
    for line in _lines(data):
        head = parse(line, tz)  # None: no prefix, or one with an impossible date (31 Feb)
        if head is not None:
            entries.append((line, [], head))
        elif entries:
            entries[-1][1].append(line)
        # else: before the very first entry, dropped

    records = []
    for i, (first, rest, head) in enumerate(entries):
        # seq: position in the run of consecutive entries that share this millisecond.
        same_as_previous = i > 0 and records[-1]["time_ms"] == head["time_ms"]
        records.append({
            "time_ms": head["time_ms"],
            "seq": records[-1]["seq"] + 1 if same_as_previous else 0,
            "pid": head["pid"],
            "role": head["role"],
            "level": head["level"],
            "format": head["format"],
            "message": _message(first),
            "lines": [_text(line) for line in rest],
            "raw": first + b"".join(rest),
        })
    return records


# --- what a query answers ------------------------------------------------------------


def _contains(text: str, keyword: str, insensitive: bool) -> bool:
    if insensitive:
        # ASCII-only case folding: A-Z and a-z match, "Ä" and "ä" do not.
        return keyword.encode().lower() in text.encode().lower()
    return keyword in text


def filter_records(records: Iterable[dict], *, start_ms: int, end_ms: int, keyword: str | None = None,
                   insensitive: bool = False, min_level: str | None = None, role: str | None = None) -> list[dict]:
    """The records with start_ms <= time_ms < end_ms, ``keyword`` in the message or in one of the
    continuation lines (never in the prefix), level >= ``min_level``, role == ``role``."""
    out = []
    for r in records:
        if not start_ms <= r["time_ms"] < end_ms:
            continue
        if keyword is not None and not any(_contains(t, keyword, insensitive) for t in [r["message"], *r["lines"]]):
            continue
        if min_level is not None and LEVELS.index(r["level"]) < LEVELS.index(min_level):
            continue
        if role is not None and r["role"] != role:
            continue
        out.append(r)
    return out


def merge_nodes(per_node: dict[str, list[dict]]) -> list[tuple[str, dict]]:
    """(replication_id, record) of every node, sorted by (time_ms, replication_id, seq); the
    position in the node's log breaks any remaining tie (equal time_ms, not contiguous: a log
    whose time goes back, e.g. legacy timestamps in the hour a DST change repeats)."""
    keyed = [((r["time_ms"], node, r["seq"], i), node, r)
             for node, records in per_node.items() for i, r in enumerate(records)]
    keyed.sort(key=lambda k: k[0])
    return [(node, r) for _, node, r in keyed]


# --- writing test data ----------------------------------------------------------------

#: Record format (and logfmt with each timestamp format) -> (log-format, log-timestamp-format).
FORMAT_STYLES = {
    "legacy": ("legacy", "legacy"),
    "legacy-ms": ("legacy", "milliseconds"),
    "legacy-iso8601": ("legacy", "iso8601"),
    "logfmt": ("logfmt", "legacy"),  # Valkey's default log-timestamp-format
    "logfmt-ms": ("logfmt", "milliseconds"),
    "logfmt-iso8601": ("logfmt", "iso8601"),
}

VOCABULARY = [
    "DB saved on disk",
    "Background saving started by pid {pid}",
    "Background saving terminated with success",
    "100 changes in 300 seconds. Saving...",
    "Connection with replica 10.0.0.{n}:6379 lost.",
    "MASTER <-> REPLICA sync started",
    "Synchronization with replica 10.0.0.{n}:6379 succeeded",
    "Accepted 10.0.0.{n}:{port}",
    'CONFIG SET "maxmemory-policy" by client 10.0.0.{n}',  # '"' becomes "'" in logfmt
    "Ready to accept connections tcp",
    "WARNING Memory overcommit must be enabled!",
    "Résumé: ÄRGER mit der Straße",  # non-ASCII: case-insensitive search folds ASCII only
    "",
    "   indented message",
]

CRASH_REPORT = [
    "",
    "=== REDIS BUG REPORT START: Cut & paste starting from here ===",
    "------ STACK TRACE ------",
    "EIP:",
    "/usr/bin/redis-server *:6379(debugCommand+0x1d2)[0x55d0c1a2b3c4]",
    "",
    "Backtrace:",
    "/usr/bin/redis-server *:6379(logStackTrace+0x2e)[0x55d0c19f0a1e]",
    "------ INFO OUTPUT ------",
    "# Server",
    "redis_version:7.2.4",
    "",
    "=== REDIS BUG REPORT END. Make sure to include from START to END. ===",
]

LOGO = [
    "                _._",
    "           _.-``__ ''-._",
    "      _.-``    `.  `_.  ''-._           Redis 7.2.4 (00000000/0) 64 bit",
    "  .-`` .-```.  ```\\/    _.,_ ''-._",
]


def _needle(rng: random.Random, n: int) -> str:
    # Mostly upper case, sometimes not: case-insensitive searches find more than sensitive ones.
    return rng.choice(["NEEDLE", "NEEDLE", "NEEDLE", "needle", "Needle"]) + f"-{n}"


def write_multiday_log(path, *, days: list[date], tz: tzinfo, entries_per_day: int, seed: int,
                       formats=("legacy",), crash_every: int = 0, same_ms_bursts: bool = True,
                       preamble: bool = False, final_newline: bool = True) -> None:
    """A synthetic run log of ``entries_per_day`` entries on each of ``days`` (in ``tz``), in time
    order (instants; legacy stamps are wall-clock, so they go back in a repeated DST hour).

    Random pids, roles and levels; messages from VOCABULARY with a rare "NEEDLE-<n>" (about one
    entry in 150, also in some crash reports); after every ``crash_every``-th entry a crash report
    as continuation lines (blank lines, lines ending in CRLF, a lone CR inside a line), followed
    by a restart (new pid, startup logo); bursts of 2-6 entries in one millisecond. ``formats``:
    names of FORMAT_STYLES or (log-format, log-timestamp-format) pairs, used in runs of 1-40
    entries in turn (CONFIG SET changing the format mid-file). ``preamble``: lines before the
    first entry; ``final_newline=False``: the last line has no b"\\n"."""
    rng = random.Random(seed)
    styles = [FORMAT_STYLES[f] if isinstance(f, str) else tuple(f) for f in formats]
    style_index, run_left = 0, rng.randint(1, 40)
    pid = rng.randrange(1, 4_000_000)
    needles = 0
    count = 0
    out: list[bytes] = []
    if preamble:
        out += [line.encode() + b"\n" for line in LOGO]

    def epoch_ms(moment: datetime) -> int:
        return round(moment.timestamp() * 1000)

    def moment_of(ms: int) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)  # exact, unlike a float

    for day in sorted(days):
        # The day's instants: from its midnight to the next one, in tz (23 or 25 h on DST days).
        start, end = epoch_ms(at(day, 0, tz)), epoch_ms(at(day + timedelta(days=1), 0, tz))
        sizes = []  # entries per distinct millisecond
        while sum(sizes) < entries_per_day:
            burst = rng.randint(2, 6) if same_ms_bursts and rng.random() < 0.05 else 1
            sizes.append(min(burst, entries_per_day - sum(sizes)))
        slots = sorted(rng.sample(range(start, end), len(sizes)))
        for ms, size in zip(slots, sizes, strict=True):
            for _ in range(size):
                count += 1
                if run_left == 0:
                    style_index, run_left = (style_index + 1) % len(styles), rng.randint(1, 40)
                run_left -= 1
                role = rng.choices(ROLES, weights=[6, 3, 2, 1])[0]
                level = rng.choices(LEVELS, weights=[1, 2, 8, 2])[0]
                message = rng.choice(VOCABULARY).format(pid=rng.randrange(1, 4_000_000), n=rng.randrange(256),
                                                        port=rng.randrange(1024, 65536))
                if rng.random() < 1 / 150:
                    needles += 1
                    message = f"{message} {_needle(rng, needles)}".strip()
                entry_pid = pid if role != "child" else rng.randrange(1, 4_000_000)
                out.append(write_entry(moment_of(ms), message, style=styles[style_index], tz=tz, pid=entry_pid,
                                       role=role, level=level))
                if crash_every > 0 and count % crash_every == 0:
                    report = [line.encode() + b"\n" for line in CRASH_REPORT]
                    report[3] = b"EIP:\r\n"  # a CRLF line
                    report[10] = b"redis_version:7.2.4\rprogress 50%\r\n"  # a lone CR is not a line end
                    if rng.random() < 0.3:
                        needles += 1
                        report[5] = f"crash context {_needle(rng, needles)}\n".encode()
                    out += report
                    pid = rng.randrange(1, 4_000_000)  # the restart after the crash
                    out += [line.encode() + b"\n" for line in LOGO[:rng.randint(0, len(LOGO))]]
    if out and not final_newline:
        out[-1] = out[-1].removesuffix(b"\n")
    with open(path, "wb") as f:
        f.write(b"".join(out))


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def rotate_files(path, n_rotations: int, gz_oldest: bool = True, *, seed: int = 0) -> list[str]:
    """Split the log at ``path`` into ``path.N`` … ``path.1`` (bigger N older; the oldest written
    as ``path.N.gz``, gzip-compressed, when ``gz_oldest``) and the current ``path``; returns the
    paths oldest first. Cuts fall only after a b"\\n"; on purpose the first one falls inside an
    entry's continuation lines and the second between two entries of the same millisecond,
    when the log has such places. With fewer line ends than cuts, some files are empty."""
    path = os.fspath(path)
    data = read_all(path)
    lines = _lines(data)
    offsets = []  # offsets[i]: where line i starts
    pos = 0
    for line in lines:
        offsets.append(pos)
        pos += len(line)
    # Read in UTC: only used to pick the "same millisecond" cut, where the zone hardly matters.
    heads = [parse(line, UTC) for line in lines]

    # Candidate cuts: before line i (i >= 1), when line i-1 ends in b"\n".
    candidates = [i for i in range(1, len(lines)) if lines[i - 1].endswith(b"\n")]
    in_continuation, in_burst = [], []
    last_head = None  # parse() of the entry that line i-1 belongs to
    for i in range(1, len(lines)):
        if heads[i - 1] is not None:
            last_head = heads[i - 1]
        if last_head is not None and heads[i] is None and heads[i - 1] is None:
            in_continuation.append(i)  # between two continuation lines of one entry
        if last_head is not None and heads[i] is not None and heads[i]["time_ms"] == last_head["time_ms"]:
            in_burst.append(i)  # between two entries of one millisecond
    rng = random.Random(seed)
    cuts: list[int] = []
    for special in (in_continuation, in_burst):
        if special and len(cuts) < n_rotations:
            cuts.append(rng.choice(special))
    others = [i for i in candidates if i not in cuts]
    cuts += rng.sample(others, min(len(others), n_rotations - len(cuts)))
    cuts += [len(lines)] * (n_rotations - len(cuts))  # not enough line ends: empty files at the end
    bounds = [0] + sorted(offsets[i] if i < len(lines) else len(data) for i in cuts) + [len(data)]
    pieces = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]

    paths = []
    for k, piece in enumerate(pieces):
        n = n_rotations - k  # pieces[0] is the oldest: path.N
        if n == 0:
            name, content = path, piece
        elif n == n_rotations and gz_oldest:
            name, content = f"{path}.{n}.gz", _gzip(piece)
        else:
            name, content = f"{path}.{n}", piece
        with open(name, "wb") as f:
            f.write(content)
        paths.append(name)
    return paths


# --- self-test: python -m tests.records_reference -----------------------------------------------


def _self_test() -> None:
    import shutil
    import tempfile

    # Hand-written lines first: the message and line rules one by one.
    d = date(2026, 11, 26)
    legacy = write_entry(at(d, 3600.123, UTC), "hello  world", tz=UTC)
    crlf = write_entry(at(d, 3600.123, UTC), "with CRLF", tz=UTC, level="warning").replace(b"\n", b"\r\n")
    logfmt = write_entry(at(d, 3601, UTC), 'say "hi"', style=("logfmt", "iso8601"), tz=UTC, role="slave")
    raw = (b"preamble, dropped\n" + legacy + b"  cont\r\n\n" + crlf + b"a\rb\n"
           + logfmt + b'pid=7 role=primary timestamp="1795654800000" level=info no message field\n'
           + b'pid=8 role=replica timestamp="1795654800000" level=debug message="a "b" c"\n'
           + b"9:C 31 Feb 2026 10:00:00.000 * an impossible date: a continuation line\n"
           + b"10:X 1795654800000 #\n"
           + b"last line without newline\r")
    recs = reference_records(raw, UTC)
    assert [set(r) for r in recs] == [RECORD_KEYS] * len(recs)
    assert [(r["message"], r["lines"]) for r in recs] == [
        ("hello  world", ["  cont", ""]),
        ("with CRLF", ["a\rb"]),
        ("say 'hi'", []),
        ("no message field", []),
        ('a "b" c', ["9:C 31 Feb 2026 10:00:00.000 * an impossible date: a continuation line"]),
        ("", ["last line without newline"]),
    ], recs
    assert [r["seq"] for r in recs] == [0, 1, 0, 0, 1, 2]
    assert [r["format"] for r in recs] == ["legacy", "legacy", "logfmt", "logfmt", "logfmt", "legacy-ms"]
    assert [r["role"] for r in recs] == ["master", "master", "slave", "master", "slave", "sentinel"]
    assert [r["level"] for r in recs] == ["notice", "warning", "notice", "verbose", "debug", "warning"]
    assert b"".join(r["raw"] for r in recs) == raw[len(b"preamble, dropped\n"):]
    assert recs[0]["time_ms"] == round(at(d, 3600.123, UTC).timestamp() * 1000)

    # A generated log, rotated: the same records as the whole file.
    tmp = tempfile.mkdtemp()
    try:
        for tz, formats, seed in [(ZoneInfo("America/New_York"), ("legacy",), 1),
                                  (ZoneInfo("Asia/Kolkata"), ("legacy", "legacy-ms", "logfmt-iso8601", "logfmt"), 2),
                                  (UTC, list(FORMAT_STYLES), 3)]:
            days = [date(2026, 10, 31) + timedelta(days=i) for i in range(3)]  # 1 Nov: DST ends in New York
            path = os.path.join(tmp, f"redis-{seed}.log")
            write_multiday_log(path, days=days, tz=tz, entries_per_day=2000, seed=seed, formats=formats,
                               crash_every=97, preamble=seed == 2, final_newline=seed != 3)
            whole = reference_records([path], tz)
            assert len(whole) == 3 * 2000
            assert max(r["seq"] for r in whole) >= 1 and any(r["lines"] for r in whole)
            assert {r["format"] for r in whole} == {f.split("-")[0] if f.startswith("logfmt") else f
                                                    for f in formats}
            copy = path + ".orig"
            shutil.copyfile(path, copy)
            rotated = rotate_files(path, 4, seed=seed)
            assert rotated[0].endswith(".4.gz") and rotated[-1] == path
            assert reference_records(rotated, tz) == whole == reference_records([copy], tz)
            start, end = whole[0]["time_ms"], whole[-1]["time_ms"] + 1
            hits = filter_records(whole, start_ms=start, end_ms=end, keyword="NEEDLE")
            hits_i = filter_records(whole, start_ms=start, end_ms=end, keyword="needle", insensitive=True)
            assert 0 < len(hits) < len(hits_i) < len(whole) // 20
            assert not filter_records(whole, start_ms=start, end_ms=end, keyword="ärger", insensitive=True)
            assert filter_records(whole, start_ms=start, end_ms=end, keyword="ÄRGER", insensitive=True)
            warnings = filter_records(whole, start_ms=start, end_ms=end, min_level="warning", role="slave")
            assert warnings and all(r["level"] == "warning" and r["role"] == "slave" for r in warnings)
            merged = merge_nodes({"b": whole[:50], "a": whole[:50]})
            assert [node for node, _ in merged[:2]] == ["a", "b"] and len(merged) == 100
    finally:
        shutil.rmtree(tmp)
    print("records_reference: self-test passed")


if __name__ == "__main__":
    _self_test()


# --- what the API answers ------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RECORD_FIELDS = {"id", "time", "time_ms", "replication_id", "replication_ip", "replication_port", "group_name",
                 "role", "pid", "level", "message", "lines", "format"}


def iso(ms: int, tz: tzinfo) -> str:
    """``ms`` as ISO 8601 in ``tz``, milliseconds, with the zone's UTC offset as +HH:MM."""
    local = (EPOCH + timedelta(milliseconds=ms)).astimezone(tz)
    offset = local.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{local:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}{sign}{hours:02d}:{mins:02d}"


def api_record(ref: dict, rid: str, node: dict, tz: tzinfo) -> dict:
    """What the API should answer for the reference record ``ref`` of node ``rid`` (``node``: its
    replication_ip, replication_port and group_name)."""
    return {"id": f"{ref['time_ms']}_{ref['seq']}_{rid}", "time": iso(ref["time_ms"], tz), "time_ms": ref["time_ms"],
            "replication_id": rid, "replication_ip": node["replication_ip"],
            "replication_port": node["replication_port"], "group_name": node["group_name"], "role": ref["role"],
            "pid": ref["pid"], "level": ref["level"], "message": ref["message"], "lines": ref["lines"],
            "format": ref["format"]}
