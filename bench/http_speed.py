#!/usr/bin/env python3
"""Benchmark: dcslog's HTTP speed against this machine's limit (nginx), measured side by side in one run.

Sets up, under bench/out/http_speed/: a synthetic Redis run log whose today
(UTC) is ~1 GiB (--size-mib) after a small yesterday, one real redis-server on
127.0.0.2 imported with ``--log-file 127.0.0.2:PORT=<that log>``, and a real
``dcslog serve`` process (its own data dir and DCSLOG_SERVER_KEY, default log
level, access log to a file). Token, AK/SK credential and instance come from
the CLI, as a user makes them. Today is collected through the API and a
download link made. Then, interleaved in one run:

Downloads (``curl -s -o /dev/null``, --reps repetitions, medians):
  nginx   the same collected file, ``sendfile on``, one worker, 127.0.0.1
  dcslog  GET on the download link
  each for the full file and a ``Range: bytes=-104857600`` request (last 100 MiB);
  every transfer's status and size are checked.

Small requests (``wrk -t1 -c32 -d10s``, --rounds rounds, medians of req/s):
  nginx fixed  ``return 200 '{"status":"ok"}'``, one worker, access log off
  floor        ``GET /bench-floor`` returning that body with no database access:
               dcslog's own app (create_app: the envelope middleware, request id,
               request metrics, access line) started through ``dcslog.cli.main(["serve", …])`` with
               that one route added, in a process of its own
  health       ``GET /health`` on dcslog serve (one ``SELECT 1``)
  link token   ``POST …/redislog/{id}/links`` with X-Auth-Token (wrk -s Lua)
  link, minimal handler
               a reference, not dcslog: in the floor's process (same app, middleware,
               access line), a handler doing only what no cache removes from a link
               request (hash the token, read PRAGMA data_version, check ids, project,
               role, file and expiry, sign, answer the same JSON) from dicts loaded at
               start: the most "link vs floor" could be on this stack
  link AK/SK   the same POST signed with SDK-HMAC-SHA256: wrk's Lua cannot compute
               HMAC, but a signature binds only method, path, query, host and
               X-Sdk-Date (±15 min), so one request signed by ``signing.sign_request``
               just before the round is replayed for its 10 s — valid every time.
Every wrk run counts non-2xx answers and socket errors (a Lua response hook);
any is a failure.

Targets (exit 1 when one is missed): downloads >= 0.8x nginx (full and Range);
link >= 0.6x the floor (token; AK/SK reported against it too); the floor >= 0.10x
nginx fixed body. "floor" is the no-database route; /health is reported next to
it (ratio link/health too).

    python bench/http_speed.py [--size-mib 1024] [--reps 7] [--rounds 3] [--wrk-seconds 10] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from dcslog.testing.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PROJECT = "benchhttp"
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
DCSLOG = [sys.executable, "-m", "dcslog.cli"]
FIXED_BODY = '{"status":"ok"}'
RANGE_BYTES = 100 * 1024 * 1024


# ---------------------------------------------------------------- shared helpers (bench/load.py uses them too)

def stamp(moment: datetime) -> str:
    return (f"{moment.day:02d} {MONTHS[moment.month - 1]} {moment.year} "
            f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}")


def write_log(path: Path, days: list[tuple[date, int]], block: int = 64 * 1024) -> None:
    """A Redis run log: for each (day, bytes) about that many bytes of ~200-byte entry lines, in time order.

    Lines come in blocks of ``block`` bytes sharing one timestamp, a second apart from 00:00:00,
    so a 1 GiB day spans ~4.5 h and generation costs little more than the write.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    message = "DB saved on disk; " + "x" * 150
    with open(path, "wb") as f:
        for day, size in days:
            start = datetime(day.year, day.month, day.day)
            blocks = max(1, size // block)
            for i in range(blocks):
                line = f"4242:M {stamp(start + timedelta(seconds=i))} * {message} {i}\n".encode()
                f.write(line * max(1, block // len(line)))


class Procs:
    """Processes this benchmark started; each is stopped by its own pid at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        with open(log, "ab") as f:
            proc = subprocess.Popen(args, env=env, stdout=f, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT if proc.args[0] == sys.executable else signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


def wait_http(url: str, timeout: float = 30, proc: subprocess.Popen | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def dcslog_env(data_dir: Path, server_key: str, port: int, **extra: str) -> dict:
    # No downloads-per-minute budget: the benchmarks flood links on purpose.
    env = {**os.environ, "DCSLOG_DATA_DIR": str(data_dir), "DCSLOG_SERVER_KEY": server_key,
           "DCSLOG_DOWNLOADS_PER_MINUTE": "0", "DCSLOG_HOST": "127.0.0.1", "DCSLOG_PORT": str(port),
           "DCSLOG_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    env.update(extra)
    return env


def cli(env: dict, *args: str):
    done = subprocess.run([*DCSLOG, *args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"dcslog {' '.join(args)}: {done.stderr}")
    return json.loads(done.stdout)


def start_dcslog(procs: Procs, env: dict, log: Path, *extra: str) -> subprocess.Popen:
    proc = procs.start([*DCSLOG, "serve", *extra], log, env)
    wait_http(f"http://127.0.0.1:{env['DCSLOG_PORT']}/health", proc=proc)
    return proc


def start_nginx(procs: Procs, work: Path, port: int, file_path: Path | None) -> subprocess.Popen:
    """nginx in the foreground (-p/-c, daemon off), one worker, sendfile on, access log off."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "logs").mkdir(exist_ok=True)
    file_location = f"""
        location = /file.log {{
            alias {file_path};
            default_type text/plain;
        }}""" if file_path else ""
    conf = work / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {work}/tmp_body;
    proxy_temp_path {work}/tmp_proxy;
    fastcgi_temp_path {work}/tmp_fcgi;
    uwsgi_temp_path {work}/tmp_uwsgi;
    scgi_temp_path {work}/tmp_scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /fixed {{
            default_type application/json;
            return 200 '{FIXED_BODY}';
        }}{file_location}
    }}
}}
""")
    proc = procs.start(["nginx", "-p", str(work), "-c", str(conf)], work / "logs" / "stdout.log")
    wait_http(f"http://127.0.0.1:{port}/fixed", proc=proc)
    return proc


def lua_script(path: Path, method: str, headers: dict[str, str], paths: list[str]) -> Path:
    """A wrk script: round-robin over ``paths``; counts non-2xx answers; done() prints one JSON line."""
    def q(s: str) -> str:
        return json.dumps(s)  # a JSON string is a valid Lua string literal for these ASCII values
    header_lines = "\n".join(f"wrk.headers[{q(k)}] = {q(v)}" for k, v in headers.items())
    path.write_text(f"""
wrk.method = {q(method)}
{header_lines}
local paths = {{ {", ".join(q(p) for p in paths)} }}
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; first_bad = ""; i = 0 end
function request()
  i = i + 1
  return wrk.format(nil, paths[(i % #paths) + 1])
end
function response(status, headers, body)
  if status < 200 or status > 299 then
    bad = bad + 1
    if first_bad == "" then first_bad = tostring(status) .. " " .. tostring(body) end
  end
end
function done(summary, latency, requests)
  local bad_total, first = 0, ""
  for _, t in ipairs(threads) do
    bad_total = bad_total + t:get("bad")
    if first == "" then first = t:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format('WRKJSON {{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d, "first_bad": %q}}\\n',
    summary.requests, summary.duration, bad_total, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, first))
end
""")
    return path


def run_wrk(url: str, script: Path, seconds: float, connections: int = 32, threads: int = 1,
            timeout: str = "10s") -> dict:
    done = subprocess.run(wrk_args(url, script, seconds, connections, threads, timeout),
                          capture_output=True, text=True, timeout=seconds + 60)
    return parse_wrk(done.stdout, done.stderr)


def wrk_args(url: str, script: Path, seconds: float, connections: int = 32, threads: int = 1,
             timeout: str = "10s") -> list[str]:
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", f"--timeout={timeout}",
            "-s", str(script), url]


def parse_wrk(stdout: str, stderr: str = "") -> dict:
    line = next((out_line for out_line in stdout.splitlines() if out_line.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {stdout}\n{stderr}")
    # %q escapes newlines as "\<newline>"; keep it parseable.
    result = json.loads(line[len("WRKJSON "):].replace("\\\n", "\\n"))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = result["non2xx"] + result["socket_errors"]
    return result


def machine() -> str:
    cpu = next((info.split(":", 1)[1].strip() for info in open("/proc/cpuinfo") if info.startswith("model name")),
               "?")
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
    wrk = (subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split() or ["", "?"])[1]
    import aiohttp
    return (f"{os.cpu_count()} vCPU {cpu}, Linux {platform.release()}, Python {platform.python_version()}, "
            f"aiohttp {aiohttp.__version__}, nginx {nginx}, wrk {wrk}")


def wait_collected(base: str, instance_id: str, headers: dict, day: str, timeout: float = 300,
                   project: str = PROJECT) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{base}/v2/{project}/instances/{instance_id}/redislog", params={"log_type": "run"},
                      headers=headers, timeout=30)
        if r.status_code == 200:
            item = next((i for i in r.json()["file_list"] if i["time"] == day), None)
            if item and item["status"] == "succeed":
                return item
            if item and item["status"] == "failed":
                raise RuntimeError(f"collection failed: {item}")
        time.sleep(0.2)
    raise RuntimeError("collection did not finish")


# ---------------------------------------------------------------- the no-database floor server

def serve_floor(port: int) -> None:
    """``dcslog serve --no-worker`` exactly as the CLI runs it, plus GET /bench-floor (no database)
    and POST /bench-minimal-link/… (``minimal_link_handler``)."""

    import dcslog.app
    from dcslog import cli as dcslog_cli
    from dcslog.api.params import json_response

    real_create_app = dcslog.app.create_app

    async def floor(request):
        return json_response({"status": "ok"})

    def create_app(*args, **kwargs):
        app = real_create_app(*args, **kwargs)
        app.router.add_get("/bench-floor", floor)
        app.router.add_post("/bench-minimal-link/v2/{project_id}/instances/{instance_id}/redislog/{id}/links",
                            minimal_link_handler())
        return app

    dcslog.app.create_app = create_app
    sys.exit(dcslog_cli.main(["serve", "--no-worker", "--port", str(port)]))


def minimal_link_handler():
    """A reference, not dcslog: the least work a link request can do, on the same app
    (middleware, access line, metrics) as the floor — what "link vs floor" could reach on
    this stack. The token and the file are read from dcslog's database once, at start,
    into dicts; per request it still does what no cache removes: hash the token, read
    ``PRAGMA data_version`` (what keeps a cache exact), check the ids, project, role, file
    and expiry, sign the link (``Keyring.sign_link``), answer the same JSON. No session,
    no ORM, no generality."""
    import hashlib
    import sqlite3

    from dcslog.api.params import json_response
    from dcslog.config import Settings
    from dcslog.db.readcache import readonly_sqlite_location
    from dcslog.keys import Keyring, load_server_key

    settings = Settings()
    keyring = Keyring(load_server_key(settings))
    probe = sqlite3.connect(readonly_sqlite_location(settings.effective_database_url), uri=True, timeout=0,
                            isolation_level=None, check_same_thread=False)
    probe.row_factory = sqlite3.Row
    callers = {row["token_hash"]: (row["project_id"], row["role"], datetime.fromisoformat(row["expires_at"]))
               for row in probe.execute("SELECT token_hash, project_id, role, expires_at FROM tokens")}
    files = {row["id"]: row for row in probe.execute(
        "SELECT id, instance_id, project_id, task_id, status, expires_at FROM log_files")}
    project_ids = __import__("re").compile(r"[A-Za-z0-9_-]{1,64}")
    uuids = __import__("re").compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    public_url = settings.link_base("")  # the bench sets DCSLOG_PUBLIC_URL
    epoch = datetime(1970, 1, 1)

    async def minimal_link(request):
        from aiohttp import web
        await request.read()
        now = datetime.now(UTC).replace(tzinfo=None)
        probe.execute("PRAGMA data_version").fetchone()
        caller = callers.get(hashlib.sha256(request.headers.get("X-Auth-Token", "").encode()).hexdigest())
        match = request.match_info
        project_id, instance_id, file_id = match["project_id"], match["instance_id"], match["id"]
        if caller is None or caller[2] <= now or not project_ids.fullmatch(project_id) \
                or caller[0] != project_id or not uuids.fullmatch(instance_id):
            raise web.HTTPForbidden()
        row = files.get(file_id)
        expires = datetime.fromisoformat(row["expires_at"]) if row else now
        if row is None or row["instance_id"] != instance_id or row["project_id"] != project_id \
                or expires <= now or row["status"] != "succeed":
            raise web.HTTPNotFound()
        expires_at = min(now + timedelta(seconds=settings.link_ttl), expires)
        token = keyring.sign_link(file_id, int((expires_at - epoch).total_seconds()))
        return json_response({"id": file_id, "backup_id": row["task_id"], "link": f"{public_url}/downloads/{token}",
                              "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")})
    return minimal_link


# ---------------------------------------------------------------- the benchmark

def curl(url: str, range_last: int | None = None) -> tuple[float, int, int]:
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"]
    if range_last:
        args += ["-H", f"Range: bytes=-{range_last}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True, timeout=120).stdout.split()
    return float(out[2]), int(out[1]), int(out[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the collected day (default 1024)")
    parser.add_argument("--reps", type=int, default=7, help="downloads per case (default 7)")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per case (default 3)")
    parser.add_argument("--wrk-seconds", type=float, default=10)
    parser.add_argument("--keep", action="store_true", help="keep bench/out/http_speed (the generated log is reused)")
    parser.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return 0
    for tool in ("nginx", "wrk", "curl", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (apt-get install nginx wrk curl redis-server)", file=sys.stderr)
            return 2

    import httpx
    from cryptography.fernet import Fernet

    from dcslog.signing import sign_request
    from dcslog.testing.redis_servers import NodeSet

    work = OUT / "http_speed"
    log_file = work / "redis" / "redis.log"
    today = datetime.now(UTC).date()
    size = args.size_mib * 1024 * 1024
    marker = work / "redis" / "generated.json"
    wanted = {"today": today.isoformat(), "size": size}
    if not (log_file.exists() and marker.exists() and json.loads(marker.read_text()) == wanted):
        shutil.rmtree(work, ignore_errors=True)
        t = time.perf_counter()
        write_log(log_file, [(today - timedelta(days=1), 4 * 1024 * 1024), (today, size)])
        marker.write_text(json.dumps(wanted))
        print(f"generated {log_file.stat().st_size / 2**20:.0f} MiB log in {time.perf_counter() - t:.1f}s")
    for leftover in ("data", "nginx", "nodes", "floor"):
        shutil.rmtree(work / leftover, ignore_errors=True)

    procs = Procs()
    nodes = NodeSet(work / "nodes")
    try:
        node = nodes.new("127.0.0.2")
        port = free_port()
        server_key = Fernet.generate_key().decode()
        env = dcslog_env(work / "data", server_key, port)
        start_dcslog(procs, env, work / "dcslog-serve.log")
        token = cli(env, "token", "create", "--project-id", PROJECT)["token"]
        credential = cli(env, "credentials", "create", "--project-id", PROJECT, "--role", "viewer")
        instance = cli(env, "instances", "import", "--project-id", PROJECT, "--name", "big",
                       "--redis", f"redis://{node.address}", "--log-file", f"{node.address}={log_file}")
        instance_id = instance["instance_id"]
        base = f"http://127.0.0.1:{port}"
        api = f"{base}/v2/{PROJECT}/instances/{instance_id}"
        headers = {"X-Auth-Token": token}
        t = time.perf_counter()
        r = httpx.post(f"{api}/redislog", params={"log_type": "run", "query_time": 0}, headers=headers)
        assert r.status_code == 204, r.text
        item = wait_collected(base, instance_id, headers, today.isoformat())
        print(f"collected {item['size'] / 2**20:.0f} MiB day in {time.perf_counter() - t:.1f}s")
        link = httpx.post(f"{api}/redislog/{item['id']}/links", headers=headers).json()["link"]
        stored = [p for p in (work / "data").rglob("*.log") if p.stat().st_size == item["size"]]
        assert len(stored) == 1, stored
        nginx_port = free_port()
        start_nginx(procs, work / "nginx", nginx_port, stored[0])
        nginx_file = f"http://127.0.0.1:{nginx_port}/file.log"
        floor_port = free_port()
        floor_proc = procs.start([sys.executable, __file__, "--serve-floor", str(floor_port)], work / "floor.log",
                                 dcslog_env(work / "data", server_key, floor_port, DCSLOG_SLOWLOG_INTERVAL="86400"))
        wait_http(f"http://127.0.0.1:{floor_port}/bench-floor", proc=floor_proc)
        print(f"machine: {machine()}")

        # Downloads, interleaved.
        dl_cases = {("nginx", "full"): (nginx_file, None), ("dcslog", "full"): (link, None),
                    ("nginx", "range"): (nginx_file, RANGE_BYTES), ("dcslog", "range"): (link, RANGE_BYTES)}
        times: dict[tuple[str, str], list[float]] = {k: [] for k in dl_cases}
        for url, rng in dl_cases.values():  # warm the page cache and both servers
            curl(url, rng)
        for _ in range(args.reps):
            for key, (url, rng) in dl_cases.items():
                seconds, got, status = curl(url, rng)
                expect = (206, min(RANGE_BYTES, item["size"])) if rng else (200, item["size"])
                if (status, got) != expect:
                    raise RuntimeError(f"{key}: got {status} {got} bytes, expected {expect}")
                times[key].append(seconds)

        # Small requests, interleaved rounds.
        scripts = work / "lua"
        scripts.mkdir(exist_ok=True)
        link_path = f"/v2/{PROJECT}/instances/{instance_id}/redislog/{item['id']}/links"
        wrk_cases = {
            "nginx fixed body": (f"http://127.0.0.1:{nginx_port}", lambda: lua_script(
                scripts / "fixed.lua", "GET", {}, ["/fixed"])),
            "floor (no DB)": (f"http://127.0.0.1:{floor_port}", lambda: lua_script(
                scripts / "floor.lua", "GET", {}, ["/bench-floor"])),
            "GET /health": (base, lambda: lua_script(scripts / "health.lua", "GET", {}, ["/health"])),
            "POST link, token": (base, lambda: lua_script(
                scripts / "link_token.lua", "POST", {"X-Auth-Token": token}, [link_path])),
            "link, minimal handler": (f"http://127.0.0.1:{floor_port}", lambda: lua_script(
                scripts / "link_minimal.lua", "POST", {"X-Auth-Token": token}, [f"/bench-minimal-link{link_path}"])),
            "POST link, AK/SK": (base, lambda: lua_script(
                scripts / "link_aksk.lua", "POST",
                {k: v for k, v in sign_request(credential["access_key"], credential["secret_key"], "POST",
                                               f"{base}{link_path}").items() if k != "Host"},
                [link_path])),
        }
        # The signature is checked once, outside wrk, so a failure here is not a wrk mystery.
        signed = sign_request(credential["access_key"], credential["secret_key"], "POST", f"{base}{link_path}")
        check = httpx.post(f"{base}{link_path}", headers=signed)
        assert check.status_code == 200, check.text
        runs: dict[str, list[dict]] = {k: [] for k in wrk_cases}
        for n in range(args.rounds):
            for name, (url, script) in wrk_cases.items():
                result = run_wrk(url, script(), args.wrk_seconds)
                runs[name].append(result)
                print(f"  round {n + 1} {name:18} {result['rps']:9.0f} req/s  p99 {result['p99_us'] / 1000:6.2f} ms"
                      f"  errors {result['errors']}" + (f"  ({result['first_bad'][:120]})" if result["errors"] else ""))
    finally:
        procs.close()
        nodes.close()

    # Report.
    failures: list[str] = []
    print("\nDownloads (curl -o /dev/null, 127.0.0.1), medians of", args.reps)
    print(f"| Server | full {item['size'] / 2**20:.0f} MiB | GB/s | vs nginx | Range last 100 MiB | GB/s | vs nginx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for server in ("nginx", "dcslog"):
        cells = []
        for kind, nbytes in (("full", item["size"]), ("range", min(RANGE_BYTES, item["size"]))):
            med = statistics.median(times[(server, kind)])
            ratio = statistics.median(times[("nginx", kind)]) / med
            cells += [f"{med * 1000:.0f} ms", f"{nbytes / med / 1e9:.2f}", f"{ratio:.2f}"]
            if server == "dcslog" and ratio < 0.8:
                failures.append(f"download {kind}: {ratio:.2f}x nginx < 0.8x")
        print(f"| {server} | " + " | ".join(cells) + " |")

    med = {k: statistics.median(r["rps"] for r in v) for k, v in runs.items()}
    p50 = {k: statistics.median(r["p50_us"] for r in v) / 1000 for k, v in runs.items()}
    p99 = {k: statistics.median(r["p99_us"] for r in v) / 1000 for k, v in runs.items()}
    errors = {k: sum(r["errors"] for r in v) for k, v in runs.items()}
    nginx_rps, floor_rps, health_rps = med["nginx fixed body"], med["floor (no DB)"], med["GET /health"]
    print(f"\nSmall requests (wrk -t1 -c32 -d{args.wrk_seconds:g}s, one server process), "
          f"medians of {args.rounds} rounds")
    print("| Case | req/s | vs nginx | vs floor | vs /health | p50 | p99 | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in runs:
        print(f"| {name} | {med[name]:,.0f} | {med[name] / nginx_rps:.3f} | {med[name] / floor_rps:.2f} | "
              f"{med[name] / health_rps:.2f} | {p50[name]:.2f} ms | {p99[name]:.2f} ms | {errors[name]} |")
        if errors[name]:
            failures.append(f"{name}: {errors[name]} errors")
    if floor_rps / nginx_rps < 0.10:
        failures.append(f"floor {floor_rps / nginx_rps:.3f}x nginx < 0.10x")
    if health_rps / nginx_rps < 0.10:
        print(f"note: /health {health_rps / nginx_rps:.3f}x nginx (< 0.10x; it does a DB query)")
    for name in ("POST link, token", "POST link, AK/SK"):
        if med[name] / floor_rps < 0.6:
            failures.append(f"{name}: {med[name] / floor_rps:.2f}x floor < 0.6x")
    if not args.keep:
        for leftover in ("data", "nginx", "nodes"):
            shutil.rmtree(work / leftover, ignore_errors=True)
    print("\nTargets: downloads >= 0.8x nginx; link >= 0.6x floor; floor >= 0.10x nginx")
    for failure in failures:
        print(f"MISSED: {failure}")
    print("all targets met" if not failures else f"{len(failures)} target(s) missed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
