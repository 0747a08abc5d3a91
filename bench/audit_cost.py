#!/usr/bin/env python3
"""Benchmark: what the audit trail costs the link paths — a tree before it against a tree with it, side by side.

Two real ``dcslog serve`` processes on the embedded default (SQLite + a local directory), each
with its own data directory: one running ``--before-src`` (a copy of ``src/`` from before the
audit trail, e.g. ``git archive ad5a0f1 src | tar -x -C /tmp/before``), one running this tree's
``src/``. One redis-server on 127.0.0.2; a small day (``--size-kib``) collected on each. Then,
interleaved rounds of ``wrk -t1 -c{--connections}`` (medians of req/s, p50 and p99):

  download     GET on a download link (the small file: the per-request cost is what shows;
               a large file's time is sendfile's, unchanged)
  link         POST …/redislog/{id}/links with X-Auth-Token (the link endpoint: now a commit)
  list+flood   GET …/redislog (ListRedislog) while a second wrk downloads on the same server:
               what a download's commit does to the read cache of the requests beside it

    python bench/audit_cost.py --before-src /tmp/before/src [--rounds 5] [--wrk-seconds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# bench/http_speed.py's helpers: a script's own directory is first on sys.path (as bench/load.py does).
from http_speed import (
    OUT,
    Procs,
    dcslog_env,
    lua_script,
    machine,
    parse_wrk,
    run_wrk,
    wait_collected,
    wait_http,
    write_log,
    wrk_args,
)

from dcslog.testing.ports import free_port

PROJECT = "benchaudit"
ROOT = Path(__file__).resolve().parent.parent


def cli(env: dict, *args: str):
    done = subprocess.run([sys.executable, "-m", "dcslog.cli", *args, "--json"], env=env, capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"dcslog {' '.join(args)}: {done.stderr}")
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before-src", required=True, help="src/ of the tree before the audit trail")
    parser.add_argument("--size-kib", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    import httpx
    from cryptography.fernet import Fernet

    from dcslog.testing.redis_servers import NodeSet

    work = OUT / "audit_cost"
    shutil.rmtree(work, ignore_errors=True)
    log_file = work / "redis.log"
    today = datetime.now(UTC).date()
    write_log(log_file, [(today, args.size_kib * 1024)], block=1024)
    procs, nodes = Procs(), NodeSet(work / "nodes")
    trees = {"before": str(Path(args.before_src).resolve()), "after": str(ROOT / "src")}
    sites: dict[str, dict] = {}
    try:
        node = nodes.new("127.0.0.2")
        for name, src in trees.items():
            port = free_port()
            env = dcslog_env(work / f"data-{name}", Fernet.generate_key().decode(), port, PYTHONPATH=src,
                             DCSLOG_ACCESS_LOG="false", DCSLOG_SLOWLOG_INTERVAL="86400")
            proc = procs.start([sys.executable, "-m", "dcslog.cli", "serve"], work / f"serve-{name}.log", env)
            wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
            token = cli(env, "token", "create", "--project-id", PROJECT)["token"]
            instance_id = cli(env, "instances", "import", "--project-id", PROJECT, "--name", "small", "--redis",
                              f"redis://{node.address}", "--log-file", f"{node.address}={log_file}")["instance_id"]
            base = f"http://127.0.0.1:{port}"
            headers = {"X-Auth-Token": token}
            api = f"/v2/{PROJECT}/instances/{instance_id}"
            assert httpx.post(f"{base}{api}/redislog", params={"log_type": "run"}, headers=headers).status_code == 204
            item = wait_collected(base, instance_id, headers, today.isoformat(), project=PROJECT)
            link = httpx.post(f"{base}{api}/redislog/{item['id']}/links", headers=headers).json()["link"]
            scripts = work / f"lua-{name}"
            scripts.mkdir()
            sites[name] = {
                "base": base,
                "download": lua_script(scripts / "download.lua", "GET", {}, [link.removeprefix(base)]),
                "link": lua_script(scripts / "link.lua", "POST", headers, [f"{api}/redislog/{item['id']}/links"]),
                "list": lua_script(scripts / "list.lua", "GET", headers, [f"{api}/redislog?log_type=run"]),
            }
        print(f"machine: {machine()}; file {item['size']} bytes; wrk -t1 -c{args.connections} "
              f"-d{args.wrk_seconds:g}s, {args.rounds} rounds")
        results: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.rounds):
            for case in ("download", "link", "list+flood"):
                for name, site in sites.items():
                    if case == "list+flood":
                        flood = subprocess.Popen(wrk_args(site["base"], site["download"], args.wrk_seconds + 1,
                                                          args.connections), stdout=subprocess.PIPE,
                                                 stderr=subprocess.PIPE, text=True)
                        time.sleep(0.2)
                        # inside the flood
                        got = run_wrk(site["base"], site["list"], args.wrk_seconds - 1, args.connections)
                        out, err = flood.communicate(timeout=args.wrk_seconds + 60)
                        got["flood_rps"] = parse_wrk(out, err)["rps"]
                    else:
                        got = run_wrk(site["base"], site[case], args.wrk_seconds, args.connections)
                    if got["errors"]:
                        raise RuntimeError(f"{case} {name}: {got['errors']} errors ({got['first_bad']})")
                    results.setdefault((case, name), []).append(got)
        print(f"{'case':<12} {'tree':<7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        for (case, name), runs in results.items():
            rps = statistics.median(r["rps"] for r in runs)
            p50 = statistics.median(r["p50_us"] for r in runs) / 1000
            p99 = statistics.median(r["p99_us"] for r in runs) / 1000
            extra = (f"  (downloads beside it: {statistics.median(r['flood_rps'] for r in runs):.0f}/s)"
                     if case == "list+flood" else "")
            print(f"{case:<12} {name:<7} {rps:>8.0f} {p50:>8.1f} {p99:>8.1f}{extra}")
        for case in ("download", "link", "list+flood"):
            ratio = (statistics.median(r["rps"] for r in results[(case, "after")])
                     / statistics.median(r["rps"] for r in results[(case, "before")]))
            print(f"{case}: after/before {ratio:.2f}x")
        return 0
    finally:
        procs.close()
        nodes.close()


if __name__ == "__main__":
    sys.exit(main())
