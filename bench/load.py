#!/usr/bin/env python3
"""Load: 200 concurrent clients listing files and making links while 20 collections run, on 1 and 2 processes.

Sets up, under bench/out/load/: 20 real redis-server nodes (127.0.0.2 …
127.0.0.21), each imported with the CLI as a single-node instance whose run log
(``--log-file``) is a synthetic file of three days (today-2 … today, UTC),
--mib-per-day MiB each; one token from the CLI; all three days of every node
collected once (``query_time=3``) before the clock starts.

Then, for 1 and then 2 server processes (2: ``dcslog serve`` twice on two
ports, same data dir, same DCSLOG_SERVER_KEY, same SQLite database, the second
with ``--no-worker``), for --seconds:

  clients      200 connections from wrk (C, Lua scripts, ``-t1`` each): 100 on
               ``GET …/redislog?log_type=run`` round-robin over the 20 instances,
               100 on ``POST …/redislog/{id}/links`` for each instance's
               *yesterday* file (today's is being re-collected, and a link to a
               file in ``creating`` is a 400 by design). With 2 processes each kind
               is split 50/50 over the two ports (4 wrk processes).
  collections  an asyncio driver (httpx) fires ``POST …/redislog?query_time=0`` for
               all 20 instances at the start and re-fires each as soon as its
               today file leaves ``creating`` (polling the list every 0.25 s),
               alternating the two ports, so 20 collections are queued or running
               nearly all the time.

Any non-2xx answer (204 on an empty list is 2xx) or transport error, from wrk
or the driver, is an error; the target is zero errors in both modes (exit 1
otherwise). p50/p99 are wrk's (per kind, merged over wrk processes by the
request-weighted mean of each process's percentile). The load generators run on
the same 2 vCPUs as the servers: wrk is light, the driver's ~80 polls/s too, but
both take CPU the servers would otherwise have.

    python bench/load.py [--seconds 60] [--clients 200] [--mib-per-day 4] [--processes 1,2] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# bench/http_speed.py's helpers: a script's own directory is first on sys.path, so its sibling imports
# as a top-level module (`python bench/load.py`, as ./dev bench runs it).
from http_speed import (
    OUT,
    PROJECT,
    Procs,
    cli,
    dcslog_env,
    lua_script,
    machine,
    parse_wrk,
    start_dcslog,
    wait_collected,
    write_log,
    wrk_args,
)

from dcslog.testing.ports import free_port

NODES = 20
HOSTS = [f"127.0.0.{i}" for i in range(2, 2 + NODES)]


async def run_wrk_async(url: str, script: Path, seconds: float, connections: int) -> dict:
    proc = await asyncio.create_subprocess_exec(*wrk_args(url, script, seconds, connections, 1, "30s"),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return parse_wrk(out.decode(), err.decode())


async def collections(bases: list[str], instances: list[str], headers: dict, today: str, seconds: float) -> dict:
    """Fire today's collection on every instance, re-fire as each finishes, until ``seconds`` are up."""
    import httpx

    stats = {"fired": 0, "succeed": 0, "failed": 0, "errors": 0, "first_error": "", "durations": [],
             "in_flight_samples": []}
    in_flight = set()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=NODES * 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        def error(what: str) -> None:
            stats["errors"] += 1
            stats["first_error"] = stats["first_error"] or what

        async def one(n: int, instance_id: str) -> None:
            k = n
            while time.monotonic() < deadline:
                base = bases[k % len(bases)]
                k += 1
                api = f"{base}/v2/{PROJECT}/instances/{instance_id}/redislog"
                try:
                    r = await client.post(api, params={"log_type": "run", "query_time": 0}, headers=headers)
                except httpx.TransportError as exc:
                    error(f"POST redislog: {exc!r}")
                    await asyncio.sleep(0.25)
                    continue
                if r.status_code != 204:
                    error(f"POST redislog: {r.status_code} {r.text[:200]}")
                    await asyncio.sleep(0.25)
                    continue
                fired = time.monotonic()
                stats["fired"] += 1
                in_flight.add(instance_id)
                while time.monotonic() < deadline + 30:  # let the last ones finish, but not forever
                    await asyncio.sleep(0.25)
                    try:
                        r = await client.get(api, params={"log_type": "run"}, headers=headers)
                    except httpx.TransportError as exc:
                        error(f"GET redislog: {exc!r}")
                        continue
                    if r.status_code != 200:
                        error(f"GET redislog: {r.status_code} {r.text[:200]}")
                        continue
                    item = next(i for i in r.json()["file_list"] if i["time"] == today)
                    if item["status"] != "creating":
                        stats[item["status"]] += 1
                        if item["status"] == "failed":
                            error(f"collection failed: {item.get('error_msg')}")
                        stats["durations"].append(time.monotonic() - fired)
                        break
                in_flight.discard(instance_id)

        async def sample() -> None:
            while time.monotonic() < deadline:
                stats["in_flight_samples"].append(len(in_flight))
                await asyncio.sleep(0.5)

        await asyncio.gather(sample(), *(one(n, i) for n, i in enumerate(instances)))
    return stats


def merge(results: list[dict]) -> dict:
    total = sum(r["requests"] for r in results)
    weighted = lambda key: sum(r[key] * r["requests"] for r in results) / max(total, 1) / 1000  # noqa: E731
    return {"requests": total, "rps": sum(r["rps"] for r in results), "p50": weighted("p50_us"),
            "p99": weighted("p99_us"), "max": max(r["max_us"] for r in results) / 1000,
            "errors": sum(r["errors"] for r in results),
            "first_bad": next((r["first_bad"] for r in results if r["first_bad"]), "")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=200, help="wrk connections in all (half list, half link)")
    parser.add_argument("--mib-per-day", type=int, default=4)
    parser.add_argument("--processes", default="1,2", help="server process counts to run, in order (default 1,2)")
    parser.add_argument("--keep", action="store_true", help="keep bench/out/load")
    args = parser.parse_args()

    import httpx
    from cryptography.fernet import Fernet

    from dcslog.testing.redis_servers import NodeSet

    work = OUT / "load"
    shutil.rmtree(work, ignore_errors=True)
    today = datetime.now(UTC).date()
    logs = work / "logs"
    first = logs / "node-00.log"
    write_log(first, [(today - timedelta(days=d), args.mib_per_day * 2**20) for d in (2, 1, 0)])
    for n in range(1, NODES):
        shutil.copyfile(first, logs / f"node-{n:02d}.log")
    server_key = Fernet.generate_key().decode()
    procs = Procs()
    nodes = NodeSet(work / "nodes")
    results = {}
    try:
        redis_nodes = [nodes.new(host) for host in HOSTS]
        ports = [free_port(), free_port()]
        envs = [dcslog_env(work / "data", server_key, p) for p in ports]
        env = envs[0]
        server = start_dcslog(procs, env, work / "setup-serve.log")
        token = cli(env, "token", "create", "--project-id", PROJECT, "--role", "operator")["token"]
        headers = {"X-Auth-Token": token}
        instances = []
        for n, node in enumerate(redis_nodes):
            instances.append(cli(env, "instances", "import", "--project-id", PROJECT, "--name", f"n{n}",
                                 "--redis", f"redis://{node.address}",
                                 "--log-file", f"{node.address}={logs / f'node-{n:02d}.log'}")["instance_id"])
        base = f"http://127.0.0.1:{ports[0]}"
        t = time.perf_counter()
        for instance_id in instances:
            r = httpx.post(f"{base}/v2/{PROJECT}/instances/{instance_id}/redislog",
                           params={"log_type": "run", "query_time": 3}, headers=headers)
            assert r.status_code == 204, r.text
        yesterday = (today - timedelta(days=1)).isoformat()
        files = {i: wait_collected(base, i, headers, yesterday)["id"] for i in instances}
        for i in instances:
            wait_collected(base, i, headers, today.isoformat())
        print(f"setup: {NODES} nodes, {NODES} instances, 3 days x {args.mib_per_day} MiB each collected "
              f"in {time.perf_counter() - t:.1f}s")
        procs.stop(server)
        print(f"machine: {machine()}")

        lua = work / "lua"
        lua.mkdir()
        list_script = lua_script(lua / "list.lua", "GET", headers,
                                 [f"/v2/{PROJECT}/instances/{i}/redislog?log_type=run" for i in instances])
        link_script = lua_script(lua / "link.lua", "POST", headers,
                                 [f"/v2/{PROJECT}/instances/{i}/redislog/{f}/links" for i, f in files.items()])

        for count in [int(c) for c in args.processes.split(",")]:
            servers = [start_dcslog(procs, envs[0], work / f"serve-{count}p-a.log")]
            if count == 2:
                servers.append(start_dcslog(procs, envs[1], work / f"serve-{count}p-b.log", "--no-worker"))
            bases = [f"http://127.0.0.1:{p}" for p in ports[:count]]
            per = args.clients // 2 // count

            async def run(bases=bases, per=per, count=count):
                wrks = [run_wrk_async(b, s, args.seconds, per) for s in (list_script, link_script) for b in bases]
                done = await asyncio.gather(
                    collections(bases, instances, headers, today.isoformat(), args.seconds), *wrks)
                return done[0], done[1:1 + count], done[1 + count:]
            print(f"{count} process(es): {args.clients} clients, {args.seconds:g}s …", flush=True)
            coll, lists, links = asyncio.run(run())
            results[count] = {"list": merge(lists), "link": merge(links), "collections": coll}
            for server in reversed(servers):
                procs.stop(server)
    finally:
        procs.close()
        nodes.close()

    failures = []
    print(f"\nLoad: {args.clients} wrk connections for {args.seconds:g}s while 20 collections "
          f"({args.mib_per_day} MiB each) run; SQLite shared")
    print("| Processes | Request | req/s | p50 | p99 | max | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for count, r in results.items():
        for kind, label in (("list", "GET …/redislog"), ("link", "POST …/links")):
            m = r[kind]
            print(f"| {count} | {label} | {m['rps']:,.0f} | {m['p50']:.0f} ms | {m['p99']:.0f} ms | "
                  f"{m['max']:.0f} ms | {m['errors']} |")
            if m["errors"]:
                failures.append(f"{count} process(es), {kind}: {m['errors']} errors, first: {m['first_bad'][:200]}")
    print("\n| Processes | collections fired | succeeded | failed | per second | median fire→done | "
          "mean in flight | driver errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for count, r in results.items():
        c = r["collections"]
        med = statistics.median(c["durations"]) if c["durations"] else float("nan")
        mean_in_flight = statistics.mean(c["in_flight_samples"]) if c["in_flight_samples"] else 0
        print(f"| {count} | {c['fired']} | {c['succeed']} | {c['failed']} | {c['succeed'] / args.seconds:.1f} | "
              f"{med:.1f} s | {mean_in_flight:.1f} | {c['errors']} |")
        if c["errors"]:
            failures.append(f"{count} process(es), collections: {c['errors']} errors, first: {c['first_error'][:200]}")
    if 1 in results and 2 in results:
        for kind in ("list", "link"):
            print(f"2 vs 1 process, {kind}: {results[2][kind]['rps'] / results[1][kind]['rps']:.2f}x req/s")
    if not args.keep:
        shutil.rmtree(work / "data", ignore_errors=True)
        shutil.rmtree(work / "logs", ignore_errors=True)
    print(json.dumps({str(k): {kk: vv for kk, vv in v.items() if kk != "collections"} for k, v in results.items()}))
    for failure in failures:
        print(f"MISSED: {failure}")
    print("target (zero errors) met" if not failures else f"{len(failures)} target(s) missed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
