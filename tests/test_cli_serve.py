"""The quick-start path as a user runs it: `dcslog serve` as a process, the CLI as processes, curl-like HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from tests.dcslog_fixtures import _free_port, answers, stop_processes, wait_for

DCSLOG = [sys.executable, "-m", "dcslog.cli"]


def run_cli(env, *args) -> dict | list:
    done = subprocess.run([*DCSLOG, *args, "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def served(tmp_path):
    port = _free_port()
    env = {**os.environ, "DCSLOG_DATA_DIR": str(tmp_path / "data"), "DCSLOG_PORT": str(port),
           "DCSLOG_LOG_LEVEL": "DEBUG", "DCSLOG_LOG_FORMAT": "json"}
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*DCSLOG, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    try:
        wait_for(lambda: answers(base), timeout=30, what="dcslog serve to answer")
        yield env, base, log_path
    finally:
        stop_processes(proc)


def test_quick_start_flow_and_no_secret_in_logs(served, redis_standalone):
    env, base, log_path = served
    credential = run_cli(env, "credentials", "create", "--project-id", "demo")
    assert set(credential) == {"access_key", "secret_key", "project_id", "role"}
    token = run_cli(env, "token", "create", "--project-id", "demo")["token"]
    instance = run_cli(env, "instances", "import", "--project-id", "demo", "--name", "cache",
                       "--redis", redis_standalone.url)
    assert instance["group_list"][0]["replication_list"][0]["replication_ip"] == "127.0.0.2"
    assert [i["instance_id"] for i in run_cli(env, "instances", "list")] == [instance["instance_id"]]

    api = f"{base}/v2/demo/instances/{instance['instance_id']}"
    headers = {"X-Auth-Token": token}
    assert httpx.post(f"{api}/redislog", params={"log_type": "run"}, headers=headers).status_code == 204

    def done():
        listing = httpx.get(f"{api}/redislog", params={"log_type": "run"}, headers=headers).json()
        return listing["file_list"][0] if listing["file_list"][0]["status"] != "creating" else None
    item = wait_for(done, what="collection")
    assert item["status"] == "succeed"
    assert item["time"] == datetime.now(timezone.utc).date().isoformat()
    link = httpx.post(f"{api}/redislog/{item['id']}/links", headers=headers).json()["link"]
    body = httpx.get(link).content
    assert b"Ready to accept connections" in body and len(body) == item["size"]

    httpx.get(f"{api}/redislog", params={"log_type": "run"}, headers={**headers, "X-Request-Id": "quick-start-1"})

    def logged():  # INFO lines are written in batches, every observability.FLUSH_SECONDS
        entries = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        return any(e["request_id"] == "quick-start-1" and "/redislog 200" in e["message"] for e in entries) \
            and entries
    entries = wait_for(logged, what="the access line")
    assert all({"time", "level", "logger", "message", "request_id"} <= set(e) for e in entries)
    log = log_path.read_text()
    assert "GET /downloads/<token>" in log
    for secret in (credential["secret_key"], token, link.rsplit("/", 1)[1]):
        assert secret not in log

    # Human output and removal.
    table = subprocess.run([*DCSLOG, "instances", "list"], env=env, capture_output=True, text=True, check=True).stdout
    assert "INSTANCE_ID" in table and instance["instance_id"] in table
    removed = run_cli(env, "instances", "remove", instance["instance_id"])
    assert removed["files_deleted"] == 1
    assert not list(Path(env["DCSLOG_DATA_DIR"], "files").rglob("*.log"))


def test_cli_errors_go_to_stderr(tmp_path):
    env = {**os.environ, "DCSLOG_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([*DCSLOG, "instances", "import", "--project-id", "demo", "--name", "x",
                           "--redis", "redis://:hunter2@127.0.0.9:1", "--json"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert "error:" in done.stderr and "hunter2" not in done.stderr


def test_api_only_server_and_a_separate_worker(tmp_path, redis_standalone):
    port = _free_port()
    env = {**os.environ, "DCSLOG_DATA_DIR": str(tmp_path / "data"), "DCSLOG_PORT": str(port),
           "DCSLOG_WORKER_POLL_INTERVAL": "0.2", "DCSLOG_ACCESS_LOG": "false"}
    base = f"http://127.0.0.1:{port}"
    procs = [subprocess.Popen([*DCSLOG, "serve", "--no-worker"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        wait_for(lambda: answers(base), timeout=30, what="dcslog serve --no-worker")
        token = run_cli(env, "token", "create", "--project-id", "demo")["token"]
        instance = run_cli(env, "instances", "import", "--project-id", "demo", "--name", "c",
                           "--redis", redis_standalone.url)
        api = f"{base}/v2/demo/instances/{instance['instance_id']}"
        headers = {"X-Auth-Token": token}
        assert httpx.post(f"{api}/redislog", params={"log_type": "run"}, headers=headers).status_code == 204
        status = lambda: httpx.get(f"{api}/redislog", params={"log_type": "run"},  # noqa: E731
                                   headers=headers).json()["file_list"][0]["status"]
        time.sleep(1)
        assert status() == "creating"  # nobody works on it yet
        procs.append(subprocess.Popen([*DCSLOG, "worker"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        wait_for(lambda: status() == "succeed", timeout=30, what="the separate worker to collect")
    finally:
        stop_processes(*procs)



def test_sigterm_lets_a_download_in_flight_finish(tmp_path, redis_standalone):
    """Stopping `dcslog serve` (a deploy, a restart) stops it listening, lets what is in flight
    finish — here a download the client reads slowly — and then exits 0."""
    from tests.test_redislog import log_line, today_utc

    day = today_utc()
    start = datetime(day.year, day.month, day.day, 0, 10)
    lines = b"".join(log_line(start, f"entry {i} " + "x" * 200) for i in range(2000))
    log_file = tmp_path / "redis.log"
    log_file.write_bytes(lines * 80)  # ≈ 36 MB of today: far more than the sockets' buffers
    port = _free_port()
    env = {**os.environ, "DCSLOG_DATA_DIR": str(tmp_path / "data"), "DCSLOG_PORT": str(port)}
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([*DCSLOG, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: answers(base), timeout=30, what="dcslog serve to answer")
        token = run_cli(env, "token", "create", "--project-id", "demo")["token"]
        instance = run_cli(env, "instances", "import", "--project-id", "demo", "--name", "big", "--redis",
                           redis_standalone.url, "--log-file", f"{redis_standalone.address}={log_file}")
        api = f"{base}/v2/demo/instances/{instance['instance_id']}"
        headers = {"X-Auth-Token": token}
        assert httpx.post(f"{api}/redislog", params={"log_type": "run"}, headers=headers).status_code == 204

        def done():
            item = httpx.get(f"{api}/redislog", params={"log_type": "run"}, headers=headers).json()["file_list"][0]
            return item if item["status"] != "creating" else None
        item = wait_for(done, what="collection")
        assert item["status"] == "succeed" and item["size"] == len(lines) * 80
        link = httpx.post(f"{api}/redislog/{item['id']}/links", headers=headers).json()["link"]
        with httpx.stream("GET", link, timeout=60) as response:
            chunks = response.iter_raw(64 * 1024)
            received = len(next(chunks))
            proc.send_signal(signal.SIGTERM)
            time.sleep(1)  # the server is draining now…
            assert proc.poll() is None
            with pytest.raises(httpx.ConnectError):  # …and takes no new connection
                httpx.get(f"{base}/health", timeout=5)
            received += sum(len(chunk) for chunk in chunks)
        assert received == item["size"]  # the download in flight was not cut
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
