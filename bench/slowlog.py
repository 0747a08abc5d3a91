#!/usr/bin/env python3
"""Benchmark: the DCS ListSlowlog query over a big slow-log table, and one harvest of six real nodes.

Sets up, under bench/out/, a fresh SQLite database (``upgrade()``), a server
key, and one instance of six real redis-server nodes (a primary on 127.0.0.2
and five replicas on 127.0.0.3-.7) imported with ``import_instance``; bulk
inserts --entries slow-log rows spread over the last 7 days across the six
nodes, then ANALYZE. Then, medians over --reps interleaved repetitions:

  floor   the same answer by the best plain SQL, through the sqlite3 module on the
          same file: the plan list_slowlog uses (total = hourly counts summed + the
          two partial edge hours counted; the page with the duration index forced
          by "start_time_ms + 0" for a wide window; the nodes' lost entries summed)
  naive   the query as one would first write it, left to SQLite's planner:
          SELECT count(*) with the WHERE, plus the page (LIMIT 10 OFFSET k);
          a reference only, timed on at most 3 reps (its deep page takes seconds)
  service ``services.slowlog_query.list_slowlog`` on a session as the API's (SQLAlchemy;
          short reads inline on the loop, db/inline.py; others through aiosqlite)
  http    GET /v2/{project}/instances/{id}/slowlog on a running dcslog (in-process,
          aiohttp on loopback), X-Auth-Token, one kept-alive httpx client

for a 7-day window: sorted by duration, first page and page at offset 500,000;
default sort (start_time desc), first page. Then the harvest: before each rep
the six nodes log 128 new entries in total (``DEBUG SLEEP`` above a raised
``slowlog-log-slower-than``, so the harvester's own INFO/SLOWLOG commands stay
out of the log), and one ``harvest_instance`` call is timed; every rep checks
that exactly 128 rows were stored.

Then slow-log top (``GET …/slowlog/top``) over the same rows, the same 7-day window
(both edges inside an hour), grouped by fingerprint, command and node, sorted by total, limit 10:

  floor   the best plain SQL for the same answer, through the sqlite3 module: the plan
          slowlog_top uses (whole hours from slowlog_hour_groups, the two partial edge hours
          aggregated from the entries, in one statement; then per group returned, its slowest
          entry and its nearest-rank p99 by walking the group's duration index)
  naive   one statement over the window's entries: GROUP BY, the p99 and the sample by
          window functions (row_number / count over the group); a reference only (3 reps)
  service ``services.slowlog_top.slowlog_top`` on a session as the API's
  http    GET /v2/{project}/instances/{id}/slowlog/top

and the first repetition checks that all four give the same groups, field by field.

Exits 1 if a target is missed: duration-sorted first page of list_slowlog
within 2x the SQL floor, under 50 ms for both list_slowlog and HTTP; slow-log top
within 2x its SQL floor and under 200 ms (service and HTTP); harvest
under 100 ms. (HTTP's ratio to the floor is printed, not checked: it adds a
request's fixed cost, measured against nginx in docs/benchmarks-http.md.)
Quote ratios from one run, not absolute times across runs.

    python bench/slowlog.py [--entries 1000000] [--reps 9] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import select

from dcslog import admin
from dcslog.config import Settings
from dcslog.db.inline import InlineReads
from dcslog.db.models import HOUR_MS, Replication, SlowlogCursor
from dcslog.db.queries.slowlog import WIDE_WINDOW
from dcslog.db.queries.slowlog_top import TopGroup
from dcslog.db.session import create_engine, create_sessionmaker, upgrade
from dcslog.keys import Keyring
from dcslog.redis.connection import NodeConnector
from dcslog.redis.slowlog import command_name, fingerprint, read_slowlog
from dcslog.services.audit import system_actor
from dcslog.services.instances import import_instance
from dcslog.services.slowlog_harvest import harvest_instance
from dcslog.services.slowlog_query import list_slowlog
from dcslog.services.slowlog_top import slowlog_top, top_item
from dcslog.testing.ports import free_port
from dcslog.testing.redis_servers import NodeSet, start_replicated
from dcslog.testing.server import running_app

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PROJECT = "benchproject0001"
DAY_MS = 86_400_000
REPLICA_HOSTS = ("127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7")
HARVEST_TOTAL = 128
SLOWER_THAN_US = 5000  # the harvest's threshold; DEBUG SLEEP below lasts longer, INFO/SLOWLOG GET far less
SLEEP_S = "0.006"
PAGE = 10
COLUMNS = ("id, instance_id, replication_id, run_id, redis_id, start_time_ms, duration_us, command, command_name, "
           "fingerprint, shard_name, node_ip, node_port, node_role, client_addr, client_name")
WHERE = "instance_id = ? AND start_time_ms BETWEEN ? AND ?"
# The time column out of index selection: the duration sort walks ix_slowlog_entries_duration_id.
WHERE_DURATION_INDEX = "instance_id = ? AND start_time_ms + 0 BETWEEN ? AND ?"
NAIVE_REPS = 3
ORDER = {"duration": "duration_us DESC, id DESC", "start_time": "start_time_ms DESC, id DESC"}


def cases(entries: int) -> list[tuple[str, str, int, bool]]:
    """(label, sort_key, offset, has a target); the deep page is half-way (offset 500,000 of 1,000,000)."""
    deep = entries // 2
    return [("7 days, duration desc, first page", "duration", 0, True),
            (f"7 days, duration desc, offset {deep:,}", "duration", deep, False),
            ("7 days, start_time desc (default), first page", "start_time", 0, False)]


WAYS = ("floor", "naive", "service", "http")


# ---------------------------------------------------------------------------
# Data


def _commands(rng: random.Random) -> list[str]:
    """A realistic mix of slow commands (values already in, as Redis reports them)."""
    n = rng.randrange(1, 200_000)
    return rng.choices([
        f"GET key:{n}", f"SET key:{n} {rng.randrange(10**6)}", f"HGETALL user:{n}", f"HSET user:{n} name bob",
        f"ZRANGE leaderboard:{n % 50} 0 -1 WITHSCORES", f"LRANGE queue:{n % 20} 0 999", "KEYS *",
        f"MGET key:{n} key:{n + 1} key:{n + 2} key:{n + 3} key:{n + 4}", f"DEL session:{n}",
        f"SMEMBERS tags:{n % 1000}", f"EVALSHA 3f2a9c 1 lock:{n} 30000", "INFO all", "CONFIG GET maxmemory",
    ], weights=[30, 15, 10, 8, 8, 5, 2, 6, 5, 5, 3, 2, 1])


def bulk_insert(db_path: Path, instance_id: str, nodes: list[Replication], entries: int, now_ms: int) -> float:
    """Insert ``entries`` rows (oldest first, ids rising with time, as harvests store them); returns seconds."""
    t = time.perf_counter()
    rng = random.Random(2026)
    start = now_ms - 7 * DAY_MS + 3_600_000  # an hour inside the 7-day window and the retention
    span = 7 * DAY_MS - 3_600_000 - 60_000
    times = sorted(start + int(rng.random() * span) for _ in range(entries))
    redis_ids = {n.id: 0 for n in nodes}
    addrs = [f"10.0.{rng.randrange(256)}.{rng.randrange(1, 255)}:{rng.randrange(30000, 60000)}" for _ in range(300)]
    names = ["", "", "", "api", "worker", "cron"]
    shapes: dict[str, tuple[str, str]] = {}
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-262144")  # 256 MiB: the four indexes stay in memory while loading
    sql = f"INSERT INTO slowlog_entries ({COLUMNS.split(', ', 1)[1]}) VALUES ({', '.join('?' * 15)})"
    batch = 100_000
    for lo in range(0, entries, batch):
        rows = []
        for ts in times[lo:lo + batch]:
            node = nodes[rng.randrange(len(nodes))]
            redis_ids[node.id] += 1
            cmd = _commands(rng)[0]
            shape = shapes.get(cmd)
            if shape is None:
                args = cmd.split(" ")
                shape = shapes[cmd] = (command_name(args), fingerprint(args))
            # Log-normal above the default 10 ms threshold: median ~13 ms, a tail into seconds.
            duration = 10_000 + int(rng.lognormvariate(math.log(3_000), 1.4))
            rows.append((instance_id, node.id, "b" * 40, redis_ids[node.id], ts, duration, cmd, shape[0], shape[1],
                         "", node.host, node.port, "master" if node.role == "master" else "slave",
                         rng.choice(addrs), rng.choice(names)))
        with con:
            con.executemany(sql, rows)
        if len(shapes) > 200_000:
            shapes.clear()
    with con:  # the hourly counts and the rollups of slow-log top the harvester keeps beside the entries
        con.execute("INSERT INTO slowlog_hour_counts (instance_id, hour_ms, entries) "
                    "SELECT instance_id, start_time_ms - start_time_ms % 3600000, count(*) FROM slowlog_entries "
                    "WHERE instance_id = ? GROUP BY 1, 2", (instance_id,))
        con.execute("INSERT INTO slowlog_hour_groups (instance_id, hour_ms, replication_id, command_name, fingerprint, "
                    "entries, total_us, max_us, first_ms, last_ms) "
                    "SELECT instance_id, start_time_ms - start_time_ms % 3600000, replication_id, command_name, "
                    "fingerprint, count(*), sum(duration_us), max(duration_us), min(start_time_ms), "
                    "max(start_time_ms) FROM slowlog_entries WHERE instance_id = ? GROUP BY 1, 2, 3, 4, 5",
                    (instance_id,))
    con.execute("ANALYZE")
    con.close()
    return time.perf_counter() - t


# ---------------------------------------------------------------------------
# Redis


def produce(nodes, total: int) -> None:
    """Make the nodes log ``total`` new slow entries between them (spread as evenly as possible)."""
    per, extra = divmod(total, len(nodes))
    for i, node in enumerate(nodes):
        with contextlib.closing(node.client()) as c:
            pipe = c.pipeline(transaction=False)
            for _ in range(per + (i < extra)):
                pipe.execute_command("DEBUG", "SLEEP", SLEEP_S)
            pipe.execute()


def slowlog_len(nodes) -> int:
    total = 0
    for node in nodes:
        with contextlib.closing(node.client()) as c:
            total += c.execute_command("SLOWLOG", "LEN")
    return total


# ---------------------------------------------------------------------------
# Measuring


def floor_query(con: sqlite3.Connection, instance_id: str, lo: int, hi: int, sort_key: str,
                offset: int) -> tuple[int, list[int], float, float]:
    """What list_slowlog answers (total, page, lost), by the plan it uses, as plain SQL."""
    t0 = time.perf_counter()
    first_hour = lo + (-lo) % HOUR_MS
    end_hour = (hi + 1) - (hi + 1) % HOUR_MS
    total, edges = 0, [(lo, hi)]
    if first_hour < end_hour:
        total = con.execute("SELECT coalesce(sum(entries), 0) FROM slowlog_hour_counts WHERE instance_id = ? "
                            "AND hour_ms >= ? AND hour_ms < ?", (instance_id, first_hour, end_hour)).fetchone()[0]
        edges = [(lo, first_hour - 1), (end_hour, hi)]
    for low, high in edges:
        if low <= high:
            total += con.execute(f"SELECT count(*) FROM slowlog_entries WHERE {WHERE}",
                                 (instance_id, low, high)).fetchone()[0]
    t1 = time.perf_counter()
    where = WHERE_DURATION_INDEX if sort_key == "duration" and total > WIDE_WINDOW else WHERE
    rows = con.execute(f"SELECT {COLUMNS} FROM slowlog_entries WHERE {where} ORDER BY {ORDER[sort_key]} "
                       f"LIMIT ? OFFSET ?", (instance_id, lo, hi, PAGE, offset)).fetchall()
    con.execute("SELECT coalesce(sum(lost_entries), 0) FROM slowlog_cursors WHERE instance_id = ?",
                (instance_id,)).fetchone()
    t2 = time.perf_counter()
    return total, [r[0] for r in rows], t1 - t0, t2 - t1


def naive_query(con: sqlite3.Connection, instance_id: str, lo: int, hi: int, sort_key: str,
                offset: int) -> tuple[int, list[int]]:
    total = con.execute(f"SELECT count(*) FROM slowlog_entries WHERE {WHERE}", (instance_id, lo, hi)).fetchone()[0]
    rows = con.execute(f"SELECT {COLUMNS} FROM slowlog_entries WHERE {WHERE} ORDER BY {ORDER[sort_key]} "
                       f"LIMIT ? OFFSET ?", (instance_id, lo, hi, PAGE, offset)).fetchall()
    return total, [r[0] for r in rows]


TOP_GROUP_BY = ("fingerprint", "command", "node")
TOP_KEYS = {"fingerprint": "fingerprint", "command": "command_name", "node": "replication_id"}
TOP_LIMIT = 10


def top_floor(con: sqlite3.Connection, instance_id: str, lo: int, hi: int, group_by: str) -> list[TopGroup]:
    """Slow-log top as plain SQL, by the plan slowlog_top uses (see the module docstring)."""
    key = TOP_KEYS[group_by]
    first_hour = lo + (-lo) % HOUR_MS
    end_hour = (hi + 1) - (hi + 1) % HOUR_MS
    edges = [(lo, hi), (1, 0)] if first_hour >= end_hour else [(lo, first_hour - 1), (end_hour, hi)]
    edge = (f"SELECT {key}, count(*), sum(duration_us), max(duration_us), min(start_time_ms), max(start_time_ms) "
            f"FROM slowlog_entries WHERE instance_id = ? AND start_time_ms BETWEEN ? AND ? GROUP BY {key}")
    rows = con.execute(
        f"SELECT key, sum(n), sum(total), max(top), min(first), max(last), count(*) OVER () FROM ("
        f"SELECT {key} AS key, entries AS n, total_us AS total, max_us AS top, first_ms AS first, last_ms AS last "
        f"FROM slowlog_hour_groups WHERE instance_id = ? AND hour_ms >= ? AND hour_ms < ? "
        f"UNION ALL {edge} UNION ALL {edge}) GROUP BY key ORDER BY sum(total) DESC, key LIMIT ?",
        (instance_id, first_hour, end_hour, instance_id, *edges[0], instance_id, *edges[1], TOP_LIMIT)).fetchall()
    walk = f"FROM slowlog_entries WHERE instance_id = ? AND {key} = ? AND start_time_ms + 0 BETWEEN ? AND ?"
    tail = (f"SELECT (SELECT id {walk} ORDER BY duration_us DESC, id DESC LIMIT 1), "
            f"(SELECT duration_us {walk} ORDER BY duration_us DESC LIMIT 1 OFFSET ?)")
    groups = []
    for name, n, total, top, first, last, _ in rows:
        sample, p99 = con.execute(tail, (instance_id, name, lo, hi, instance_id, name, lo, hi,
                                         n - (99 * n + 99) // 100)).fetchone()
        groups.append(TopGroup(name, n, total, top, first, last, p99, sample))
    return groups


def top_naive(con: sqlite3.Connection, instance_id: str, lo: int, hi: int, group_by: str) -> list[TopGroup]:
    """The same answer in one statement over the window's entries, left to SQLite."""
    key = TOP_KEYS[group_by]
    rows = con.execute(
        "SELECT key, count(*), sum(d), max(d), min(t), max(t), max(CASE WHEN rn = n - (99 * n + 99) / 100 + 1 "
        "THEN d END), max(CASE WHEN rn = 1 THEN id END) FROM ("
        f"SELECT {key} AS key, duration_us AS d, start_time_ms AS t, id, row_number() OVER (PARTITION BY {key} "
        f"ORDER BY duration_us DESC, id DESC) AS rn, count(*) OVER (PARTITION BY {key}) AS n "
        "FROM slowlog_entries WHERE instance_id = ? AND start_time_ms BETWEEN ? AND ?) "
        "GROUP BY key ORDER BY sum(d) DESC, key LIMIT ?", (instance_id, lo, hi, TOP_LIMIT)).fetchall()
    return [TopGroup(*row) for row in rows]


def query_plans(con: sqlite3.Connection, instance_id: str, lo: int, hi: int) -> list[str]:
    def plan(sql: str, params: tuple) -> str:
        return "; ".join(r[-1] for r in con.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall())
    page = f"SELECT {COLUMNS} FROM slowlog_entries WHERE {{}} ORDER BY {{}} LIMIT ? OFFSET ?"
    params = (instance_id, lo, hi, PAGE, 0)
    return [
        "floor, page by duration: " + plan(page.format(WHERE_DURATION_INDEX, ORDER["duration"]), params),
        "floor, page by start_time: " + plan(page.format(WHERE, ORDER["start_time"]), params),
        "floor, whole hours: " + plan("SELECT coalesce(sum(entries), 0) FROM slowlog_hour_counts WHERE "
                                      "instance_id = ? AND hour_ms >= ? AND hour_ms < ?", (instance_id, lo, hi)),
        "naive, page by duration: " + plan(page.format(WHERE, ORDER["duration"]), params),
        "naive, count: " + plan(f"SELECT count(*) FROM slowlog_entries WHERE {WHERE}", (instance_id, lo, hi)),
        "top floor, edges: " + plan("SELECT fingerprint, count(*), sum(duration_us) FROM slowlog_entries WHERE "
                                    f"{WHERE} GROUP BY fingerprint", (instance_id, lo, hi)),
        "top floor, p99 walk: " + plan("SELECT duration_us FROM slowlog_entries WHERE instance_id = ? AND "
                                       "fingerprint = ? AND start_time_ms + 0 BETWEEN ? AND ? ORDER BY duration_us "
                                       "DESC LIMIT 1 OFFSET 100", (instance_id, "GET ?", lo, hi)),
    ]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    fs = subprocess.run(["df", "--output=fstype", str(OUT)], capture_output=True, text=True).stdout.split()[-1]
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    return (f"{os.cpu_count()} vCPU {cpu}, Linux {platform.release()}, {fs} (bench/out), Python "
            f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, redis-server {redis_version[2:]}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000, help="slow-log rows to load (default 1,000,000)")
    ap.add_argument("--reps", type=int, default=9,
                    help="timed repetitions of each query and of the harvest (default 9)")
    ap.add_argument("--keep", action="store_true", help=f"keep the work directory under {OUT} (database, node dirs)")
    args = ap.parse_args()
    if args.entries < 1000:
        sys.exit("--entries must be at least 1000")
    CASES = cases(args.entries)

    OUT.mkdir(exist_ok=True)
    work = OUT / f"slowlog-{os.getpid()}"
    data_dir = work / "data"
    data_dir.mkdir(parents=True)
    db_path = data_dir / "dcslog.db"
    server_key = Fernet.generate_key()
    settings = Settings(data_dir=data_dir, host="127.0.0.1", port=free_port(), server_key=server_key.decode(),
                        slowlog_interval=3600, database_url=None, object_store=None, config_file=None)
    url = settings.effective_database_url
    keyring = Keyring(server_key)
    nodeset = NodeSet(work / "redis")
    runner = asyncio.Runner()
    engine = None
    try:
        # 1. Database, key, six real nodes, the instance, a token.
        t = time.perf_counter()
        upgrade(url)
        token = admin.cmd_token_create(argparse.Namespace(project_id=PROJECT, role="viewer"), settings)["token"]
        deployment = start_replicated(nodeset, REPLICA_HOSTS)
        engine = create_engine(url)
        sessionmaker = create_sessionmaker(engine)
        inline_reads = InlineReads(url)
        api_sessionmaker = create_sessionmaker(engine, inline_reads=inline_reads)  # as the app's sessions

        async def setup():
            async with sessionmaker() as session:
                instance = await import_instance(session, keyring, system_actor(), project_id=PROJECT, name="bench",
                                                 redis_url=deployment.primary.url)
                nodes = list(await session.scalars(select(Replication).where(Replication.instance_id == instance.id)
                                                   .order_by(Replication.group_index, Replication.position)))
            return instance, nodes

        instance, nodes = runner.run(setup())
        if len(nodes) != 6:
            sys.exit(f"expected 6 nodes in the imported instance, found {len(nodes)}")
        print(f"set up: database, 6 redis-server nodes ({instance.cache_mode}), instance {instance.id} "
              f"in {time.perf_counter() - t:.1f} s")

        # 2. Bulk load.
        now_ms = int(time.time() * 1000)
        loaded = bulk_insert(db_path, instance.id, nodes, args.entries, now_ms)
        print(f"loaded {args.entries:,} rows + ANALYZE in {loaded:.1f} s "
              f"({db_path.stat().st_size / 2**20:.0f} MiB database)")
        lo, hi = now_ms - 7 * DAY_MS, now_ms

        # 3. Queries: floor, naive SQL, service, HTTP, interleaved.
        floor_con = sqlite3.connect(db_path)
        plans = query_plans(floor_con, instance.id, lo, hi)

        async def service(sort_key: str, offset: int):
            """list_slowlog's answer and its time, taken inside the loop (not the Runner's own start-up)."""
            t = time.perf_counter()
            async with api_sessionmaker() as session:
                answer = await list_slowlog(session, instance, start_ms=lo, end_ms=hi, offset=offset, limit=PAGE,
                                            sort_key=sort_key, sort_dir="desc")
            return answer, time.perf_counter() - t

        times: dict[tuple[str, str], list[float]] = {(c[0], w): [] for c in CASES for w in WAYS}
        times.update({(f"top by {g}", w): [] for g in TOP_GROUP_BY for w in WAYS})
        floor_parts: dict[str, list[tuple[float, float]]] = {c[0]: [] for c in CASES}
        with running_app(settings, run_worker=False) as base, \
                httpx.Client(base_url=base, headers={"X-Auth-Token": token}, timeout=60) as http:
            path = f"/v2/{PROJECT}/instances/{instance.id}/slowlog"
            for rep in range(args.reps + 1):  # rep 0 warms caches and checks the answers; not timed
                for label, sort_key, offset, _ in CASES:
                    if rep <= NAIVE_REPS:
                        t = time.perf_counter()
                        n_total, n_ids = naive_query(floor_con, instance.id, lo, hi, sort_key, offset)
                        if rep:
                            times[label, "naive"].append(time.perf_counter() - t)
                    t0 = time.perf_counter()
                    total, ids, t_count, t_page = floor_query(floor_con, instance.id, lo, hi, sort_key, offset)
                    t1 = time.perf_counter()
                    (s_total, s_items, _lost), t_service = runner.run(service(sort_key, offset))
                    t2 = time.perf_counter()
                    params = {"start_time": lo, "end_time": hi, "limit": PAGE}
                    if sort_key != "start_time":
                        params["sort_key"] = sort_key
                    if offset:
                        params["offset"] = offset
                    response = http.get(path, params=params)
                    t3 = time.perf_counter()
                    if rep == 0:
                        body = response.json()
                        if response.status_code != 200:
                            sys.exit(f"HTTP {response.status_code}: {response.text}")
                        if not (total == n_total == s_total == body["total_num"] == args.entries):
                            sys.exit(f"{label}: totals differ: sql {total}, naive {n_total}, service {s_total}, "
                                     f"http {body['total_num']}, loaded {args.entries}")
                        if not (ids == n_ids == [i["id"] for i in s_items] == [i["id"] for i in body["slowlogs"]]) \
                                or len(ids) != PAGE:
                            sys.exit(f"{label}: pages differ between SQL, naive SQL, service and HTTP")
                        continue
                    times[label, "floor"].append(t1 - t0)
                    times[label, "service"].append(t_service)
                    times[label, "http"].append(t3 - t2)
                    floor_parts[label].append((t_count, t_page))

            # 3b. Slow-log top: floor, naive SQL, service, HTTP, interleaved.
            async def service_top(group_by: str):
                t = time.perf_counter()
                async with api_sessionmaker() as session:
                    answer = await slowlog_top(session, instance, start_ms=lo, end_ms=hi, group_by=group_by,
                                               sort_key="total", limit=TOP_LIMIT)
                return answer, time.perf_counter() - t

            top_path = f"/v2/{PROJECT}/instances/{instance.id}/slowlog/top"
            for rep in range(args.reps + 1):  # rep 0 warms caches and checks the answers; not timed
                for group_by in TOP_GROUP_BY:
                    label = f"top by {group_by}"
                    if rep <= NAIVE_REPS:
                        t = time.perf_counter()
                        naive = top_naive(floor_con, instance.id, lo, hi, group_by)
                        if rep:
                            times[label, "naive"].append(time.perf_counter() - t)
                    t0 = time.perf_counter()
                    floor = top_floor(floor_con, instance.id, lo, hi, group_by)
                    t1 = time.perf_counter()
                    answer, t_service = runner.run(service_top(group_by))
                    t2 = time.perf_counter()
                    response = http.get(top_path, params={"start_time": lo, "end_time": hi, "group_by": group_by})
                    t3 = time.perf_counter()
                    if rep == 0:
                        if response.status_code != 200:
                            sys.exit(f"HTTP {response.status_code}: {response.text}")
                        expected = [top_item(g) for g in floor]
                        if not (expected == [top_item(g) for g in naive] == answer["groups"]
                                == response.json()["groups"]) or len(expected) != min(TOP_LIMIT, len(floor)):
                            sys.exit(f"{label}: groups differ between SQL, naive SQL, service and HTTP")
                        if sum(g.entries for g in floor) > args.entries or not floor:
                            sys.exit(f"{label}: {sum(g.entries for g in floor)} entries in the groups")
                        continue
                    times[label, "floor"].append(t1 - t0)
                    times[label, "service"].append(t_service)
                    times[label, "http"].append(t3 - t2)
        floor_con.close()

        # 4. Harvest: steady state (cursors set), 128 new entries on the 6 nodes before each timed call.
        for node in deployment.nodes:
            with contextlib.closing(node.client()) as c:
                c.config_set("slowlog-log-slower-than", SLOWER_THAN_US)
                c.config_set("slowlog-max-len", HARVEST_TOTAL * (args.reps + 2))
                c.execute_command("SLOWLOG", "RESET")
        connector = NodeConnector(deployment.primary.url, settings.redis_timeout)

        async def read_only() -> int:
            """The Redis side alone: the 6 reads of a harvest, concurrently, nothing stored."""
            async with sessionmaker() as session:
                cursors = {c.replication_id: c for c in await session.scalars(
                    select(SlowlogCursor).where(SlowlogCursor.instance_id == instance.id))}
            results = await asyncio.gather(*(read_slowlog(
                connector, n.host, n.port, cursors[n.id].run_id, cursors[n.id].last_id) for n in nodes))
            return sum(len(r.entries) for r in results)

        def stored_rows() -> int:
            with contextlib.closing(sqlite3.connect(db_path)) as con:
                return con.execute("SELECT count(*) FROM slowlog_entries WHERE instance_id = ?",
                                   (instance.id,)).fetchone()[0]

        produce(deployment.nodes, HARVEST_TOTAL)
        runner.run(harvest_instance(sessionmaker, keyring, instance, settings.redis_timeout))  # sets the cursors
        harvest_times, read_times = [], []
        for rep in range(args.reps):
            before_len = slowlog_len(deployment.nodes)
            produce(deployment.nodes, HARVEST_TOTAL)
            if slowlog_len(deployment.nodes) - before_len != HARVEST_TOTAL:
                sys.exit("the nodes did not log exactly 128 new entries (something else crossed the threshold)")
            before = stored_rows()
            t0 = time.perf_counter()
            seen = runner.run(read_only())
            t1 = time.perf_counter()
            stored = runner.run(harvest_instance(sessionmaker, keyring, instance, settings.redis_timeout))
            t2 = time.perf_counter()
            after = stored_rows()
            if seen != HARVEST_TOTAL or sum(stored.values()) != HARVEST_TOTAL or after - before != HARVEST_TOTAL:
                sys.exit(f"harvest rep {rep}: read {seen}, harvest reported {sum(stored.values())}, "
                         f"table grew by {after - before}; expected {HARVEST_TOTAL} each")
            read_times.append(t1 - t0)
            harvest_times.append(t2 - t1)
    finally:
        if engine is not None:
            inline_reads.close()
            runner.run(engine.dispose())
        runner.close()
        nodeset.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    # 5. Report.
    med = {key: statistics.median(v) for key, v in times.items()}
    print(f"\n{machine()}")
    print(f"{args.entries:,} rows over 7 days, one instance of 6 nodes; 7-day window, limit {PAGE}; "
          f"medians of {args.reps} interleaved reps\n")
    for line in plans:
        print(f"  plan, {line}")
    print(f"\n| {'Query':<46} | {'SQL floor':>9} | {'(total + page)':>21} | {'list_slowlog':>12} | "
          f"{'vs floor':>8} | {'HTTP':>9} | {'vs floor':>8} | {'naive SQL':>9} |")
    print(f"|{'-' * 48}|{'-' * 10}:|{'-' * 22}:|{'-' * 13}:|{'-' * 9}:|{'-' * 10}:|{'-' * 9}:|{'-' * 10}:|")
    for label, *_ in CASES:
        floor = med[label, "floor"]
        count = statistics.median(p[0] for p in floor_parts[label])
        page = statistics.median(p[1] for p in floor_parts[label])
        print(f"| {label:<46} | {ms(floor):>9} | {ms(count):>8} + {ms(page):>10} | {ms(med[label, 'service']):>12} | "
              f"{med[label, 'service'] / floor:>7.2f}x | {ms(med[label, 'http']):>9} | "
              f"{med[label, 'http'] / floor:>7.2f}x | {ms(med[label, 'naive']):>9} |")
    print(f"\n| {'Slow-log top, 7 days, limit 10, by total':<46} | {'SQL floor':>9} | {'slowlog_top':>12} | "
          f"{'vs floor':>8} | {'HTTP':>9} | {'vs floor':>8} | {'naive SQL':>9} |")
    print(f"|{'-' * 48}|{'-' * 10}:|{'-' * 13}:|{'-' * 9}:|{'-' * 10}:|{'-' * 9}:|{'-' * 10}:|")
    for group_by in TOP_GROUP_BY:
        label = f"top by {group_by}"
        floor = med[label, "floor"]
        print(f"| {label:<46} | {ms(floor):>9} | {ms(med[label, 'service']):>12} | "
              f"{med[label, 'service'] / floor:>7.2f}x | {ms(med[label, 'http']):>9} | "
              f"{med[label, 'http'] / floor:>7.2f}x | {ms(med[label, 'naive']):>9} |")
    h, r = statistics.median(harvest_times), statistics.median(read_times)
    print(f"\n| {'Harvest (128 new entries on 6 nodes)':<46} | {'Median':>9} | {'min-max':>17} |")
    print(f"|{'-' * 48}|{'-' * 10}:|{'-' * 18}:|")
    print(f"| {'harvest_instance (read + store)':<46} | {ms(h):>9} | "
          f"{min(harvest_times) * 1000:>7.1f}-{max(harvest_times) * 1000:.1f} ms |")
    print(f"| {'the 6 reads alone (read_slowlog, gathered)':<46} | {ms(r):>9} | "
          f"{min(read_times) * 1000:>7.1f}-{max(read_times) * 1000:.1f} ms |")

    checks = []
    for label, _, _, target in CASES:
        if not target:
            continue
        floor = med[label, "floor"]
        service = med[label, "service"]
        checks.append((f"list_slowlog, {label}: {service / floor:.2f}x the SQL floor (<= 2x)", service <= 2 * floor))
        for way, name in (("service", "list_slowlog"), ("http", "HTTP")):
            checks.append((f"{name}, {label}: {ms(med[label, way])} (< 50 ms)", med[label, way] < 0.050))
    for group_by in TOP_GROUP_BY:
        label = f"top by {group_by}"
        floor, service = med[label, "floor"], med[label, "service"]
        checks.append((f"slowlog_top, {label}: {service / floor:.2f}x the SQL floor (<= 2x)", service <= 2 * floor))
        for way, name in (("service", "slowlog_top"), ("http", "HTTP")):
            checks.append((f"{name}, {label}: {ms(med[label, way])} (< 200 ms)", med[label, way] < 0.200))
    checks.append((f"harvest_instance, 128 entries on 6 nodes: {ms(h)} (< 100 ms)", h < 0.100))
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
