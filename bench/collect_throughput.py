#!/usr/bin/env python3
"""Benchmark: run-log collection throughput, embedded vs PostgreSQL with 1, 2, 4 … workers.

Sets up, under bench/out/collect/, synthetic run logs for --replicas "replicas"
(one ``rNN/redis.log`` each, --days calendar days ending today (UTC) of
realistic Redis lines, about --mib-per-day MiB a day; the expected size and
SHA-256 of every day are recorded while generating, and the logs are reused
by the next run with --keep), one real redis-server, and two template
databases holding the same --replicas instances (each imported with
``dcslog instances import --redis … --log-file HOST:PORT=rNN/redis.log``) and
a token: a SQLite data directory and a PostgreSQL database (a server of our
own, initdb'd as the postgres user like tests/backend_fixtures.py, default
durability: fsync on, synchronous_commit on).

Configurations, interleaved rep by rep so that noise spreads over all of
them; every rep starts on a fresh copy of the template (no refresh in place)
and an empty object store:

  floor        no dcslog process: ``services.collection.cut_day`` + ``runlog.write_day``
               for every file, one thread, into a local directory store (what one
               worker would do with no database, no HTTP, no lease)
  embedded     one ``dcslog serve`` (SQLite + local directory, in-process worker)
  pg-wN        ``dcslog serve --no-worker`` (API) + N ``dcslog worker`` on PostgreSQL,
               object store a local directory shared by the processes (file:///…)
  pg-moto-w1   (--moto) the same with 1 worker on moto_server's in-memory S3:
               a reference for S3's code path only, not for a real store's speed

For each: start the processes, wait until they are up (and their start-up
slow-log harvest is over), POST one collection per replica
(query_time=--days) through the API, and time from the first POST until the
database shows every file ``succeed``. Then every file's recorded size and
SHA-256 are checked against the generated day, and the stored object itself
is read back and hashed; the store must hold exactly the recorded objects.
CPU seconds of the dcslog processes and PostgreSQL backends, and the
machine's busy and iowait share over the timed window, come from /proc.

Prints medians (days/s, MB/s, ratios vs pg-w1 and vs embedded) and exits 1
if any file is missing, failed, or differs from its day, or a run times out.
Quote ratios from one run, not absolute times across runs.

    python bench/collect_throughput.py [--replicas 40] [--days 7] [--mib-per-day 4]
        [--workers 1,2,4] [--reps 5] [--moto] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import multiprocessing
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from dcslog.testing.ports import free_port
from dcslog.testing.waiting import wait_port

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "collect"
PROJECT = "benchcollect"
SERVER_KEY = "4d2yIHNGdcI2O8sGc1XyM7YQ3ZhfJm7XvAD5KJ8HBNc="  # shared by every process, as an operator would
DCSLOG = [sys.executable, "-m", "dcslog.cli"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
GEN_VERSION = 1
RUN_TIMEOUT = 900.0
POLL = 0.02

LOGO = (
    "                _._                                                  \n"
    "           _.-``__ ''-._                                             \n"
    "      _.-``    `.  `_.  ''-._           Redis 7.0.15 (00000000/0) 64 bit\n"
    "  .-`` .-```.  ```\\/    _.,_ ''-._                                  \n"
    " (    '      ,       .-`  | `,    )     Running in standalone mode\n"
    " |`-._`-...-` __...-.``-._|'` _.-'|     Port: 6379\n"
    " |    `-._   `._    /     _.-'    |     PID: {pid}\n"
    "  `-._    `-._  `-./  _.-'    _.-'                                   \n"
    " |`-._`-._    `-.__.-'    _.-'_.-'|                                  \n"
    " |    `-._`-._        _.-'_.-'    |           https://redis.io       \n"
    "  `-._    `-._`-.__.-'_.-'    _.-'                                   \n"
    "      `-._    `-.__.-'    _.-'                                       \n"
    "          `-._        _.-'                                           \n"
    "              `-.__.-'                                               \n\n"
)


# --------------------------------------------------------------------------- synthetic logs

def _gen_day(replica: int, day: date, target: int) -> bytes:
    """About ``target`` bytes of one node's day: entries in time order, a restart banner
    (ASCII logo as continuation lines) now and then, all inside the day."""
    rng = random.Random(f"{replica}/{day.isoformat()}")
    pid = 1000 + 17 * replica
    datepart = f"{day.day:02d} {MONTHS[day.month - 1]} {day.year}"
    peer = f"10.{replica // 200}.{replica % 200}.{rng.randrange(2, 250)}"
    est_lines = max(1, target // 78)
    step = 86_399_000 / est_lines
    t = rng.uniform(0, step)
    out: list[str] = []
    size = 0
    child = pid + 1
    while size < target:
        ms = min(int(t), 86_399_999)
        t += step * (0.2 + 1.6 * rng.random())
        h, rem = divmod(ms, 3_600_000)
        m, rem = divmod(rem, 60_000)
        s, milli = divmod(rem, 1000)
        stamp = f"{datepart} {h:02d}:{m:02d}:{s:02d}.{milli:03d}"
        r = rng.random()
        if r < 0.30:
            line = f"{pid}:M {stamp} - Accepted {peer}:{rng.randrange(30000, 61000)}\n"
        elif r < 0.58:
            line = (f"{pid}:M {stamp} - Client closed connection id={rng.randrange(1, 10**7)} "
                    f"addr={peer}:{rng.randrange(30000, 61000)} laddr=10.0.0.1:6379 fd={rng.randrange(8, 900)} "
                    f"name= age={rng.randrange(0, 9000)} idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1\n")
        elif r < 0.70:
            line = (f"{pid}:M {stamp} * {rng.choice((1, 100, 10000))} changes in "
                    f"{rng.choice((60, 300, 3600))} seconds. Saving...\n")
        elif r < 0.80:
            child += 1
            line = f"{pid}:M {stamp} * Background saving started by pid {child}\n"
        elif r < 0.88:
            line = f"{child}:C {stamp} * DB saved on disk\n"
        elif r < 0.93:
            mb = rng.randrange(1, 64)
            line = f"{child}:C {stamp} * Fork CoW for RDB: current {mb} MB, peak {mb + 1} MB, average {mb // 2} MB\n"
        elif r < 0.98:
            line = f"{pid}:M {stamp} * Background saving terminated with success\n"
        elif r < 0.9995:
            line = (f"{pid}:M {stamp} # Connection with replica {peer}:6379 lost.\n"
                    if rng.random() < 0.5
                    else f"{pid}:M {stamp} * Synchronization with replica {peer}:6379 succeeded\n")
        else:  # a restart: banner, then the logo as continuation lines of its entry
            line = (f"{pid}:C {stamp} # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo\n"
                    f"{pid}:C {stamp} # Redis version=7.0.15, bits=64, commit=00000000, modified=0, "
                    f"pid={pid}, just started\n"
                    f"{pid}:M {stamp} * monotonic clock: POSIX clock_gettime\n"
                    f"{pid}:M {stamp} * \n" + LOGO.format(pid=pid)
                    + f"{pid}:M {stamp} # Server initialized\n{pid}:M {stamp} * Ready to accept connections\n")
        out.append(line)
        size += len(line)
    return "".join(out).encode()


def _gen_replica(job: tuple[int, list[str], int, str]) -> tuple[int, dict[str, list]]:
    replica, days, target, path = job
    expected = {}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        for text in days:
            data = _gen_day(replica, date.fromisoformat(text), target)
            expected[text] = [len(data), hashlib.sha256(data).hexdigest()]
            f.write(data)
    os.replace(path + ".tmp", path)
    return replica, expected


def log_path(replica: int) -> Path:
    return OUT / "logs" / f"r{replica:02d}" / "redis.log"


def ensure_logs(replicas: int, days: list[str], target: int) -> dict[int, dict[str, list]]:
    manifest_path = OUT / "logs" / "manifest.json"
    want = {"version": GEN_VERSION, "replicas": replicas, "days": days, "target": target}
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
        manifest = json.loads(manifest_path.read_text())
        if {k: manifest[k] for k in want} == want:
            expected = {int(k): v for k, v in manifest["expected"].items()}
            if all(log_path(r).stat().st_size == sum(s for s, _ in expected[r].values()) for r in range(replicas)):
                print(f"reusing the synthetic logs in {OUT / 'logs'}")
                return expected
    shutil.rmtree(OUT / "logs", ignore_errors=True)
    started = time.perf_counter()
    jobs = [(r, days, target, str(log_path(r))) for r in range(replicas)]
    with multiprocessing.Pool(os.cpu_count() or 2) as pool:
        expected = dict(pool.map(_gen_replica, jobs))
    manifest_path.write_text(json.dumps({**want, "expected": {str(k): v for k, v in expected.items()}}))
    total = sum(s for e in expected.values() for s, _ in e.values())
    print(f"generated {replicas} logs, {total / 2**20:.0f} MiB, in {time.perf_counter() - started:.1f} s")
    return expected


# --------------------------------------------------------------------------- processes

class Procs:
    """Every process this benchmark starts, stopped (SIGINT, then SIGKILL) by pid."""

    def __init__(self):
        self.live: list[tuple[str, subprocess.Popen, object]] = []

    def start(self, name: str, argv: list[str], env: dict | None = None, log: Path | None = None,
              **kw) -> subprocess.Popen:
        out = open(log, "ab") if log else subprocess.DEVNULL
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, **kw)
        self.live.append((name, proc, out))
        return proc

    def stop(self, procs: list[subprocess.Popen] | None = None, sig=signal.SIGINT) -> None:
        targets = [t for t in self.live if procs is None or t[1] in procs]
        for _, proc, _ in targets:
            if proc.poll() is None:
                proc.send_signal(sig)
        for name, proc, out in targets:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                print(f"  {name} (pid {proc.pid}) did not stop: SIGKILL", file=sys.stderr)
                proc.kill()
                proc.wait()
            if out is not subprocess.DEVNULL:
                out.close()
        self.live = [t for t in self.live if t not in targets]


def start_postgres(procs: Procs) -> tuple[int, Path, int]:
    bindir = Path("/usr/lib/postgresql/15/bin")
    if not bindir.exists():
        bindir = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])
    # Not under bench/out: the server runs as postgres and needs a world-traversable path.
    base = Path(tempfile.mkdtemp(prefix="dcslog-bench-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        os.chmod(base, 0o755)
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "dcslog", "--auth=trust", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True)
    port = free_port()
    proc = procs.start("postgres", [*as_user, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                                    "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockets}",
                                    "-c", "max_connections=200"], log=OUT / "postgres.log")
    wait_port(port, proc, "postgres", timeout=60, interval=0.05)
    import psycopg

    deadline = time.monotonic() + 60
    while True:  # listening is not accepting: "the database system is starting up"
        try:
            psycopg.connect(f"postgresql://dcslog@127.0.0.1:{port}/postgres").close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    # runuser stays as the parent of the postmaster: account and stop the postmaster itself.
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    return port, base, postmaster


def stop_postgres(procs: Procs, postmaster: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(postmaster, signal.SIGINT)  # fast shutdown
    procs.stop([p for name, p, _ in procs.live if name == "postgres"])


def start_redis(procs: Procs) -> tuple[str, str]:
    port = free_port()
    rdir = OUT / "redis"
    rdir.mkdir(parents=True, exist_ok=True)
    proc = procs.start("redis-server", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                        "--appendonly", "no", "--dir", str(rdir)], log=rdir / "stdout.log")
    wait_port(port, proc, "redis-server", timeout=60, interval=0.05)
    return f"redis://127.0.0.1:{port}", f"127.0.0.1:{port}"


def cli_json(env: dict[str, str], *argv: str) -> dict:
    """Run one `dcslog` admin command in this process (saves an interpreter start per import)."""
    from dcslog import cli

    saved = dict(os.environ)
    os.environ.update(env)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            rc = cli.main([*argv, "--json"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if rc != 0:
        raise RuntimeError(f"dcslog {' '.join(argv)} failed")
    return json.loads(buf.getvalue())


def populate(env: dict[str, str], replicas: int, redis_url: str,
             address: str) -> tuple[str, dict[str, tuple[str, int]]]:
    """Import one instance per replica log; returns (token, {instance_id: (replication_id, replica)})."""
    targets = {}
    cli_json(env, "db", "upgrade")  # a new database: admin commands never create one themselves
    for r in range(replicas):
        # One Redis, one instance per replica log: --force (a second import of a deployment is refused).
        view = cli_json(env, "instances", "import", "--project-id", PROJECT, "--name", f"r{r:02d}", "--force",
                        "--redis", redis_url, "--log-file", f"{address}={log_path(r)}")
        replica = view["group_list"][0]["replication_list"][0]
        assert replica["log_file"] == str(log_path(r)), replica
        targets[view["instance_id"]] = (replica["replication_id"], r)
    token = cli_json(env, "token", "create", "--project-id", PROJECT)["token"]
    return token, targets


# --------------------------------------------------------------------------- /proc accounting

def proc_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(ppid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == ppid:
                    pids.append(int(entry))
    return pids


def system_cpu() -> tuple[int, int, int]:
    """(busy, iowait, total) jiffies over all CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, iowait, busy + idle + iowait


class Meter:
    def __init__(self, dcslog_pids: list[int], postmaster: int | None):
        self.dcslog_pids, self.postmaster = dcslog_pids, postmaster

    def _pg(self) -> dict[int, float]:
        return {pid: proc_cpu(pid) for pid in children_of(self.postmaster)} if self.postmaster else {}

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.dcs0 = sum(proc_cpu(p) for p in self.dcslog_pids)
        self.pg0 = self._pg()
        self.sys0 = system_cpu()
        return self

    def stop(self) -> dict:
        wall = time.perf_counter() - self.t0
        sys1 = system_cpu()
        pg1 = self._pg()
        busy, iowait, total = (b - a for a, b in zip(self.sys0, sys1, strict=True))
        return {"wall": wall, "load1": os.getloadavg()[0],
                "dcslog_cpu": sum(proc_cpu(p) for p in self.dcslog_pids) - self.dcs0,
                "pg_cpu": sum(v - self.pg0.get(pid, 0.0) for pid, v in pg1.items()),
                "busy": busy / total if total else 0.0, "iowait": iowait / total if total else 0.0}

    def __exit__(self, *exc):
        return False


# --------------------------------------------------------------------------- one configuration, one rep

class Backend:
    """Where a rep's metadata lives: a fresh copy of a template database each time."""

    def __init__(self, kind: str, pg_port: int | None = None, template: str | None = None,
                 sqlite_template: Path | None = None):
        self.kind, self.pg_port, self.template, self.sqlite_template = kind, pg_port, template, sqlite_template
        self.db_name: str | None = None

    def fresh(self, run_dir: Path, env: dict[str, str]) -> None:
        if self.kind == "sqlite":
            (run_dir / "data").mkdir(parents=True)
            src = sqlite3.connect(self.sqlite_template)
            dst = sqlite3.connect(run_dir / "data" / "dcslog.db")
            src.backup(dst)
            dst.close()
            src.close()
        else:
            import psycopg

            self.db_name = "run_" + run_dir.name.replace("-", "_")
            with psycopg.connect(f"postgresql://dcslog@127.0.0.1:{self.pg_port}/postgres", autocommit=True) as c:
                c.execute(f'CREATE DATABASE "{self.db_name}" TEMPLATE "{self.template}"')
            env["DCSLOG_DATABASE_URL"] = f"postgresql+psycopg://dcslog@127.0.0.1:{self.pg_port}/{self.db_name}"

    def connect(self, run_dir: Path):
        if self.kind == "sqlite":
            con = sqlite3.connect(run_dir / "data" / "dcslog.db", timeout=30, isolation_level=None)
            return con, "?"
        import psycopg

        return psycopg.connect(f"postgresql://dcslog@127.0.0.1:{self.pg_port}/{self.db_name}", autocommit=True), "%s"

    def drop(self) -> None:
        if self.kind == "pg" and self.db_name:
            import psycopg

            with psycopg.connect(f"postgresql://dcslog@127.0.0.1:{self.pg_port}/postgres", autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            self.db_name = None


def api_healthy(base: str) -> bool:
    import httpx

    try:
        return httpx.get(base + "/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def wait_logged(path: Path, text: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode}; see {path}")
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{text!r} never appeared in {path}")


def run_service(name: str, backend: Backend, workers: int, store_url: str | None, ctx: dict, rep: int) -> dict:
    """Start the processes of one configuration, fire every collection, time it, verify, stop."""
    import httpx

    procs: Procs = ctx["procs"]
    run_dir = OUT / "runs" / f"{name}-{rep}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    env = {**os.environ, "DCSLOG_DATA_DIR": str(run_dir / "data"), "DCSLOG_SERVER_KEY": SERVER_KEY,
           "DCSLOG_SLOWLOG_INTERVAL": "3600", "DCSLOG_WORKER_POLL_INTERVAL": "0.2", **ctx["extra_env"]}
    store_dir = run_dir / "store"
    if store_url == "file":
        env["DCSLOG_OBJECT_STORE"] = f"file://{store_dir}"
    elif store_url:
        env["DCSLOG_OBJECT_STORE"] = store_url
    backend.fresh(run_dir, env)
    port = free_port()
    started: list[subprocess.Popen] = []
    try:
        api = procs.start(f"{name} api", [*DCSLOG, "serve", "--port", str(port)]
                          + (["--no-worker"] if workers else []), env=env, log=run_dir / "serve.log")
        started.append(api)
        worker_procs = []
        for i in range(workers):
            log = run_dir / f"worker{i}.log"
            worker_procs.append(procs.start(f"{name} worker{i}", [*DCSLOG, "worker"], env=env, log=log))
            started.append(worker_procs[-1])
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not api_healthy(base):
            if api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: the API did not come up; see {run_dir / 'serve.log'}")
            time.sleep(0.05)
        for i, proc in enumerate(worker_procs):
            wait_logged(run_dir / f"worker{i}.log", "dcslog worker running", proc)
        time.sleep(1.5)  # let the start-up slow-log harvest of every node finish before the clock starts

        con, ph = backend.connect(run_dir)
        total = ctx["replicas"] * ctx["days"]
        client = httpx.Client(base_url=base, headers={"X-Auth-Token": backend_token(ctx, backend)}, timeout=30)
        targets = backend_targets(ctx, backend)
        meter = Meter([p.pid for p in started], ctx["postmaster"] if backend.kind == "pg" else None)
        with meter:
            t0 = time.perf_counter()
            for instance_id, (replication_id, _) in targets.items():
                response = client.post(f"/v2/{PROJECT}/instances/{instance_id}/redislog",
                                       params={"log_type": "run", "query_time": ctx["days"],
                                               "replication_id": replication_id})
                if response.status_code != 204:
                    raise RuntimeError(f"{name}: POST redislog answered {response.status_code}: {response.text}")
            fired = time.perf_counter() - t0
            deadline = time.monotonic() + RUN_TIMEOUT
            while True:
                counts = dict(con.execute("SELECT status, count(*) FROM log_files GROUP BY status").fetchall())
                if counts.get("failed"):
                    errs = con.execute("SELECT DISTINCT error_msg FROM log_files WHERE status = 'failed'").fetchall()
                    raise RuntimeError(f"{name}: {counts['failed']} file(s) failed: {errs[:3]}")
                if counts.get("succeed", 0) == total and not counts.get("creating"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name}: not done after {RUN_TIMEOUT} s: {counts}")
                time.sleep(POLL)
            result = meter.stop()
        client.close()
        result["fired"] = fired
        result["verify"] = verify(con, ph, ctx, targets,
                                  store_dir if store_url == "file" else run_dir / "data" / "files",
                                  store_url if store_url and store_url.startswith("s3://") else None)
        settle = time.monotonic() + 30  # each task is settled in its own commit, just after its last file
        while con.execute("SELECT count(*) FROM tasks WHERE status = 'running'").fetchone()[0] and \
                time.monotonic() < settle:
            time.sleep(POLL)
        tasks = con.execute("SELECT status, count(*), max(attempts) FROM tasks GROUP BY status").fetchall()
        if tasks != [("succeed", ctx["replicas"], 1)]:
            raise RuntimeError(f"{name}: unexpected task states {tasks}")
        con.close()
        return result
    finally:
        procs.stop(started)
        backend.drop()
        if not ctx["keep"]:
            shutil.rmtree(run_dir, ignore_errors=True)


def backend_token(ctx, backend):
    return ctx["tokens"][backend.kind]


def backend_targets(ctx, backend):
    return ctx["targets"][backend.kind]


def verify(con, ph, ctx, targets, store_dir: Path | None, s3_url: str | None) -> int:
    """Recorded size/sha256 == the generated day; the stored bytes hash to it; no stray objects."""
    rows = con.execute("SELECT instance_id, day, size, sha256, object_key FROM log_files").fetchall()
    if len(rows) != ctx["replicas"] * ctx["days"]:
        raise RuntimeError(f"{len(rows)} file rows, expected {ctx['replicas'] * ctx['days']}")
    s3 = bucket = None
    if s3_url:
        import boto3

        bucket = s3_url.split("://")[1].split("?")[0]
        s3 = boto3.client("s3", endpoint_url=s3_url.split("endpoint=")[1].split("&")[0], region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    keys = set()
    for instance_id, day, size, sha256, object_key in rows:
        replica = targets[instance_id][1]
        want_size, want_sha = ctx["expected"][replica][day]
        if (size, sha256) != (want_size, want_sha):
            raise RuntimeError(f"r{replica:02d} {day}: recorded {size} {sha256}, generated {want_size} {want_sha}")
        digest = hashlib.sha256()
        if s3 is not None:
            digest.update(s3.get_object(Bucket=bucket, Key=object_key)["Body"].read())
        else:
            with open(store_dir / object_key, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        if digest.hexdigest() != want_sha:
            raise RuntimeError(f"r{replica:02d} {day}: stored object {object_key} differs from the generated day")
        keys.add(object_key)
    if s3 is not None:
        stored = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                  for o in page.get("Contents", [])}
    else:
        # Published objects only: the staging directory holds each live process's presence file.
        stored = {str(p.relative_to(store_dir)) for p in store_dir.rglob("*")
                  if p.is_file() and p.parent.name != ".staging"}
    if stored != keys:
        raise RuntimeError(f"store holds {len(stored)} objects, {len(keys)} recorded: "
                           f"{sorted(stored ^ keys)[:3]}")
    return len(rows)


def run_floor(ctx: dict, rep: int) -> dict:
    """The per-file work of a worker with nothing around it: cut, fsync, hash, publish; one thread."""
    from dcslog.runlog.slicer import write_day
    from dcslog.services.collection import cut_day
    from dcslog.storage.local import LocalObjectStore

    run_dir = OUT / "runs" / f"floor-{rep}"
    shutil.rmtree(run_dir, ignore_errors=True)
    store = LocalObjectStore(run_dir / "store")
    try:
        meter = Meter([os.getpid()], None)
        with meter:
            for r in range(ctx["replicas"]):
                path = str(log_path(r))
                for day in ctx["day_list"]:
                    the_day = date.fromisoformat(day)
                    size, sha = cut_day(store, lambda fd, path=path, d=the_day: write_day(path, d, fd),
                                        f"r{r:02d}/{day}.log")
                    if [size, sha] != ctx["expected"][r][day]:
                        raise RuntimeError(f"floor: r{r:02d} {day} differs from the generated day")
            return meter.stop()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


# --------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=40)
    parser.add_argument("--days", type=int, default=7, choices=(1, 3, 7), help="query_time (DCS allows 1, 3, 7)")
    parser.add_argument("--mib-per-day", type=float, default=4.0)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts for PostgreSQL")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of every configuration (>= 3)")
    parser.add_argument("--moto", action="store_true", help="also PostgreSQL + moto_server S3, 1 worker (reference)")
    parser.add_argument("--keep", action="store_true", help="keep the generated logs (and run dirs) for the next run")
    args = parser.parse_args()
    if args.reps < 3:
        parser.error("--reps must be at least 3")
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]

    today = datetime.now(UTC).date()
    day_list = [(today - timedelta(days=i)).isoformat() for i in range(args.days - 1, -1, -1)]
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(OUT / "runs", ignore_errors=True)
    expected = ensure_logs(args.replicas, day_list, int(args.mib_per_day * 2**20))
    total_bytes = sum(s for e in expected.values() for s, _ in e.values())
    total_files = args.replicas * args.days

    procs = Procs()
    pg_base = None
    pg_started, postmaster = False, 0
    try:
        redis_url, address = start_redis(procs)
        pg_port, pg_base, postmaster = start_postgres(procs)
        pg_started = True
        import psycopg

        with psycopg.connect(f"postgresql://dcslog@127.0.0.1:{pg_port}/postgres", autocommit=True) as c:
            c.execute('CREATE DATABASE "tmpl"')
        sqlite_dir = OUT / "tmpl-sqlite"
        shutil.rmtree(sqlite_dir, ignore_errors=True)
        started = time.perf_counter()
        tokens, targets = {}, {}
        tokens["sqlite"], targets["sqlite"] = populate(
            {"DCSLOG_DATA_DIR": str(sqlite_dir), "DCSLOG_SERVER_KEY": SERVER_KEY, "DCSLOG_LOG_LEVEL": "WARNING"},
            args.replicas, redis_url, address)
        tokens["pg"], targets["pg"] = populate(
            {"DCSLOG_DATA_DIR": str(sqlite_dir), "DCSLOG_SERVER_KEY": SERVER_KEY, "DCSLOG_LOG_LEVEL": "WARNING",
             "DCSLOG_DATABASE_URL": f"postgresql+psycopg://dcslog@127.0.0.1:{pg_port}/tmpl"},
            args.replicas, redis_url, address)
        logging.getLogger().setLevel(logging.WARNING)  # cli.main configured logging in this process
        print(f"imported {args.replicas} instances twice (SQLite, PostgreSQL) in {time.perf_counter() - started:.1f} s")
        ctx = {"procs": procs, "replicas": args.replicas, "days": args.days, "day_list": day_list,
               "expected": expected, "tokens": tokens, "targets": targets, "keep": args.keep,
               "postmaster": postmaster, "extra_env": {}}

        configs: list[tuple[str, callable]] = [("floor", lambda rep: run_floor(ctx, rep))]
        sqlite = Backend("sqlite", sqlite_template=sqlite_dir / "dcslog.db")
        pg = Backend("pg", pg_port=pg_port, template="tmpl")
        configs.append(("embedded", lambda rep: run_service("embedded", sqlite, 0, None, ctx, rep)))
        for n in worker_counts:
            configs.append((f"pg-w{n}", lambda rep, n=n: run_service(f"pg-w{n}", pg, n, "file", ctx, rep)))
        moto = None
        if args.moto:
            moto_port = free_port()
            moto = procs.start("moto_server", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                               "-p", str(moto_port)], log=OUT / "moto.log")
            wait_port(moto_port, moto, "moto_server", timeout=60, interval=0.05)
            endpoint = f"http://127.0.0.1:{moto_port}"
            ctx["extra_env"] = {"DCSLOG_S3_ACCESS_KEY_ID": "test", "DCSLOG_S3_SECRET_ACCESS_KEY": "test"}
            import boto3

            s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                              aws_secret_access_key="test")

            def moto_rep(rep):
                bucket = f"bench-{rep}"
                s3.create_bucket(Bucket=bucket)
                try:
                    return run_service("pg-moto-w1", pg, 1, f"s3://{bucket}?endpoint={endpoint}&region=us-east-1",
                                       ctx, rep)
                finally:
                    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                        for o in page.get("Contents", []):
                            s3.delete_object(Bucket=bucket, Key=o["Key"])
                    s3.delete_bucket(Bucket=bucket)
            configs.append(("pg-moto-w1", moto_rep))

        print(f"{args.replicas} replicas x {args.days} days = {total_files} files, {total_bytes / 1e6:.0f} MB; "
              f"{args.reps} reps, interleaved; {os.cpu_count()} CPUs")
        results: dict[str, list[dict]] = {name: [] for name, _ in configs}
        for rep in range(1, args.reps + 1):
            for name, run in configs:
                result = run(rep)
                results[name].append(result)
                print(f"  rep {rep} {name:<11} {result['wall']:7.2f} s  {total_files / result['wall']:6.1f} days/s  "
                      f"dcslog cpu {result['dcslog_cpu']:5.2f} s  pg cpu {result['pg_cpu']:5.2f} s  "
                      f"busy {result['busy']:4.0%}  iowait {result['iowait']:4.0%}  "
                      f"POSTs {result.get('fired', 0):5.2f} s  load1 {result['load1']:4.1f}", flush=True)
    finally:
        if pg_started:
            stop_postgres(procs, postmaster)
        procs.stop()
        if pg_base is not None:
            shutil.rmtree(pg_base, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(OUT, ignore_errors=True)

    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "verify"}
           for name, rs in results.items()}
    base_w1 = med.get("pg-w1", {}).get("wall")
    base_emb = med["embedded"]["wall"]
    print()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} vCPU, "
          f"Python {platform.python_version()}, {platform.platform()}")
    print(f"medians of {args.reps} reps; {total_files} files, {total_bytes / 1e6:.0f} MB; every file verified "
          f"(size + sha256 recorded and of the stored bytes)")
    print()
    print("| Configuration | Wall (s) | Days/s | MB/s | vs pg-w1 | vs embedded | dcslog CPU (s) | PG CPU (s) "
          "| CPU busy | iowait | POSTs (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, m in med.items():
        vs_w1 = f"{base_w1 / m['wall']:.2f}×" if base_w1 else "–"
        print(f"| {name} | {m['wall']:.2f} | {total_files / m['wall']:.1f} | {total_bytes / 1e6 / m['wall']:.0f} "
              f"| {vs_w1} | {base_emb / m['wall']:.2f}× | {m['dcslog_cpu']:.2f} | {m['pg_cpu']:.2f} "
              f"| {m['busy']:.0%} | {m['iowait']:.0%} | {m.get('fired', 0):.2f} |")
    print()
    print("days/s and MB/s: files (and bytes) collected per second of wall time from the first POST until the last "
          "file is `succeed`; ratios > 1 are faster. dcslog CPU: all dcslog processes (floor: the benchmark itself); "
          "CPU busy / iowait: share of the whole machine's CPU time over the window; POSTs: time to fire "
          "every collection request (one kept-alive client, sequential).")
    loads = [r["load1"] for rs in results.values() for r in rs]
    print(f"1-min load average at the end of the timed windows: {min(loads):.1f}-{max(loads):.1f} "
          f"(other jobs share this machine; compare ratios within this run only)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
