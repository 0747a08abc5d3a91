"""The quick-start path as a user runs it: `dcslog serve` as a process, the CLI as processes, curl-like HTTP."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from dcslog.testing.ports import free_port
from dcslog.testing.processes import stop_processes
from dcslog.testing.waiting import answers, wait_for

DCSLOG = [sys.executable, "-m", "dcslog.cli"]


def run_cli(env, *args) -> dict | list:
    done = subprocess.run([*DCSLOG, *args, "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def served(tmp_path):
    port = free_port()
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
    assert item["time"] == datetime.now(UTC).date().isoformat()
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


ERROR_KEYS = {"exit_status", "status", "error_code", "error_msg", "error_ext_msg", "request_id"}


def json_error(stdout: str) -> dict:
    """What a failed command prints on stdout with --json: only the error object, in the client
    commands' shape (tests/test_client_cli.py), never a partial result."""
    body = json.loads(stdout)
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    return body["error"]


def test_cli_errors_go_to_stderr(tmp_path):
    env = {**os.environ, "DCSLOG_DATA_DIR": str(tmp_path / "data")}
    run_cli(env, "db", "upgrade")  # admin commands need a database: this one fails on the Redis node
    done = subprocess.run([*DCSLOG, "instances", "import", "--project-id", "demo", "--name", "x",
                           "--redis", "redis://:hunter2@127.0.0.9:1", "--json"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and json_error(done.stdout)["exit_status"] == 1
    assert "error:" in done.stderr and "hunter2" not in done.stderr + done.stdout
    assert "no dcslog database" not in done.stderr


def test_api_only_server_and_a_separate_worker(tmp_path, redis_standalone):
    port = free_port()
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
    port = free_port()
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


# --- Which database the admin commands use, and who may read it ---------------------------------

def clean_env(**settings: str) -> dict[str, str]:
    """This environment without any DCSLOG_* of the caller's, plus ``settings``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("DCSLOG_")}, **settings}


def dcslog_run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    # umask 022, the common default: what the old code turned into 0644 files and 0755 directories.
    return subprocess.run([*DCSLOG, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          umask=0o022)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


ADMIN_COMMANDS = [("credentials", "create", "--project-id", "demo"), ("token", "create", "--project-id", "demo"),
                  ("credentials", "list"), ("instances", "list")]


def test_admin_commands_never_start_an_empty_database(tmp_path):
    """Run from the wrong directory, an admin command used to make a new ./data and print keys that the
    running service then refused ("Invalid signature."). It now refuses, says where it looked and how
    to point it elsewhere, and leaves nothing behind."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for command in ADMIN_COMMANDS:
        for output in ([], ["--json"]):
            done = dcslog_run(elsewhere, clean_env(), *command, *output)
            assert done.returncode == 1, (command, done.stderr)
            assert f"{elsewhere / 'data' / 'dcslog.db'} does not exist" in done.stderr
            if output:
                error = json_error(done.stdout)
                assert error["exit_status"] == 1 and "does not exist" in error["error_msg"]
            else:
                assert done.stdout == ""
            for hint in ("DCSLOG_DATA_DIR", "DCSLOG_DATABASE_URL", "DCSLOG_CONFIG_FILE", "where `dcslog serve` runs",
                         "dcslog db upgrade"):
                assert hint in done.stderr, (hint, done.stderr)
    assert list(elsewhere.iterdir()) == []  # no ./data, no database, no server.key
    # A directory given explicitly is named as such.
    done = dcslog_run(elsewhere, clean_env(DCSLOG_DATA_DIR=str(tmp_path / "typo")), *ADMIN_COMMANDS[0])
    assert done.returncode == 1 and f"DCSLOG_DATA_DIR={tmp_path / 'typo'}" in done.stderr
    assert not (tmp_path / "typo").exists()


def test_quick_start_serve_then_admin_commands_in_the_same_directory(tmp_path):
    """README's quick start: `dcslog serve` in a directory, `dcslog credentials create` in the same one
    (no DCSLOG_DATA_DIR): they meet in its ./data, and text output says which database it was."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    port = free_port()
    env = clean_env(DCSLOG_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([*DCSLOG, "serve"], cwd=here, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: answers(base), timeout=30, what="dcslog serve to answer")
        database = here / "data" / "dcslog.db"
        done = dcslog_run(here, env, "token", "create", "--project-id", "demo", "--json")
        assert done.returncode == 0 and "using" not in done.stderr  # --json: the answer and nothing else
        token = json.loads(done.stdout)["token"]
        assert httpx.get(f"{base}/v2/demo/instances", headers={"X-Auth-Token": token}).status_code == 200
        done = dcslog_run(here, env, "credentials", "create", "--project-id", "demo")
        assert done.returncode == 0 and f"dcslog: using SQLite database {database}" in done.stderr
        assert "ACCESS_KEY" in done.stdout and "using" not in done.stdout
        # Elsewhere: refused, until pointed at the service's directory.
        assert dcslog_run(elsewhere, env, "token", "create", "--project-id", "demo").returncode == 1
        done = dcslog_run(elsewhere, {**env, "DCSLOG_DATA_DIR": str(here / "data")},
                          "token", "create", "--project-id", "demo", "--json")
        assert done.returncode == 0, done.stderr
        token = json.loads(done.stdout)["token"]
        assert httpx.get(f"{base}/v2/demo/instances", headers={"X-Auth-Token": token}).status_code == 200
        assert list(elsewhere.iterdir()) == []
    finally:
        stop_processes(proc)
    assert "SQLite database" in (tmp_path / "serve.log").read_text()  # serve says which database it serves


def test_db_upgrade_creates_the_database_explicitly(tmp_path):
    env = clean_env(DCSLOG_DATA_DIR=str(tmp_path / "data"))
    done = dcslog_run(tmp_path, env, "db", "upgrade", "--json")
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert created["created"] is True and created["database"] == f"SQLite database {tmp_path / 'data' / 'dcslog.db'}"
    assert created["revision"]
    done = dcslog_run(tmp_path, env, "credentials", "create", "--project-id", "demo", "--json")
    assert done.returncode == 0, done.stderr
    again = json.loads(dcslog_run(tmp_path, env, "db", "upgrade", "--json").stdout)
    assert again == {**created, "created": False}


def test_admin_commands_on_postgresql_without_the_schema(tmp_path, postgres):
    """A PostgreSQL database nobody initialised is refused the same way, named without its password."""
    url = postgres.create_database().replace("postgresql+psycopg://dcslog@", "postgresql+psycopg://dcslog:pw-hunter2@")
    env = clean_env(DCSLOG_DATABASE_URL=url, DCSLOG_SERVER_KEY=Fernet.generate_key().decode())
    done = dcslog_run(tmp_path, env, "credentials", "create", "--project-id", "demo", "--json")
    assert done.returncode == 1 and "holds no dcslog schema" in json_error(done.stdout)["error_msg"]
    assert "holds no dcslog schema" in done.stderr and "dcslog:***@127.0.0.1" in done.stderr
    assert "pw-hunter2" not in done.stderr + done.stdout and "dcslog db upgrade" in done.stderr
    done = dcslog_run(tmp_path, env, "db", "upgrade", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["created"] is True and "pw-hunter2" not in done.stdout
    done = dcslog_run(tmp_path, env, "credentials", "create", "--project-id", "demo")
    assert done.returncode == 0, done.stderr
    assert "dcslog: using postgresql+psycopg://dcslog:***@127.0.0.1" in done.stderr and "pw-hunter2" not in done.stderr
    # A server nobody answers at: said, with the URL, never the password.
    done = dcslog_run(tmp_path, {**env, "DCSLOG_DATABASE_URL": url.replace(f":{postgres.port}/", f":{free_port()}/")},
                      "instances", "list")
    assert done.returncode == 1 and "cannot open the database postgresql+psycopg://dcslog:***@" in done.stderr
    assert "pw-hunter2" not in done.stderr and "Traceback" not in done.stderr


def assert_owner_only(data_dir: Path, *, wal: bool) -> None:
    assert mode(data_dir) == 0o700
    database = data_dir / "dcslog.db"
    assert mode(database) == 0o600
    for side in ("-wal", "-shm"):
        path = Path(f"{database}{side}")
        if wal:
            assert path.exists(), path
        if path.exists():
            assert mode(path) == 0o600, path


def test_database_and_data_directory_are_owner_only_when_serve_makes_them(tmp_path):
    port = free_port()
    env = clean_env(DCSLOG_DATA_DIR=str(tmp_path / "data"), DCSLOG_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([*DCSLOG, "serve"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                umask=0o022)
    try:
        wait_for(lambda: answers(base), timeout=30, what="dcslog serve to answer")
        assert dcslog_run(tmp_path, env, "credentials", "create", "--project-id", "demo").returncode == 0
        assert_owner_only(tmp_path / "data", wal=True)  # the server holds the database open: WAL files exist
        assert mode(tmp_path / "data" / "server.key") == 0o600
    finally:
        stop_processes(proc)


def test_database_and_data_directory_are_owner_only_when_db_upgrade_makes_them(tmp_path):
    env = clean_env(DCSLOG_DATA_DIR=str(tmp_path / "upgraded"))
    assert dcslog_run(tmp_path, env, "db", "upgrade").returncode == 0
    assert_owner_only(tmp_path / "upgraded", wal=False)


def test_database_and_data_directory_are_owner_only_when_a_worker_makes_them(tmp_path):
    env = clean_env(DCSLOG_DATA_DIR=str(tmp_path / "worker"), DCSLOG_WORKER_POLL_INTERVAL="0.2")
    with open(tmp_path / "worker.log", "wb") as log:
        proc = subprocess.Popen([*DCSLOG, "worker"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                umask=0o022)
    try:
        database = tmp_path / "worker" / "dcslog.db"
        # Its first look for jobs opens the database: SQLite makes the -wal and -shm files then.
        wait_for(lambda: proc.poll() is not None
                 or all(Path(f"{database}{side}").exists() for side in ("-wal", "-shm")),
                 what="the worker to open its database")
        assert proc.poll() is None, (tmp_path / "worker.log").read_text()
        assert_owner_only(tmp_path / "worker", wal=True)
    finally:
        stop_processes(proc)


def test_an_older_open_database_is_made_owner_only_and_an_open_directory_is_reported(tmp_path):
    """A database an older dcslog made 0644 (with its -wal/-shm) is dcslog's own: any command makes it
    0600. The directory may be the operator's (a mount point, a backup group): a warning, no chmod."""
    data = tmp_path / "data"
    env = clean_env(DCSLOG_DATA_DIR=str(data))
    assert dcslog_run(tmp_path, env, "db", "upgrade").returncode == 0
    database = data / "dcslog.db"
    os.chmod(data, 0o755)
    os.chmod(database, 0o644)
    old = os.umask(0o022)
    try:
        # Held open in WAL mode, as a running older server would: SQLite makes -wal/-shm 0644 like the file.
        holder = sqlite3.connect(database)
        holder.execute("PRAGMA journal_mode=WAL")
        holder.execute("CREATE TABLE IF NOT EXISTS probe (x)")
        holder.execute("INSERT INTO probe VALUES (1)")
        holder.commit()
    finally:
        os.umask(old)
    try:
        assert mode(Path(f"{database}-wal")) == 0o644 and mode(Path(f"{database}-shm")) == 0o644
        done = dcslog_run(tmp_path, env, "credentials", "list")
        assert done.returncode == 0, done.stderr
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            assert mode(path) == 0o600, path
        assert f"{data} is open to other users (mode 755)" in done.stderr and f"chmod 700 {data}" in done.stderr
        assert mode(data) == 0o755
    finally:
        holder.close()


def test_the_head_revision_is_alembics_and_a_current_database_is_opened_without_alembic(tmp_path):
    """``head_revision`` reads the migrations' file names; it must agree with Alembic's own
    graph. A server starting on a database already at the head never loads Alembic (memory)."""
    from alembic.script import ScriptDirectory

    from dcslog.db.session import alembic_config, head_revision

    url = f"sqlite+aiosqlite:///{tmp_path}/dcslog.db"
    assert head_revision() == ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    opened = "import sys; from dcslog.db.session import upgrade; upgrade(sys.argv[1]); print('alembic' in sys.modules)"
    loaded = [subprocess.run([sys.executable, "-c", opened, url], capture_output=True, text=True, check=True).stdout
              for _ in range(2)]
    assert loaded == ["True\n", "False\n"]  # created by Alembic, then opened without it
