#!/usr/bin/env python3
"""Benchmark: the cost of authenticating one request (``auth.authenticate``), in-process.

What every DCS request pays before its handler runs, measured as the API pays it:
a fresh session per call from the API's own sessionmaker on SQLite (the read
cache and the inline reads of ``app.py``), a token made and an AK/SK pair made
by the admin services, then ``--calls`` authentications of each, timed:

  token, cached    X-Auth-Token, the read cache warm (the common case)
  AK/SK, cached    an SDK-HMAC-SHA256 signature (``signing.sign_request``), cache warm
  token, uncached  no read cache: the look-up read every time (as after any commit,
                   and as PostgreSQL always does)
  AK/SK, uncached  no read cache: look-up and secret-key decryption every time

Each figure is µs of CPU time (``time.process_time``: this process, all its threads)
per call, the best of --reps repetitions in a child process, then the median over
--rounds children: the path is deterministic, and what a busy machine adds is noise. With
``--compare-src DIR`` (a copy of another ``src/`` tree, e.g. before a change) each
round runs both trees in child processes, interleaved, so the ratio comes from
one run on one machine state (compare ratios, never absolute times from different
runs).

    python bench/auth_speed.py [--calls 5000] [--reps 5] [--rounds 3] [--compare-src DIR] [--src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ("token, cached", "AK/SK, cached", "token, uncached", "AK/SK, uncached")
PROJECT = "bench"


async def measure(calls: int, reps: int) -> dict:
    from multidict import CIMultiDict

    import dcslog
    from dcslog import admin
    from dcslog.auth import authenticate
    from dcslog.config import Settings
    from dcslog.db.inline import InlineReads
    from dcslog.db.readcache import ReadCache
    from dcslog.db.session import create_engine, create_sessionmaker
    from dcslog.keys import Keyring, load_server_key
    from dcslog.services import credentials
    from dcslog.signing import SignedRequest, sign_request

    try:
        from dcslog.services import audit
    except ImportError:  # a tree from before the audit trail
        audit = None  # type: ignore[assignment]

    settings = Settings()
    await asyncio.to_thread(admin.open_database, settings, create=True)
    url = settings.effective_database_url
    keyring = Keyring(load_server_key(settings))
    engine = create_engine(url)
    async with create_sessionmaker(engine)() as session:
        # The actor (the audit trail) where the tree measured has one (--compare-src may be older).
        who = [audit.system_actor()] if audit is not None else []
        token = (await credentials.create_token(session, *who, project_id=PROJECT, role="admin", ttl=86400))["token"]
        pair = await credentials.create_credential(session, keyring, *who, project_id=PROJECT, role="admin")
    read_cache, inline = ReadCache(url), InlineReads(url)
    makers = {"cached": create_sessionmaker(engine, read_cache, inline),
              "uncached": create_sessionmaker(engine, None, inline)}
    path = f"/v2/{PROJECT}/instances"
    requests = {
        "token": SignedRequest("GET", path, "", CIMultiDict({"x-auth-token": token}), b""),
        # Valid for ±15 min: signed once, verified every call, as a replayed request is.
        "AK/SK": SignedRequest("GET", path, "", CIMultiDict(sign_request(
            pair["access_key"], pair["secret_key"], "GET", f"http://127.0.0.1:1{path}")), b""),
    }
    results: dict[str, float] = {}
    for case in CASES:
        kind, mode = case.split(", ")
        maker, request = makers[mode], requests[kind]

        async def once(maker=maker, request=request) -> None:
            session = maker()
            try:
                caller = await authenticate(request, session, keyring, 900)
                assert caller.project_id == PROJECT
            finally:
                if session.in_transaction():
                    await session.close()
        for _ in range(200):  # warm: the cache filled, the connections opened
            await once()
        samples = []
        for _ in range(reps):
            # CPU time of this process (all its threads): what a call costs, without the time other
            # processes of a busy machine take from it.
            start = time.process_time()
            for _ in range(calls):
                await once()
            samples.append((time.process_time() - start) / calls * 1e6)
        results[case] = min(samples)
    read_cache.close()
    inline.close()
    await engine.dispose()
    return {"source": os.path.dirname(os.path.dirname(dcslog.__file__)), "us_per_call": results}


def child(calls: int, reps: int, src: str | None) -> dict:
    env = {**os.environ}
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="dcslog-auth-bench-") as data:
        env.update(DCSLOG_DATA_DIR=data, DCSLOG_LOG_LEVEL="WARNING")
        env.pop("DCSLOG_DATABASE_URL", None)
        done = subprocess.run([sys.executable, __file__, "--child", "--calls", str(calls), "--reps", str(reps)],
                              env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare-src", help="another src/ tree, measured interleaved with this one")
    parser.add_argument("--src", help="measure this src/ tree as \"this tree\" (default: the dcslog installed)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.calls, args.reps))))
        return 0
    this = os.path.abspath(args.src) if args.src else None
    trees = {"this tree": this} if not args.compare_src else {"compared": os.path.abspath(args.compare_src),
                                                              "this tree": this}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        # Alternating which tree goes first: neither always runs after the other's load.
        for name, src in list(trees.items())[::1 if round_ % 2 == 0 else -1]:
            result = child(args.calls, args.reps, src)
            if src:
                assert Path(result["source"]).resolve() == Path(src).resolve(), result["source"]
            runs[name].append(result["us_per_call"])
    medians = {name: {case: statistics.median(r[case] for r in results) for case in CASES}
               for name, results in runs.items()}
    header = f"{'CPU µs per call':<18}" + "".join(f"{name:>12}" for name in trees)
    print(header + ("       ratio" if args.compare_src else ""))
    for case in CASES:
        line = f"{case:<18}" + "".join(f"{medians[name][case]:>12.1f}" for name in trees)
        if args.compare_src:
            line += f"{medians['this tree'][case] / medians['compared'][case]:>11.2f}x"
        print(line)
    print(f"(CPU µs per call: best of {args.reps} × {args.calls} calls per round, median of {args.rounds} rounds; "
          f"{os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
