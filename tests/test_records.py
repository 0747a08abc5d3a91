"""Run logs as records (SPEC §6): the records endpoints, the merge of nodes, cursors, collected days
and the byte budget, against real redis-server / valkey-server processes, `dcslog agent` and the
official SDK.

Every expected answer is computed by tests/records_reference.py (a brute-force reading written
without dcslog's code) over the very files the nodes' hosts hold, never copied from dcslog's output.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from huaweicloudsdkdcs.v2 import CreateRedislogRequest

import dcslog.runlog.records as scan_module
from dcslog.db.models import Replication
from dcslog.runlog.grammar import Clock
from dcslog.runlog.records import Checkpoint, Filters, Record, Scan, host_segments, scan_node
from dcslog.services import records as service
from dcslog.services.records import NodePlan, RecordQuery, parse_cursor, read_page
from tests.records_reference import (
    FORMAT_STYLES,
    RECORD_FIELDS,
    api_record,
    filter_records,
    merge_nodes,
    reference_records,
    rotate_files,
    write_multiday_log,
)
from tests.runlog_reference import parse, read_all, write_entry
from tests.test_agent import KEY, running_agent
from tests.test_redislog import download, wait_settled
from tests.test_valkey_formats import TZ as VALKEY_TZ
from tests.test_valkey_formats import import_valkey, valkey_node

NDJSON = "application/x-ndjson"
LEVELS = ["debug", "verbose", "notice", "warning"]
ROLES = ["master", "slave", "child", "sentinel"]


# --- expected answers (from the reference) -------------------------------------------------------


def expected(refs: dict[str, list[dict]], nodes: dict[str, dict], tz: tzinfo, *, start: int, end: int,
             keyword: str | None = None, insensitive: bool = False, level: str | None = None,
             role: str | None = None, only: list[str] | None = None, desc: bool = False) -> list[dict]:
    """The reference answer of a records query over the nodes ``refs`` (replication id -> records)."""
    per_node = {rid: filter_records(records, start_ms=start, end_ms=end, keyword=keyword, insensitive=insensitive,
                                    min_level=None if level == "debug" else level, role=role)
                for rid, records in refs.items() if only is None or rid in only}
    out = [api_record(r, rid, nodes[rid], tz) for rid, r in merge_nodes(per_node)]
    return out[::-1] if desc else out


def window(refs: dict[str, list[dict]]) -> tuple[int, int]:
    """[first time, last time + 1) of every record of ``refs``."""
    times = [r["time_ms"] for records in refs.values() for r in records]
    return min(times), max(times) + 1


def split_lines(data: bytes) -> list[bytes]:
    pieces = data.split(b"\n")
    lines = [p + b"\n" for p in pieces[:-1]]
    return lines + ([pieces[-1]] if pieces[-1] else [])


def node_info(imported: dict) -> tuple[dict[str, dict], dict[str, str]]:
    """({replication id: its replication_ip/port/group_name}, {host:port: replication id}) of an import."""
    nodes, by_address = {}, {}
    for group in imported["group_list"]:
        for rep in group["replication_list"]:
            nodes[rep["replication_id"]] = {"replication_ip": rep["replication_ip"],
                                            "replication_port": rep["replication_port"],
                                            "group_name": group["group_name"]}
            by_address[f"{rep['replication_ip']}:{rep['replication_port']}"] = rep["replication_id"]
    return nodes, by_address


# --- the API, as a viewer ---------------------------------------------------------------------------


class Api:
    """The records endpoints of one instance, with a viewer's token (a viewer may read records)."""

    def __init__(self, server, instance_id: str, project: str = "proj-a", role: str = "viewer"):
        self.token = server.cli("token", "create", "--project-id", project, "--role", role)["token"]
        self.base = f"{server.url}/v2/{project}/instances/{instance_id}/redislog"
        self.client = httpx.Client(timeout=60)

    def get(self, params: dict, path: str = "records", accept: str | None = None) -> httpx.Response:
        headers = {"X-Auth-Token": self.token}
        if accept:
            headers["Accept"] = accept
        return self.client.get(f"{self.base}/{path}", params={k: v for k, v in params.items() if v is not None},
                               headers=headers)

    def page(self, path: str = "records", **params) -> dict:
        response = self.get(params, path)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) >= {"records", "next_cursor", "scanned_bytes", "sources"}
        assert isinstance(body["scanned_bytes"], int) and body["scanned_bytes"] >= 0
        return body

    def walk(self, limit: int, path: str = "records", **params) -> tuple[list[dict], dict]:
        """Every record of the query, page by page (``limit`` each), following next_cursor; and the last page."""
        got: list[dict] = []
        cursor, seen = None, set()
        for _ in range(100_000):
            body = self.page(path, limit=limit, cursor=cursor, **params)
            assert len(body["records"]) <= limit
            got += body["records"]
            cursor = body["next_cursor"]
            if cursor is None:
                return got, body
            assert cursor not in seen, f"cursor {cursor} came twice: no progress"
            seen.add(cursor)
        raise AssertionError("no end of pages")

    def export(self, path: str = "records", **params) -> tuple[list[dict], list[dict]]:
        """(every record as NDJSON, the X-Dcslog-Sources header)."""
        response = self.get(params, path, accept=NDJSON)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(NDJSON)
        sources = json.loads(response.headers["X-Dcslog-Sources"])
        return [json.loads(line) for line in response.text.splitlines() if line], sources

    def error(self, params: dict, path: str = "records") -> tuple[int, str, str]:
        response = self.get(params, path)
        body = response.json()
        assert set(body) == {"error_code", "error_msg", "error_ext_msg"}, body
        return response.status_code, body["error_code"], body["error_msg"]

    def close(self) -> None:
        self.client.close()


def check_record_shapes(records: list[dict]) -> None:
    for r in records:
        assert set(r) == RECORD_FIELDS, sorted(r)


def assert_same(got: list[dict], want: list[dict]) -> None:
    """Equal lists of records, with a readable first difference."""
    check_record_shapes(got)
    if got != want:
        got_ids, want_ids = [g["id"] for g in got], [w["id"] for w in want]
        missing = [i for i in want_ids if i not in set(got_ids)]
        extra = [i for i in got_ids if i not in set(want_ids)]
        repeated = sorted({i for i in got_ids if got_ids.count(i) > 1})
        first = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w), min(len(got), len(want)))
        detail = (got[first], want[first]) if first < min(len(got), len(want)) else None
        raise AssertionError(f"{len(got)} records, {len(want)} expected; missing {missing[:5]} (of {len(missing)}), "
                             f"extra {extra[:5]} (of {len(extra)}), repeated {repeated[:5]}; "
                             f"first difference at {first}: {detail}")


# --- 1. primary + replicas, multi-day rotated logs ----------------------------------------------------


KOLKATA = ZoneInfo("Asia/Kolkata")  # +05:30: a time shown with the wrong offset shows


def write_node_log(path: Path, *, days: list[date], tz: tzinfo, seed: int, rotations: int, formats,
                   entries_per_day: int = 250, crash_every: int = 31, preamble: bool = False) -> list[str]:
    """A synthetic multi-day log at ``path``, rotated ``rotations`` times (oldest .gz); its files oldest first."""
    write_multiday_log(path, days=days, tz=tz, entries_per_day=entries_per_day, seed=seed, formats=formats,
                       crash_every=crash_every, preamble=preamble)
    if rotations == 0:
        return [str(path)]
    return rotate_files(path, rotations, seed=seed)


def test_replicated_instance_records_equal_the_reference(dcslog_server, redis_replicated, tmp_path):
    today = datetime.now(KOLKATA).date()
    days = [today - timedelta(days=2), today - timedelta(days=1), today]
    setups = [  # (node, seed, rotations, formats)
        (redis_replicated.primary, 11, 3, ("legacy", "logfmt")),
        (redis_replicated.replicas[0], 12, 2, ("legacy-ms", "logfmt-iso8601", "legacy")),
        (redis_replicated.replicas[1], 13, 0, ("legacy",)),
    ]
    files, log_args = {}, []
    for node, seed, rotations, formats in setups:
        log_dir = tmp_path / f"logs-{node.host}"
        log_dir.mkdir()
        files[node.address] = write_node_log(log_dir / "redis.log", days=days, tz=KOLKATA, seed=seed,
                                             rotations=rotations, formats=formats, preamble=seed == 13)
        log_args += ["--log-file", f"{node.address}={log_dir / 'redis.log'}"]
    assert files[redis_replicated.primary.address][0].endswith(".3.gz")
    imported = dcslog_server.import_instance(redis_replicated.primary.url, "proj-a", "replicated",
                                             "--timezone", "Asia/Kolkata", *log_args)
    nodes, by_address = node_info(imported)
    assert len(nodes) == 3
    refs = {by_address[address]: reference_records(paths, KOLKATA) for address, paths in files.items()}
    assert all(any(r["lines"] for r in recs) and max(r["seq"] for r in recs) >= 1 for recs in refs.values())
    api = Api(dcslog_server, imported["instance_id"])
    first, last = window(refs)
    # A window spanning the three days, cut inside the first and the last.
    start, end = first + 5 * 3_600_000 + 7, last - 4 * 3_600_000

    want = expected(refs, nodes, KOLKATA, start=start, end=end)
    assert len(want) > 1500
    assert want[0]["time"].endswith("+05:30")
    got, last_page = api.walk(97, start_time=start, end_time=end)
    assert_same(got, want)
    assert sorted(s["replication_id"] for s in last_page["sources"]) == sorted(nodes)
    assert all(s["read"] and s["error"] is None for s in last_page["sources"])
    got_desc, _ = api.walk(89, start_time=start, end_time=end, sort_dir="desc")
    assert_same(got_desc, want[::-1])

    # The whole log: NDJSON, every record, with the sources in a header.
    exported, sources = api.export(start_time=first, end_time=last)
    assert_same(exported, expected(refs, nodes, KOLKATA, start=first, end=last))
    assert {s["replication_id"] for s in sources} == set(nodes) and all(s["read"] for s in sources)
    exported_desc, _ = api.export(start_time=first, end_time=last, sort_dir="desc")
    assert exported_desc == exported[::-1]

    # Filters, each paged with a small limit in both directions.
    two = sorted(nodes)[:2]
    cases = [
        {"keyword": "NEEDLE"},
        {"keyword": "needle", "case": "insensitive"},
        {"keyword": "Needle"},
        {"keyword": "ÄRGER", "case": "insensitive"},
        {"keyword": "ärger", "case": "insensitive"},  # ASCII folding only: nothing
        {"keyword": "REDIS BUG REPORT"},
        {"keyword": "maxmemory-policy\""},  # '"' is in legacy messages, "'" in logfmt ones
        {"keyword": "level="},  # a logfmt prefix only: never in a message
        {"level": "warning"},
        {"level": "verbose", "role": "slave"},
        {"role": "sentinel", "keyword": "10.0.0."},
        {"replication_id": ",".join(two), "level": "warning"},
        {"replication_id": two[1], "keyword": "saved", "case": "insensitive"},
    ]
    for case in cases:
        want = expected(refs, nodes, KOLKATA, start=start, end=end, keyword=case.get("keyword"),
                        insensitive=case.get("case") == "insensitive", level=case.get("level"),
                        role=case.get("role"),
                        only=case["replication_id"].split(",") if "replication_id" in case else None)
        limit = 7 if len(want) < 200 else 61
        got, body = api.walk(limit, start_time=start, end_time=end, **case)
        assert_same(got, want)
        if "replication_id" in case:
            assert {s["replication_id"] for s in body["sources"]} == set(case["replication_id"].split(","))
        got_desc, _ = api.walk(limit, start_time=start, end_time=end, sort_dir="desc", **case)
        assert_same(got_desc, want[::-1])
        if "keyword" in case and case["keyword"] in ("level=", "ärger"):
            assert want == []
        elif "keyword" in case:
            assert want, case
    # Ids are cursors too: continuing after any record gives the rest.
    want = expected(refs, nodes, KOLKATA, start=start, end=end)
    for k in random.Random(5).sample(range(len(want) - 1), 8):
        body = api.page(start_time=start, end_time=end, limit=5, cursor=want[k]["id"])
        assert_same(body["records"], want[k + 1:k + 6])
        body = api.page(start_time=start, end_time=end, limit=5, cursor=want[k + 1]["id"], sort_dir="desc")
        assert_same(body["records"], want[max(0, k - 4):k + 1][::-1])
    api.close()


# --- 2. a 3-shard cluster, with same-millisecond ties across nodes -----------------------------------


def test_cluster_merge_and_page_boundaries_inside_ties(dcslog_server, redis_cluster, tmp_path):
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=1), today]
    # Nodes 0-2 share a seed: the same instants (every one a three-way tie across nodes), in
    # different formats. The others have their own.
    setups = [(21, ("legacy",)), (21, ("logfmt",)), (21, ("legacy-ms", "logfmt-iso8601")),
              (22, ("legacy", "logfmt-ms")), (23, ("legacy",)), (24, tuple(FORMAT_STYLES))]
    files, log_args = {}, []
    for node, (seed, formats) in zip(redis_cluster.nodes, setups, strict=True):
        log_dir = tmp_path / f"logs-{node.host}"
        log_dir.mkdir()
        files[node.address] = write_node_log(log_dir / "redis.log", days=days, tz=UTC, seed=seed, formats=formats,
                                             rotations=2 if seed != 23 else 0, entries_per_day=150, crash_every=23)
        log_args += ["--log-file", f"{node.address}={log_dir / 'redis.log'}"]
    imported = dcslog_server.import_instance(redis_cluster.url, "proj-a", "cluster", *log_args)
    nodes, by_address = node_info(imported)
    assert len(nodes) == 6 and len({n["group_name"] for n in nodes.values()}) == 3
    refs = {by_address[address]: reference_records(paths, UTC) for address, paths in files.items()}
    api = Api(dcslog_server, imported["instance_id"])
    start, end = window(refs)

    want = expected(refs, nodes, UTC, start=start, end=end)
    exported, sources = api.export(start_time=start, end_time=end)
    assert_same(exported, want)
    assert len(sources) == 6 and all(s["read"] for s in sources)
    got, _ = api.walk(41, start_time=start, end_time=end)
    assert_same(got, want)
    got, _ = api.walk(43, start_time=start, end_time=end, sort_dir="desc")
    assert_same(got, want[::-1])

    # Page boundaries inside ties: after record k, where k and k+1 share their millisecond.
    inside = [k for k in range(len(want) - 1) if want[k]["time_ms"] == want[k + 1]["time_ms"]]
    assert len(inside) > 100
    across_nodes = [k for k in inside if want[k]["replication_id"] != want[k + 1]["replication_id"]]
    within_node = [k for k in inside if want[k]["replication_id"] == want[k + 1]["replication_id"]]
    assert across_nodes and within_node  # a burst of one node tied with other nodes' entries
    rng = random.Random(7)
    desc = want[::-1]
    for k in rng.sample(across_nodes, 10) + rng.sample(within_node, min(6, len(within_node))):
        body = api.page(start_time=start, end_time=end, limit=3, cursor=want[k]["id"])
        assert_same(body["records"], want[k + 1:k + 4])
        j = len(want) - 1 - (k + 1)  # desc[j] is want[k + 1]: its successor in desc is want[k]
        body = api.page(start_time=start, end_time=end, limit=3, cursor=desc[j]["id"], sort_dir="desc")
        assert_same(body["records"], desc[j + 1:j + 4])
    # Walking one tie a record at a time, by next_cursor, loses and repeats nothing.
    groups: dict[int, int] = {}
    for r in want:
        groups[r["time_ms"]] = groups.get(r["time_ms"], 0) + 1
    biggest = sorted(groups, key=lambda t: -groups[t])[:4]
    assert groups[biggest[0]] >= 4
    for t in biggest:
        tie = [r for r in want if r["time_ms"] == t]
        for limit in (1, 2, 3):
            got, _ = api.walk(limit, start_time=t, end_time=t + 1)
            assert_same(got, tie)
            got, _ = api.walk(limit, start_time=t, end_time=t + 1, sort_dir="desc")
            assert_same(got, tie[::-1])
        # A window of several ms around the tie, with a limit that ends pages inside it.
        lo, hi = t - 50_000, t + 50_000
        around = expected(refs, nodes, UTC, start=lo, end=hi)
        pos = next(i for i, r in enumerate(around) if r["time_ms"] == t)
        got, _ = api.walk(pos + 1, start_time=lo, end_time=hi)
        assert_same(got, around)
    api.close()


# --- 3. collected days, then rotated away from the host ----------------------------------------------


KIRITIMATI = ZoneInfo("Pacific/Kiritimati")  # UTC+14: its days are not UTC's


def three_day_log(directory: Path, tz: tzinfo, seed: int) -> tuple[list[bytes], date]:
    """Lines of a synthetic log of today and the two days before (in ``tz``), and today."""
    today = datetime.now(tz).date()
    days = [today - timedelta(days=2), today - timedelta(days=1), today]
    whole = directory / "whole.log"
    write_multiday_log(whole, days=days, tz=tz, entries_per_day=250, seed=seed, crash_every=29,
                       formats=("legacy", "logfmt-ms", "legacy-iso8601"))
    return split_lines(whole.read_bytes()), today


def first_line_of(lines: list[bytes], day: date, tz: tzinfo) -> int:
    return next(i for i, line in enumerate(lines) if (head := parse(line, tz)) is not None and head["day"] == day)


def collect(server, instance_id: str, replication_id: str, query_time: int) -> list:
    client = server.sdk(role="operator")
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run", query_time=query_time,
                                                 replication_id=replication_id))
    files = wait_settled(client, instance_id)
    assert all(f.status == "succeed" for f in files), files
    return files


def test_collected_days_serve_what_the_host_rotated_away(dcslog_server, redis_standalone, tmp_path):
    lines, today = three_day_log(tmp_path, KIRITIMATI, 31)
    yesterday = today - timedelta(days=1)
    i1, i2 = first_line_of(lines, yesterday, KIRITIMATI), first_line_of(lines, today, KIRITIMATI)
    # Yesterday's last entry ends in continuation lines, and the rotation cuts between them.
    lines[i2:i2] = [b"  carried over the rotation: NEEDLE-carry\n", b"  still yesterday's\n"]
    original = b"".join(lines)
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    log = log_dir / "redis.log"
    (log_dir / "redis.log.2.gz").write_bytes(gzip.compress(b"".join(lines[:i1])))
    (log_dir / "redis.log.1").write_bytes(b"".join(lines[i1:i2 + 1]))
    log.write_bytes(b"".join(lines[i2 + 1:]))
    ref = reference_records(original, KIRITIMATI)
    assert reference_records([log_dir / "redis.log.2.gz", log_dir / "redis.log.1", log], KIRITIMATI) == ref
    assert any(r["lines"][-2:] == ["  carried over the rotation: NEEDLE-carry", "  still yesterday's"] for r in ref)

    imported = dcslog_server.import_instance(redis_standalone.url, "proj-a", "rotated", "--timezone",
                                             "Pacific/Kiritimati", "--log-file", f"{redis_standalone.address}={log}")
    nodes, by_address = node_info(imported)
    rid = by_address[redis_standalone.address]
    refs = {rid: ref}
    api = Api(dcslog_server, imported["instance_id"])
    start = int((datetime(today.year, today.month, today.day, tzinfo=KIRITIMATI) - timedelta(days=2)).timestamp()
                * 1000)
    end = start + 3 * 86_400_000
    want = expected(refs, nodes, KIRITIMATI, start=start, end=end)
    assert len(want) == 750 and want[0]["time"].endswith("+14:00")

    got, body = api.walk(200, start_time=start, end_time=end)  # the host alone
    assert_same(got, want)
    assert body["sources"][0]["read"] and body["sources"][0]["collected_days"] == 0

    files = collect(dcslog_server, imported["instance_id"], rid, 3)
    assert sorted(f.time for f in files) == [(today - timedelta(days=i)).isoformat() for i in (2, 1, 0)]
    got, _ = api.walk(200, start_time=start, end_time=end)  # host and collected days: each entry once
    assert_same(got, want)

    (log_dir / "redis.log.1").unlink()
    (log_dir / "redis.log.2.gz").unlink()
    got, body = api.walk(113, start_time=start, end_time=end)
    assert_same(got, want)
    [source] = body["sources"]
    assert source["read"] is True and source["collected_days"] > 0 and source["error"] is None
    got, _ = api.walk(113, start_time=start, end_time=end, sort_dir="desc")
    assert_same(got, want[::-1])
    exported, [source] = api.export(start_time=start, end_time=end)
    assert_same(exported, want)
    assert source["collected_days"] > 0
    for keyword, insensitive in [("NEEDLE", False), ("needle", True), ("carried over", False)]:
        kwant = expected(refs, nodes, KIRITIMATI, start=start, end=end, keyword=keyword, insensitive=insensitive)
        assert kwant
        got, _ = api.walk(3, start_time=start, end_time=end, keyword=keyword,
                          case="insensitive" if insensitive else None)
        assert_same(got, kwant)
        got, _ = api.walk(3, start_time=start, end_time=end, keyword=keyword, sort_dir="desc",
                          case="insensitive" if insensitive else None)
        assert_same(got, kwant[::-1])

    # A collected file's own records: the reference over the bytes it holds.
    client = dcslog_server.sdk()
    for item in files:
        content = download(client, imported["instance_id"], item.id).content
        file_refs = {rid: reference_records(content, KIRITIMATI)}
        assert len(file_refs[rid]) == 250
        file_want = expected(file_refs, nodes, KIRITIMATI, start=0, end=10**15)
        got, body = api.walk(71, path=f"{item.id}/records")
        assert_same(got, file_want)
        got, _ = api.walk(71, path=f"{item.id}/records", sort_dir="desc")
        assert_same(got, file_want[::-1])
        exported, _ = api.export(path=f"{item.id}/records")
        assert_same(exported, file_want)
        warn = expected(file_refs, nodes, KIRITIMATI, start=start, end=end, level="warning", keyword="0",
                        desc=True)
        got, _ = api.walk(9, path=f"{item.id}/records", start_time=start, end_time=end, level="warning",
                          keyword="0", sort_dir="desc")
        assert_same(got, warn)
        assert api.error({"start_time": end, "end_time": start}, path=f"{item.id}/records")[:2] == (400, "DCS.4025")
        assert api.error({"cursor": "x"}, path=f"{item.id}/records")[:2] == (400, "DCS.4800")
    api.close()


def test_host_beginning_inside_a_same_ms_run_after_rotation(dcslog_server, redis_standalone, tmp_path):
    """logrotate runs whenever it runs: the live log may begin in the middle of a burst of entries
    written in one millisecond. Collected, then the rotated file deleted: still every entry, once,
    with the ids it had (ids are stable: same entry, same id)."""
    lines, today = three_day_log(tmp_path, UTC, 32)
    original = b"".join(lines)
    ref = reference_records(original, UTC)
    today_start = int(datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp() * 1000)
    k = next(i for i, r in enumerate(ref) if r["time_ms"] >= today_start and r["seq"] == 1)
    cut = sum(len(r["raw"]) for r in ref[:k])
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    log = log_dir / "redis.log"
    (log_dir / "redis.log.1").write_bytes(original[:cut])
    log.write_bytes(original[cut:])
    assert reference_records([log_dir / "redis.log.1", log], UTC) == ref
    imported = dcslog_server.import_instance(redis_standalone.url, "proj-a", "burst", "--log-file",
                                             f"{redis_standalone.address}={log}")
    nodes, by_address = node_info(imported)
    rid = by_address[redis_standalone.address]
    api = Api(dcslog_server, imported["instance_id"])
    start, end = today_start - 2 * 86_400_000, today_start + 86_400_000
    want = expected({rid: ref}, nodes, UTC, start=start, end=end)
    collect(dcslog_server, imported["instance_id"], rid, 3)
    (log_dir / "redis.log.1").unlink()
    exported, [source] = api.export(start_time=start, end_time=end)
    assert source["read"] and source["collected_days"] > 0
    assert_same(exported, want)
    api.close()


# --- 4. a node behind `dcslog agent` -------------------------------------------------------------


def test_a_node_behind_an_agent_and_the_agent_gone(dcslog_server, redis_replicated, tmp_path):
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=2), today - timedelta(days=1), today]
    remote_node = redis_replicated.replicas[0]  # 127.0.0.3, where the agent runs
    with running_agent(tmp_path) as (agent_url, log_dir, remote_files):
        files, log_args = {}, []
        for node, seed in zip(redis_replicated.nodes, (41, 42, 43), strict=True):
            if node is remote_node:
                paths = write_node_log(remote_files / "redis.log", days=days, tz=UTC, seed=seed, rotations=2,
                                       formats=("legacy", "logfmt"))
                log_args += ["--log-file", f"{node.address}={log_dir / 'redis.log'}",
                             "--agent", f"{node.address}={agent_url}", "--agent-key", KEY]
            else:
                local = tmp_path / f"logs-{node.host}"
                local.mkdir()
                paths = write_node_log(local / "redis.log", days=days, tz=UTC, seed=seed, rotations=1,
                                       formats=("legacy",))
                log_args += ["--log-file", f"{node.address}={local / 'redis.log'}"]
            files[node.address] = paths
        if remote_files != log_dir:
            assert not (log_dir / "redis.log").exists()  # the service cannot read it itself
        imported = dcslog_server.import_instance(redis_replicated.primary.url, "proj-a", "agented", *log_args)
        nodes, by_address = node_info(imported)
        remote = by_address[remote_node.address]
        refs = {by_address[address]: reference_records(paths, UTC) for address, paths in files.items()}
        api = Api(dcslog_server, imported["instance_id"])
        start, end = window(refs)
        want = expected(refs, nodes, UTC, start=start, end=end)

        got, body = api.walk(400, start_time=start, end_time=end)
        assert_same(got, want)
        by_node = {s["replication_id"]: s for s in body["sources"]}
        assert by_node[remote]["live"] == "agent" and by_node[remote]["read"] is True
        got, _ = api.walk(400, start_time=start, end_time=end, sort_dir="desc")
        assert_same(got, want[::-1])
        exported, _ = api.export(start_time=start, end_time=end)
        assert_same(exported, want)
        # The agent filters: keyword (both cases), level, role; the remote node alone too.
        for case in [{"keyword": "NEEDLE"}, {"keyword": "needle", "case": "insensitive"},
                     {"level": "warning", "role": "master"}, {"replication_id": remote, "keyword": "REDIS BUG"}]:
            cwant = expected(refs, nodes, UTC, start=start + 3_600_000, end=end - 3_600_000,
                             keyword=case.get("keyword"), insensitive="case" in case, level=case.get("level"),
                             role=case.get("role"), only=[remote] if "replication_id" in case else None)
            assert cwant
            limit = max(5, len(cwant) // 2)
            got, _ = api.walk(limit, start_time=start + 3_600_000, end_time=end - 3_600_000, **case)
            assert_same(got, cwant)
            got, _ = api.walk(limit, start_time=start + 3_600_000, end_time=end - 3_600_000, sort_dir="desc",
                              **case)
            assert_same(got, cwant[::-1])

        # Collect the remote node's today through the agent: still each entry once.
        collect(dcslog_server, imported["instance_id"], remote, 1)
        got, _ = api.walk(1000, start_time=start, end_time=end)
        assert_same(got, want)

    # The agent is gone: a 200 that says so; the remote node's records come from its collected
    # day only (today), the other nodes' from their hosts.
    today_start = int(datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp() * 1000)
    partial = {rid: [r for r in recs if rid != remote or r["time_ms"] >= today_start]
               for rid, recs in refs.items()}
    pwant = expected(partial, nodes, UTC, start=start, end=end)
    got, body = api.walk(300, start_time=start, end_time=end)
    assert_same(got, pwant)
    by_node = {s["replication_id"]: s for s in body["sources"]}
    assert by_node[remote]["read"] is False and by_node[remote]["error"]
    assert agent_url.split("//")[1] in by_node[remote]["error"]
    assert by_node[remote]["collected_days"] == 1
    assert all(s["read"] and s["error"] is None for rid, s in by_node.items() if rid != remote)
    exported, sources = api.export(start_time=start, end_time=end, sort_dir="desc")
    assert_same(exported, pwant[::-1])
    assert {s["replication_id"]: s["read"] for s in sources}[remote] is False
    # Before today, nothing of the remote node: the others' records only.
    others = [rid for rid in nodes if rid != remote]
    got, body = api.walk(97, start_time=start, end_time=today_start)
    assert_same(got, expected(refs, nodes, UTC, start=start, end=today_start, only=others))
    assert {s["replication_id"]: s for s in body["sources"]}[remote]["read"] is False
    api.close()


# --- 5. errors and access ------------------------------------------------------------------------


def test_errors_and_access(dcslog_server, redis_standalone, tmp_path):
    log = tmp_path / "redis.log"
    write_multiday_log(log, days=[datetime.now(UTC).date()], tz=UTC, entries_per_day=50, seed=51)
    imported = dcslog_server.import_instance(redis_standalone.url, "proj-a", "errors", "--log-file",
                                             f"{redis_standalone.address}={log}")
    instance_id = imported["instance_id"]
    nodes, _ = node_info(imported)
    api = Api(dcslog_server, instance_id)  # a viewer
    ref = reference_records(log, UTC)
    start, end = ref[0]["time_ms"], ref[-1]["time_ms"] + 1
    got, _ = api.walk(100, start_time=start, end_time=end)
    assert_same(got, expected({next(iter(nodes)): ref}, nodes, UTC, start=start, end=end))

    assert api.error({"start_time": 2000, "end_time": 1000})[:2] == (400, "DCS.4025")
    bad = [
        ("cursor", {"cursor": "not-a-cursor"}),
        ("cursor", {"cursor": "123_0_zz"}),
        ("level", {"level": "fatal"}),
        ("limit", {"limit": 0}),
        ("limit", {"limit": 1001}),
        ("limit", {"limit": "ten"}),
        ("replication_id", {"replication_id": str(uuid.uuid4())}),
        ("replication_id", {"replication_id": "node-1"}),
        ("role", {"role": "leader"}),
        ("sort_dir", {"sort_dir": "up"}),
        ("case", {"case": "upper"}),
        ("start_time", {"start_time": "yesterday"}),
        ("end_time", {"end_time": "-5"}),
    ]
    for name, params in bad:
        status, code, message = api.error({"start_time": start, "end_time": end, **params})
        assert (status, code) == (400, "DCS.4800"), (name, status, code, message)
        assert name in message, (name, message)
    for limit in (1, 1000):
        assert api.page(start_time=start, end_time=end, limit=limit)["records"]
    # Another project's credential: the instance does not exist for it.
    other = Api(dcslog_server, instance_id, project="proj-b", role="admin")
    assert other.error({"start_time": start, "end_time": end})[:2] == (404, "DCS.3022")
    status, code, _ = other.error({}, path="0123456789abcdef0123456789abcdef/records")
    assert (status, code) == (404, "DCS.3022")
    # proj-a's token on proj-b's path: refused by the credential check.
    response = httpx.get(f"{dcslog_server.url}/v2/proj-b/instances/{instance_id}/redislog/records",
                         headers={"X-Auth-Token": api.token})
    assert response.status_code == 401 and response.json()["error_code"] == "DCS.1004"
    # No credentials at all.
    response = httpx.get(f"{api.base}/records")
    assert response.status_code == 401 and response.json()["error_code"] == "DCS.1003"
    # A collected file that does not exist.
    status, code, _ = api.error({}, path=f"{uuid.uuid4()}/records")
    assert (status, code) == (404, "DCS.4001")
    # Without parameters: the last hour.
    rid = next(iter(nodes))
    before = int(time.time() * 1000)
    body = api.page()
    after = int(time.time() * 1000)
    sure = {r["id"] for r in expected({rid: ref}, nodes, UTC, start=after - 3_600_000, end=before)}
    maybe = {r["id"] for r in expected({rid: ref}, nodes, UTC, start=before - 3_600_000, end=after)}
    assert sure <= {r["id"] for r in body["records"]} <= maybe
    other.close()
    api.close()


# --- 6. a real Valkey writing logfmt -------------------------------------------------------------


def test_a_real_valkey_log_in_logfmt(dcslog_server, redis_node_factory, monkeypatch):
    node = valkey_node(redis_node_factory, monkeypatch)
    instance_id = import_valkey(dcslog_server, node)
    with contextlib.closing(node.client()) as c:
        c.execute_command("DEBUG", "LOG", "still legacy")
        c.config_set("log-format", "logfmt")
        for i in range(40):
            c.execute_command("DEBUG", "LOG", f"logfmt entry {i} NEEDLE" if i % 7 == 0 else f"logfmt entry {i}")
        c.config_set("log-timestamp-format", "milliseconds")
        c.config_set("loglevel", "verbose")
        for _ in range(3):
            with contextlib.closing(node.client()) as extra:  # connections log at verbose
                extra.ping()
        c.config_set("loglevel", "notice")
        c.execute_command("DEBUG", "LOG", 'quote " inside')
        c.config_set("log-timestamp-format", "iso8601")
        c.execute_command("DEBUG", "LOG", "last one")
    nodes, by_address = node_info(dcslog_server.cli("instances", "show", instance_id))
    rid = next(iter(nodes))
    api = Api(dcslog_server, instance_id)
    now = int(time.time() * 1000)
    start, end = now - 3_600_000, now + 60_000
    for _ in range(5):  # the node may log on its own meanwhile: compare against a stable file
        before = reference_records(read_all(node.log_file), VALKEY_TZ)
        exported, sources = api.export(start_time=start, end_time=end)
        paged, _ = api.walk(13, start_time=start, end_time=end, sort_dir="desc")
        kw, _ = api.walk(2, start_time=start, end_time=end, keyword="needle", case="insensitive")
        if reference_records(read_all(node.log_file), VALKEY_TZ) == before:
            break
    refs = {rid: before}
    want = expected(refs, nodes, VALKEY_TZ, start=start, end=end)
    assert {r["format"] for r in want} >= {"logfmt", "legacy"}
    assert sum("DEBUG LOG: logfmt entry" in r["message"] for r in want) == 40
    assert any(r["message"] == "DEBUG LOG: quote ' inside" for r in want)
    assert_same(exported, want)
    assert sources[0]["read"] is True
    assert_same(paged, want[::-1])
    assert_same(kw, expected(refs, nodes, VALKEY_TZ, start=start, end=end, keyword="needle", insensitive=True))
    assert len(kw) == 6
    api.close()


# --- 7. the budget, and one node's scan ----------------------------------------------------------


def padded_log(path: Path, *, seed: int, days: list[date], entries_per_day: int, pad_every: int, pad: int,
               marks: dict[int, bytes]) -> None:
    """A synthetic log (UTC) with a long continuation line after every ``pad_every``-th entry's
    first line, and the line ``marks[n]`` after the n-th entry's (n from 1; negative from the end)."""
    write_multiday_log(path, days=days, tz=UTC, entries_per_day=entries_per_day, seed=seed, crash_every=41,
                       formats=("legacy", "logfmt"))
    total = len(days) * entries_per_day
    marks = {n if n > 0 else total + 1 + n: line for n, line in marks.items()}
    out, n = [], 0
    for line in split_lines(path.read_bytes()):
        out.append(line)
        if parse(line, UTC) is not None:
            n += 1
            if pad and n % pad_every == 0:
                out.append(b"    " + b"padding " * (pad // 8) + b"\n")
            if n in marks:
                out.append(marks[n] + b"\n")
    path.write_bytes(b"".join(out))


def plan(rid: str, log_file: str, host: str) -> NodePlan:
    return NodePlan(Replication(id=rid, instance_id="i", group_name="group-0", host=host, port=6379), log_file,
                    None, None)


def next_query(query: RecordQuery, cursor: str) -> RecordQuery:
    return RecordQuery(query.start_ms, query.end_ms, keyword=query.keyword, insensitive=query.insensitive,
                       level=query.level, role=query.role, descending=query.descending, cursor=parse_cursor(cursor))


def read_all_pages(plans: list[NodePlan], query: RecordQuery, limit: int, budget: int) -> tuple[list[dict], int]:
    """Every page of ``query`` with ``budget`` bytes a page: (the records, how many pages were empty)."""
    got, empty, seen = [], 0, set()
    while True:
        page = read_page(plans, query, None, "UTC", limit, budget=budget)
        assert len(page["records"]) <= limit
        got += page["records"]
        if page["next_cursor"] is None:
            return got, empty
        empty += not page["records"]
        assert page["next_cursor"] not in seen
        seen.add(page["next_cursor"])
        query = next_query(query, page["next_cursor"])


MARK = b"    rare marker ZQXJ-7"


def test_budget_paging_gives_empty_pages_and_loses_nothing(tmp_path, monkeypatch):
    today = date(2026, 12, 1)
    big = tmp_path / "big" / "redis.log"
    big.parent.mkdir()
    padded_log(big, seed=71, days=[today - timedelta(days=1), today], entries_per_day=2500, pad_every=2, pad=2400,
               marks={-7: MARK, 1800: b"    rare marker zqxj-7 (lower case)"})
    big_paths = rotate_files(big, 2, gz_oldest=False, seed=71)  # (each page would inflate a .gz again)
    small = tmp_path / "small" / "redis.log"
    small.parent.mkdir()
    padded_log(small, seed=72, days=[today], entries_per_day=600, pad_every=1, pad=0, marks={300: MARK})
    small_paths = rotate_files(small, 1, seed=72)
    assert sum(len(read_all(p)) for p in big_paths) > 5 * 2**20  # more than one keyword read (4 MiB)
    a, b = sorted(str(uuid.uuid4()) for _ in range(2))
    refs = {a: reference_records(big_paths, UTC), b: reference_records(small_paths, UTC)}
    nodes = {a: {"replication_ip": "10.0.0.1", "replication_port": 6379, "group_name": "group-0"},
             b: {"replication_ip": "10.0.0.2", "replication_port": 6379, "group_name": "group-0"}}
    plans = [plan(a, str(big), "10.0.0.1"), plan(b, str(small), "10.0.0.2")]
    start, end = window(refs)
    keyword = "zqxj-7"

    for desc in (False, True):
        want = expected(refs, nodes, UTC, start=start, end=end, keyword=keyword, insensitive=True, desc=desc)
        assert len(want) == 3
        query = RecordQuery(start, end, keyword=keyword, insensitive=True, descending=desc)
        got, empty = read_all_pages(plans, query, 5, 4096)
        assert_same(got, want)
        if desc:  # backward, a checkpoint every MiB or so: pages that found nothing in their budget
            assert empty >= 1, "a page that read its budget without a match answers empty, with a cursor"
        # The default budget: one page.
        page = read_page(plans, query, None, "UTC", 1000)
        assert page["next_cursor"] is None
        assert_same(page["records"], want)
        # Case sensitive: the lower-case mark is not found.
        sensitive = expected(refs, nodes, UTC, start=start, end=end, keyword="ZQXJ-7", desc=desc)
        assert len(sensitive) == 2
        got, _ = read_all_pages(plans, RecordQuery(start, end, keyword="ZQXJ-7", descending=desc), 1, 4096)
        assert_same(got, sensitive)

    # Small read chunks: many checkpoints, many empty pages; also without a keyword (level, role).
    monkeypatch.setattr(scan_module, "CHUNK", 16 * 1024)
    for desc in (False, True):
        for kw, level, role in [(keyword, None, None), ("REDIS BUG", None, None), (None, "warning", "sentinel")]:
            insensitive = kw == keyword
            want = expected(refs, nodes, UTC, start=start, end=end, keyword=kw, insensitive=insensitive,
                            level=level, role=role, desc=desc)
            assert want
            query = RecordQuery(start, end, keyword=kw, insensitive=insensitive, level=level, role=role,
                                descending=desc)
            got, empty = read_all_pages(plans, query, 7, 256 * 1024)
            assert_same(got, want)
            if kw == keyword:
                assert empty > 10


def test_a_checkpoint_never_goes_back_behind_the_cursor(tmp_path):
    """Three entries in one millisecond, the first two with 1.5 MiB and 1 MiB of continuation
    lines (a crash report with a huge client list): a scan never checkpoints at or behind its
    cursor, and paging with a small budget ends, giving each record once, in both directions.
    (The API's budget is 256 MiB, but it counts every node's reads: a cluster of a few hundred
    nodes spends it on the first read of each, and then every page stops at its first item.)"""
    t0 = datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC)
    crash = [b"client id=%d addr=10.0.0.1:%d laddr=10.0.0.2:6379 fd=9 name= age=1 idle=0 flags=N\n" % (i, i)
             for i in range(40_000)]
    data = (write_entry(t0 - timedelta(seconds=1), "before")
            + write_entry(t0, "first of the run", level="warning") + b"".join(crash[:20_000])
            + write_entry(t0, "second of the run") + b"".join(crash[20_000:33_000])
            + write_entry(t0, "third of the run")
            + write_entry(t0 + timedelta(seconds=1), "after"))
    log = tmp_path / "redis.log"
    log.write_bytes(data)
    ref = reference_records(log, UTC)
    assert [r["seq"] for r in ref] == [0, 0, 1, 2, 0] and len(ref[1]["raw"]) > 2**20 + 2**19
    rid = str(uuid.uuid4())
    nodes = {rid: {"replication_ip": "10.0.0.1", "replication_port": 6379, "group_name": "group-0"}}
    t = ref[1]["time_ms"]
    with ExitStack() as stack:
        segments = host_segments(str(log), stack)
        for after, desc in [((t, 0), False), ((t, 1), False), ((t, 0), True), ((t, 1), True)]:
            for item in scan_node(segments, Scan(0, 10**15, after=after, descending=desc)):
                key = item.key if isinstance(item, Checkpoint) else (item.time_ms, item.seq)
                assert (key < after) if desc else (key > after), (after, desc, item)
    for desc in (False, True):
        query = RecordQuery(0, 10**15, descending=desc)
        got, _ = read_all_pages([plan(rid, str(log), "10.0.0.1")], query, 1, 4096)
        assert_same(got, expected({rid: ref}, nodes, UTC, start=0, end=10**15, desc=desc))


def test_budget_holds_across_small_rotated_files_with_a_keyword(tmp_path):
    """Eight rotated files of about 1.5 MiB and a keyword found only at the very end: a page
    with a tiny budget stops well before reading them all (SPEC §6: a window too large for one
    request is paged), ascending as descending."""
    log = tmp_path / "redis.log"
    padded_log(log, seed=91, days=[date(2026, 11, 29), date(2026, 11, 30)], entries_per_day=2500, pad_every=1,
               pad=2200, marks={-3: MARK})
    lines = split_lines(log.read_bytes())
    total = sum(map(len, lines))
    pieces, current, size = [], [], 0
    for line in lines:  # eight pieces of whole lines
        current.append(line)
        size += len(line)
        if size >= total / 8 and len(pieces) < 7:
            pieces.append(b"".join(current))
            current, size = [], 0
    pieces.append(b"".join(current))
    for n, piece in enumerate(pieces):
        (tmp_path / (f"redis.log.{7 - n}" if n < 7 else "redis.log")).write_bytes(piece)
    assert max(map(len, pieces)) < 2 * 2**20 and total > 10 * 2**20
    rid = str(uuid.uuid4())
    ref = reference_records([tmp_path / f"redis.log.{n}" for n in range(7, 0, -1)] + [log], UTC)
    start, end = ref[0]["time_ms"], ref[-1]["time_ms"] + 1
    plans = [plan(rid, str(log), "10.0.0.1")]
    want = expected({rid: ref}, {rid: {"replication_ip": "10.0.0.1", "replication_port": 6379,
                                       "group_name": "group-0"}}, UTC, start=start, end=end, keyword="ZQXJ-7")
    assert len(want) == 1
    for desc in (True, False):
        query = RecordQuery(start, end, keyword="ZQXJ-7", descending=desc)
        got, empty = read_all_pages(plans, query, 5, 4096)
        assert_same(got, want[::-1] if desc else want)
        first = read_page(plans, query, None, "UTC", 5, budget=4096)
        assert first["scanned_bytes"] < total / 2, (desc, first["scanned_bytes"], total)


def scan_expected(ref: list[dict], *, start: int, end: int, after, desc: bool, keyword, insensitive, level,
                  role) -> list[tuple]:
    out = [r for r in filter_records(ref, start_ms=start, end_ms=end, keyword=keyword, insensitive=insensitive,
                                     min_level=level, role=role)
           if after is None or ((r["time_ms"], r["seq"]) < after if desc else (r["time_ms"], r["seq"]) > after)]
    out = [(r["time_ms"], r["seq"], r["pid"], r["role"], r["level"], r["format"], r["message"], r["lines"])
           for r in out]
    return out[::-1] if desc else out


def as_tuple(r: Record) -> tuple:
    return (r.time_ms, r.seq, r.pid, r.role, r.level, r.format, r.message.decode("utf-8", "replace"),
            [line.decode("utf-8", "replace") for line in r.lines])


def test_scan_node_against_the_reference(tmp_path, monkeypatch):
    """One node's scan over a rotated set (cuts inside continuation lines and inside a same-ms run,
    the oldest file gzip), random windows, filters, cursors, both directions; and stopping at any
    record or checkpoint and continuing after its key loses and repeats nothing."""
    tz = KOLKATA
    log = tmp_path / "redis.log"
    write_multiday_log(log, days=[date(2026, 11, 30), date(2026, 12, 1)], tz=tz, entries_per_day=1200, seed=81,
                       formats=list(FORMAT_STYLES), crash_every=13, preamble=True)
    paths = rotate_files(log, 4, seed=81)
    ref = reference_records(paths, tz)
    # The cuts: one inside an entry's continuation lines, one inside a same-millisecond run.
    starts = [split_lines(read_all(p))[0] for p in paths[1:]]
    assert any(parse(line, tz) is None for line in starts)
    keys = {(r["time_ms"], r["seq"]) for r in ref}
    assert any(parse(line, tz) is not None and (parse(line, tz)["time_ms"], 1) in keys
               and (parse(line, tz)["time_ms"], 0) in keys for line in starts)
    times = [r["time_ms"] for r in ref]
    keywords = [("NEEDLE", False), ("needle", True), ("Needle", False), ("REDIS BUG", False), ('"', False),
                ("'", False), ("level=", False), ("progress 50%", False), ("ärger", True), ("ÄRGER", True),
                ("   indented", False), ("EIP:", False), ("10.0.0.1", False), ("7.2.4", False), ("e", True)]
    rng = random.Random(2024)
    with ExitStack() as stack:
        segments = host_segments(str(log), stack)
        assert len(segments) == 5
        for case in range(60):
            monkeypatch.setattr(scan_module, "CHUNK", rng.choice([1 << 20, 1 << 20, 4096, 777]))
            desc = rng.random() < 0.5
            lo = rng.choice(times) + rng.choice([-1, 0, 0, 1])
            shape = rng.random()
            if shape < 0.15:
                start, end = lo, lo + 1  # one millisecond (often a same-ms run)
            elif shape < 0.3:
                start, end = times[0] - 10, times[-1] + 10
            else:
                start, end = sorted((lo, rng.choice(times) + rng.choice([0, 1])))
            after = None
            if rng.random() < 0.6:
                t, seq = rng.choice(sorted(keys))
                after = rng.choice([(t, seq), (t, seq), (t, -1), (t, 2**31)])
            keyword, insensitive = rng.choice(keywords) if rng.random() < 0.45 else (None, False)
            level = rng.choice(LEVELS) if rng.random() < 0.3 else None
            role = rng.choice(ROLES) if rng.random() < 0.25 else None
            want = scan_expected(ref, start=start, end=end, after=after, desc=desc, keyword=keyword,
                                 insensitive=insensitive, level=level, role=role)

            def scan(after_key, start=start, end=end, desc=desc, keyword=keyword, insensitive=insensitive,
                     level=level, role=role):
                return scan_node(segments, Scan(start, end, after=after_key, descending=desc,
                                                filters=Filters(keyword, insensitive, level, role),
                                                clock=Clock(tz)))

            what = f"case {case}: {start}-{end} after={after} desc={desc} kw={keyword!r}/{insensitive} " \
                   f"level={level} role={role} chunk={scan_module.CHUNK}"
            items = list(scan(after))
            got = [as_tuple(i) for i in items if isinstance(i, Record)]
            assert got == want, what
            # Keys go one way, strictly beyond the cursor (a checkpoint too: else no progress).
            order = [(i.time_ms, i.seq) if isinstance(i, Record) else i.key for i in items]
            assert order == sorted(order, reverse=desc), what
            if after is not None:
                assert all(k < after if desc else k > after for k in order), what
            # Stop anywhere, continue after the key: the same records.
            resumed, key, rounds = [], after, 0
            while True:
                rounds += 1
                assert rounds < 10_000, what
                stopped = False
                for item in scan(key):
                    if isinstance(item, Record):
                        resumed.append(as_tuple(item))
                        here = (item.time_ms, item.seq)
                    else:
                        assert isinstance(item, Checkpoint)
                        here = item.key
                    if rng.random() < 0.3:
                        key, stopped = here, True
                        break
                if not stopped:
                    break
            assert resumed == want, what


EDGE_STYLES = [("legacy", "legacy")] * 6 + [("logfmt", "legacy"), ("logfmt", "iso8601"), ("legacy", "milliseconds"),
                                             ("legacy", "iso8601")]
#: Messages holding the level markers the scan looks for (" #", " level=warning"): only a marker
#: in an entry's prefix makes it a warning.
EDGE_MESSAGES = ["DB saved on disk", "value # comment", "ends with a #", "# leading hash", " # ", "level=warning",
                 "x level=warning y", "", "NEEDLE in a # message"]
#: Continuation lines that hold markers, some looking like entries (an impossible date, no space
#: after the level, a logfmt line without a timestamp).
EDGE_LINES = [b"  # Server\n", b"1 # 2\n", b"4242:M 31 Feb 2026 10:00:00.000 # impossible date\n", b" level=warning\n",
              b"# Clients\n", b"\n", b"pid=12 role=primary level=warning message=\"x\"\n",
              b"99:M 01 Dec 2026 10:00:00.000 #no space after the level\n", b"p # NEEDLE\r\n"]


def edge_log(path: Path, seed: int, tz: tzinfo) -> None:
    """A log of warnings among other levels in every format (runs of one millisecond mixing
    levels, the markers in messages and continuation lines, empty messages, CRLF, crash reports
    of many lines, a dense stretch of warnings), its last line without a newline."""
    rng = random.Random(seed)
    t = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
    out = [b"a preamble # not an entry\n"]
    for i in range(2500):
        if rng.random() < 0.6:  # else: the same millisecond
            t += timedelta(milliseconds=rng.choice([1, 1, 2, 50, 1000]))
        dense = 1200 <= i < 1500
        level = "warning" if dense or rng.random() < 0.12 else rng.choice(["notice", "notice", "verbose", "debug"])
        role = rng.choice(["master", "master", "child", "slave"])
        line = write_entry(t, rng.choice(EDGE_MESSAGES), style=rng.choice(EDGE_STYLES), tz=tz, level=level,
                           pid=rng.choice([4242, 4242, 50000 + i]), role=role)
        if line.endswith(b" \n") and rng.random() < 0.5:
            line = line[:-2] + b"\n"  # "...:07.123 #": nothing after the level
        if rng.random() < 0.05:
            line = line[:-1] + b"\r\n"
        out.append(line)
        if rng.random() < 0.08:
            out += rng.sample(EDGE_LINES, rng.randint(1, 3))
        space = line.find(b" ")
        if rng.random() < 0.05 and line[space + 3:space + 4] == b" ":  # a legacy timestamp: the line again,
            head, rest = line[:space + 18], line[space + 18:]  # not a prefix (rest: ":SS.mmm L ...")
            out.append(head + rng.choice([b":60" + rest[3:], b":7" + rest[2:], rest[:6] + b"x" + rest[7:],
                                          rest[:8] + b"!" + rest[9:], rest[:9] + b"x" + rest[10:]]))
        if rng.random() < 0.006:
            out += [b"  client id=%d addr=10.0.0.1:%d # flags=N\n" % (j, j) for j in range(rng.randint(100, 2000))]
    out[-1] = out[-1].rstrip(b"\r\n")
    path.write_bytes(b"".join(out))


@pytest.mark.parametrize("sparse", [0, 2, 10**9])  # level markers: always searched / by density / never
def test_level_and_keyword_scans_at_block_edges(tmp_path, monkeypatch, sparse):
    """The minimum-level scan parses only the lines holding a level marker (where markers are
    sparse), the keyword scan only the entries holding the keyword, the descending scan slices
    entries out of the blocks it reads: against the reference, with tiny blocks (edges inside
    entries and inside same-millisecond runs), markers in messages and continuation lines, and
    stopping at any record or checkpoint and continuing after its key."""
    tz = KOLKATA
    log = tmp_path / "redis.log"
    edge_log(log, 7, tz)
    paths = rotate_files(log, 3, seed=7)
    ref = reference_records(paths, tz)
    assert sum(r["level"] == "warning" for r in ref) > 300 and max(r["seq"] for r in ref) >= 3
    assert any(r["level"] == "warning" and r["lines"] for r in ref)
    assert any(r["level"] != "warning" and " #" in r["message"] for r in ref)
    monkeypatch.setattr(scan_module, "_SPARSE", sparse)
    keys = sorted({(r["time_ms"], r["seq"]) for r in ref})
    times = [r["time_ms"] for r in ref]
    rng = random.Random(sparse)
    with ExitStack() as stack:
        segments = host_segments(str(log), stack)
        for case in range(40):
            monkeypatch.setattr(scan_module, "CHUNK", rng.choice([333, 777, 4096, 1 << 20]))
            desc = rng.random() < 0.3
            if rng.random() < 0.3:
                start, end = times[0] - 1, times[-1] + 1
            else:
                start, end = sorted((rng.choice(times), rng.choice(times) + rng.choice([0, 1])))
            after = rng.choice(keys) if rng.random() < 0.5 else None
            level = rng.choice(["warning", "warning", "notice", "verbose", None])
            keyword, insensitive = rng.choice([(None, False)] * 3 + [(" # ", False), ("#", False), ("needle", True),
                                                                   ("level=warning", False)])
            role = rng.choice([None, None, "master", "child"])
            want = scan_expected(ref, start=start, end=end, after=after, desc=desc, keyword=keyword,
                                 insensitive=insensitive, level=level, role=role)

            def scan(after_key, start=start, end=end, desc=desc, keyword=keyword, insensitive=insensitive,
                     level=level, role=role):
                return scan_node(segments, Scan(start, end, after=after_key, descending=desc,
                                                filters=Filters(keyword, insensitive, level, role), clock=Clock(tz)))

            what = f"case {case}: {start}-{end} after={after} desc={desc} kw={keyword!r} level={level} role={role} " \
                   f"chunk={scan_module.CHUNK}"
            items = list(scan(after))
            assert [as_tuple(i) for i in items if isinstance(i, Record)] == want, what
            order = [(i.time_ms, i.seq) if isinstance(i, Record) else i.key for i in items]
            assert order == sorted(order, reverse=desc), what
            if after is not None:
                assert all(k < after if desc else k > after for k in order), what
            resumed, key = [], after
            for _ in range(10_000):
                stopped = False
                for item in scan(key):
                    if isinstance(item, Record):
                        resumed.append(as_tuple(item))
                    if rng.random() < 0.2:
                        key, stopped = (item.key if isinstance(item, Checkpoint) else (item.time_ms, item.seq)), True
                        break
                if not stopped:
                    break
            assert resumed == want, what


def test_a_warning_run_across_blocks_counts_its_seq(tmp_path, monkeypatch):
    """One millisecond of 40 entries, every third a warning, each with a few continuation lines,
    read in blocks of a few hundred bytes: every warning's seq counts the entries of its run
    before it, in blocks read before; also when the scan begins inside the run (a cursor)."""
    t0 = datetime(2026, 12, 1, 10, 0, 0, 5000, tzinfo=UTC)
    data = write_entry(t0 - timedelta(milliseconds=1), "before", level="warning")
    for n in range(40):
        data += write_entry(t0, f"entry {n} # of the run", level="warning" if n % 3 == 0 else "notice",
                            pid=4242 if n % 2 else 50000 + n, role="master" if n % 2 else "child")
        data += b"".join(b"  line %d of entry %d\n" % (j, n) for j in range(n % 4))
    data += write_entry(t0 + timedelta(milliseconds=1), "after", level="warning")
    log = tmp_path / "redis.log"
    log.write_bytes(data)
    ref = reference_records(log, UTC)
    assert [r["seq"] for r in ref if r["time_ms"] == ref[1]["time_ms"]] == list(range(40))
    t = ref[1]["time_ms"]
    with ExitStack() as stack:
        segments = host_segments(str(log), stack)
        for chunk in (200, 333, 1000, 1 << 20):
            monkeypatch.setattr(scan_module, "CHUNK", chunk)
            for after in (None, (t, 0), (t, 17), (t - 1, 0)):
                for desc in (False, True):
                    want = scan_expected(ref, start=0, end=10**15, after=after, desc=desc, keyword=None,
                                         insensitive=False, level="warning", role=None)
                    got = [as_tuple(i) for i in scan_node(segments, Scan(0, 10**15, after=after, descending=desc,
                                                                        filters=Filters(level="warning")))
                           if isinstance(i, Record)]
                    assert got == want, (chunk, after, desc)


def test_service_cursor_positions_for_other_nodes():
    """A cursor names one node's entry; the other nodes continue at the edge of its millisecond."""
    a, b, c = sorted(str(uuid.uuid4()) for _ in range(3))
    cursor = service.Cursor(1000, 2, b)
    asc = RecordQuery(0, 2000, cursor=cursor)
    desc = RecordQuery(0, 2000, cursor=cursor, descending=True)
    assert str(cursor) == f"1000_2_{b}" and parse_cursor(str(cursor)) == cursor
    for query in (asc, desc):
        assert query.after_for(b) == (1000, 2)
    # ascending: a (before b) had all of ms 1000; c (after b) has all of it to come
    assert asc.after_for(a)[0] == 1000 and asc.after_for(a)[1] > 10**6
    assert asc.after_for(c) == (1000, -1)
    # descending: c came first and had all of it; a still has all of it to come
    assert desc.after_for(c) == (1000, 0)
    assert desc.after_for(a)[0] == 1000 and desc.after_for(a)[1] > 10**6
    with pytest.raises(ValueError):
        parse_cursor("1000_2_not-a-node")
