"""The client commands (``dcslog groups``, ``logs …``, ``slowlog``) against a live dcslog with real redis-server.

They run in-process through ``dcslog.cli.main`` with the client's DCSLOG_*
variables set, and as subprocesses (against ``dcslog serve`` run as a process
too), and talk to the server only over HTTP, signed with AK/SK (or a token)
exactly as the SDK signs.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from dcslog import cli
from dcslog.client.commands import parse_time
from dcslog.client.config import ClientConfig, ConfigError, load_config
from dcslog.client.progress import ByteProgress, StatusBoard
from dcslog.testing.ports import free_port
from dcslog.testing.processes import stop_processes
from dcslog.testing.waiting import answers, wait_for
from tests.test_e2e_sdk import expected_day

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
CLIENT_VARS = ("DCSLOG_ENDPOINT", "DCSLOG_PROJECT_ID", "DCSLOG_AK", "DCSLOG_SK", "DCSLOG_TOKEN", "DCSLOG_PROFILE",
               "DCSLOG_PROFILE_FILE")
DCSLOG = [sys.executable, "-m", "dcslog.cli"]
ERROR_KEYS = {"exit_status", "status", "error_code", "error_msg", "error_ext_msg", "request_id"}


def day_lines(day: date, count: int, width: int = 0) -> bytes:
    start = datetime(day.year, day.month, day.day, 0, 30)
    lines = []
    for i in range(count):
        moment = start + timedelta(seconds=20 * i)
        stamp = f"{moment.day:02d} {MONTHS[moment.month - 1]} {moment.year} {moment:%H:%M:%S}.000"
        lines.append(f"4242:M {stamp} * entry {i} of {day} {'x' * width}\n".encode())
    return b"".join(lines)


def configure_client(server, monkeypatch, tmp_path) -> dict:
    """Point the client at ``server`` with a new operator AK/SK, and no profile file."""
    credential = server.credentials(role="operator")
    for name in CLIENT_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DCSLOG_PROFILE_FILE", str(tmp_path / "no-such-profile.toml"))
    monkeypatch.setenv("DCSLOG_ENDPOINT", server.url)
    monkeypatch.setenv("DCSLOG_PROJECT_ID", credential["project_id"])
    monkeypatch.setenv("DCSLOG_AK", credential["access_key"])
    monkeypatch.setenv("DCSLOG_SK", credential["secret_key"])
    return credential


@pytest.fixture
def client_env(dcslog_server, monkeypatch, tmp_path):
    """The client configured for dcslog_server with an operator AK/SK, and no profile file."""
    return configure_client(dcslog_server, monkeypatch, tmp_path)


@pytest.fixture
def synthetic(dcslog_server, client_env, redis_standalone, tmp_path):
    """A standalone instance whose run log is a synthetic file: 3 days, today's ~600 KB."""
    today = datetime.now(UTC).date()
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    with gzip.open(log_dir / "redis.log.1.gz", "wb") as f:
        f.write(day_lines(today - timedelta(days=2), 7))
    today_bytes = day_lines(today, 3000, width=150)
    (log_dir / "redis.log").write_bytes(day_lines(today - timedelta(days=1), 2) + today_bytes)
    imported = dcslog_server.import_instance(
        redis_standalone.url, "proj-a", "synthetic",
        "--log-file", f"{redis_standalone.address}={log_dir / 'redis.log'}")
    node = imported["group_list"][0]["replication_list"][0]
    return {"instance": imported["instance_id"], "replica": node["replication_id"], "address": redis_standalone.address,
            "ip": node["replication_ip"], "today": today, "today_bytes": today_bytes,
            "expected": {str(today): today_bytes,
                         str(today - timedelta(days=1)): day_lines(today - timedelta(days=1), 2),
                         str(today - timedelta(days=2)): day_lines(today - timedelta(days=2), 7)}}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def collected(capsys, synthetic, days: int = 3) -> list[dict]:
    result = run_json(capsys, "logs", "collect", "--instance", synthetic["instance"], "--replica", synthetic["replica"],
                      "--days", str(days), "--wait", "--interval", "0.2", "--timeout", "60")
    return result["files"]


# -- groups ---------------------------------------------------------------------------------------

def test_groups_shows_shards_and_replicas_with_their_ids(dcslog_server, client_env, redis_replicated, capsys):
    imported = dcslog_server.import_instance(redis_replicated.primary.url)
    nodes = imported["group_list"][0]["replication_list"]
    code, out, err = run(capsys, "groups", "--instance", imported["instance_id"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["GROUP", "REPLICATION_ID", "ROLE", "ADDRESS", "STATUS", "LOG_FILE"]
    assert len(lines) == 4
    for node in nodes:
        [line] = [line for line in lines if node["replication_id"] in line]
        assert line.split()[:5] == ["group-0", node["replication_id"], node["replication_role"],
                                    f"{node['replication_ip']}:{node['replication_port']}", "Active"]
    assert sorted(line.split()[2] for line in lines[1:]) == ["master", "slave", "slave"]
    body = run_json(capsys, "groups", "--instance", imported["instance_id"])
    assert body["group_list"] == imported["group_list"]


# -- collect, list, link, download ---------------------------------------------------------------

def test_collect_wait_shows_progress_until_every_file_is_done(synthetic, capsys):
    code, out, err = run(capsys, "logs", "collect", "--instance", synthetic["instance"],
                         "--replica", synthetic["address"], "--days", "3", "--wait", "--interval", "0.2")
    assert code == 0, err
    # stderr is not a terminal here: plain progress lines, one per file and status.
    assert "collecting the last 3 days of the run log of " + synthetic["address"] in err
    for day in synthetic["expected"]:
        assert f"redis_{synthetic['ip']}_{day}.log: succeed" in err
    assert "\x1b[" not in err
    rows = out.splitlines()
    assert rows[0].split()[:6] == ["ID", "FILE_NAME", "GROUP", "STATUS", "SIZE", "TIME"]
    assert len(rows) == 4 and all(" succeed " in row for row in rows[1:])


def test_collect_list_link_and_download(synthetic, capsys, tmp_path):
    files = collected(capsys, synthetic)
    assert sorted(f["time"] for f in files) == sorted(synthetic["expected"])
    assert all(f["status"] == "succeed" for f in files)

    listing = run_json(capsys, "logs", "list", "--instance", synthetic["instance"])
    assert listing["total_num"] == 3 and {f["id"] for f in listing["file_list"]} == {f["id"] for f in files}
    code, out, _ = run(capsys, "logs", "list", "--instance", synthetic["instance"])
    assert code == 0 and out.count(" succeed ") == 3

    today = next(f for f in files if f["time"] == str(synthetic["today"]))
    code, out, err = run(capsys, "logs", "link", "--instance", synthetic["instance"], today["id"])
    assert code == 0 and "valid until" in err
    link = out.strip()
    assert httpx.get(link).content == synthetic["today_bytes"]  # the link needs no credentials

    target = tmp_path / "today.log"
    result = run_json(capsys, "logs", "download", "--instance", synthetic["instance"], today["id"], "-o", str(target))
    assert target.read_bytes() == synthetic["today_bytes"]
    assert result["verified"] == "sha256" and result["sha256"] == today["sha256"] and result["resumed_from"] == 0
    assert not (tmp_path / "today.log.part").exists()

    # Into a directory, under the file's own name; human output.
    code, out, err = run(capsys, "logs", "download", "--instance", synthetic["instance"], today["id"],
                         "-o", str(tmp_path))
    assert code == 0, err
    assert (tmp_path / today["file_name"]).read_bytes() == synthetic["today_bytes"]
    assert "verified: sha256" in out and f"{today['file_name']}: downloading" in err


def test_get_collects_waits_and_downloads_every_day(synthetic, capsys, tmp_path):
    out_dir = tmp_path / "logs-out"
    result = run_json(capsys, "logs", "get", "--instance", synthetic["instance"], "--replica", synthetic["replica"],
                      "--days", "3", "-o", str(out_dir), "--interval", "0.2")
    assert len(result["files"]) == len(result["downloads"]) == 3
    for f in result["files"]:
        assert (out_dir / f["file_name"]).read_bytes() == synthetic["expected"][f["time"]]
    assert {d["verified"] for d in result["downloads"]} == {"sha256"}
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(f["file_name"] for f in result["files"])

    # Again, human output: a new collection (the same file ids, refreshed) and the files are already there.
    code, out, err = run(capsys, "logs", "get", "--instance", synthetic["instance"], "--replica", synthetic["replica"],
                         "--days", "3", "-o", str(out_dir), "--interval", "0.2")
    assert code == 0, err
    assert err.count("already downloaded and verified") == 3
    assert out.splitlines()[0].split() == ["FILE_NAME", "STATUS", "SIZE", "SAVED_AS", "ERROR"]


class CuttingProxy:
    """A TCP proxy in front of dcslog's download links: it relays bytes both ways, and when armed with
    ``cut_after = N`` it passes only the first N bytes of the next ``GET /downloads/…`` response
    (status line and headers included) and then closes the connection, as a dying link would."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.cut_after: int | None = None
        self.request_heads: list[str] = []  # every request's head, as sent on the wire
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        budget: list[int | None] = [None]  # bytes of the current response still allowed through

        def requests() -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    if data.startswith((b"GET ", b"HEAD ")):
                        self.request_heads.append(data.split(b"\r\n\r\n")[0].decode())
                        if data.startswith(b"GET /downloads/") and self.cut_after is not None:
                            budget[0], self.cut_after = self.cut_after, None  # armed before upstream answers
                    upstream.sendall(data)
                upstream.shutdown(socket.SHUT_WR)
        threading.Thread(target=requests, daemon=True).start()
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if budget[0] is not None and len(data) >= budget[0]:
                    client.sendall(data[:budget[0]])
                    break  # the cut: nothing more of this response, and the connection goes
                if budget[0] is not None:
                    budget[0] -= len(data)
                client.sendall(data)
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def cutting_proxy(dcslog_env, monkeypatch):
    """A CuttingProxy that dcslog's download links point at (DCSLOG_PUBLIC_URL): request it before
    the server fixtures, so the setting is there when the server starts."""
    proxy = CuttingProxy(int(dcslog_env["DCSLOG_PORT"]))
    monkeypatch.setenv("DCSLOG_PUBLIC_URL", proxy.url)
    yield proxy
    proxy.close()


def test_a_download_cut_by_the_other_side_is_resumed_with_range(cutting_proxy, synthetic, capsys, tmp_path):
    today = next(f for f in collected(capsys, synthetic, 0) if f["time"] == str(synthetic["today"]))
    whole = synthetic["today_bytes"]
    target = tmp_path / "resumed.log"
    code, out, _ = run(capsys, "logs", "link", "--instance", synthetic["instance"], today["id"])
    assert code == 0 and out.startswith(cutting_proxy.url + "/downloads/")  # the links go through the proxy

    # The connection is closed 100 kB into the response: exit 5, the bytes so far kept in .part.
    cutting_proxy.cut_after = 100_000
    code, out, err = run(capsys, "logs", "download", "--instance", synthetic["instance"], today["id"],
                         "-o", str(target))
    assert code == 5 and "broke off at" in err and "run the same command again to resume" in err, err
    part = tmp_path / "resumed.log.part"
    kept = part.read_bytes()
    assert 50_000 < len(kept) < 100_000 and whole.startswith(kept) and not target.exists()
    assert (tmp_path / "resumed.log.part.etag").exists()  # If-Range on the next attempt
    assert "range:" not in cutting_proxy.request_heads[-1].lower()

    # The same command again: a Range request from where it broke off, the whole file verified.
    result = run_json(capsys, "logs", "download", "--instance", synthetic["instance"], today["id"], "-o", str(target))
    assert target.read_bytes() == whole
    assert result["resumed_from"] == len(kept) and result["verified"] == "sha256"
    assert result["size"] == len(whole) == today["size"] and result["sha256"] == today["sha256"]
    head = cutting_proxy.request_heads[-1].lower()
    assert head.startswith("get /downloads/")
    assert f"range: bytes={len(kept)}-" in head.splitlines() and "if-range: " in head
    assert not part.exists() and not (tmp_path / "resumed.log.part.etag").exists()


def test_a_partial_file_written_elsewhere_resumes_and_a_wrong_one_is_refetched(synthetic, capsys, tmp_path):
    today = next(f for f in collected(capsys, synthetic, 0) if f["time"] == str(synthetic["today"]))
    whole = synthetic["today_bytes"]

    # The first N bytes, as another tool (or an older run without an ETag) left them.
    good = tmp_path / "good.log"
    (tmp_path / "good.log.part").write_bytes(whole[:100_000])
    result = run_json(capsys, "logs", "download", "--instance", synthetic["instance"], today["id"], "-o", str(good))
    assert result["resumed_from"] == 100_000 and good.read_bytes() == whole

    # A prefix that is not this file's: the SHA-256 check catches it and the file is fetched again, whole.
    bad = tmp_path / "bad.log"
    (tmp_path / "bad.log.part").write_bytes(b"garbage" * 1000)
    result = run_json(capsys, "logs", "download", "--instance", synthetic["instance"], today["id"], "-o", str(bad))
    assert result["resumed_from"] == 0 and bad.read_bytes() == whole

    # A stale ETag: the server answers If-Range with the whole file (200).
    stale = tmp_path / "stale.log"
    (tmp_path / "stale.log.part").write_bytes(b"old content of the day")
    (tmp_path / "stale.log.part.etag").write_text('"0-0"')
    result = run_json(capsys, "logs", "download", "--instance", synthetic["instance"], today["id"], "-o", str(stale))
    assert result["resumed_from"] == 0 and stale.read_bytes() == whole


def test_a_download_that_does_not_match_the_checksum_exits_4(synthetic, capsys, tmp_path, monkeypatch):
    today = next(f for f in collected(capsys, synthetic, 0) if f["time"] == str(synthetic["today"]))
    from dcslog.client import commands

    real = commands.download
    monkeypatch.setattr(commands, "download", lambda http, link, dest, size, sha256: real(
        http, link, dest, size=size, sha256="0" * 64))
    target = tmp_path / "x.log"
    code, out, err = run(capsys, "logs", "download", "--instance", synthetic["instance"], today["id"],
                         "-o", str(target))
    assert code == 4 and "does not match" in err
    assert not target.exists() and not (tmp_path / "x.log.part").exists()


# -- errors and exit statuses ---------------------------------------------------------------------

def test_a_failed_collection_exits_3_with_the_reason(dcslog_server, client_env, redis_node_factory, capsys, tmp_path):
    node = redis_node_factory("127.0.0.3", logfile="")
    imported = dcslog_server.import_instance(node.url)
    code, out, err = run(capsys, "logs", "get", "--instance", imported["instance_id"], "-o", str(tmp_path / "out"),
                         "--interval", "0.2")
    assert code == 3
    assert ": failed" in err and "error: redis_127.0.0.3_" in err and "stdout" in err
    assert list((tmp_path / "out").iterdir()) == []


def test_dcs_errors_are_shown_with_their_code(synthetic, dcslog_server, capsys, monkeypatch):
    missing = "00000000-0000-4000-8000-000000000000"
    code, out, err = run(capsys, "groups", "--instance", missing)
    assert code == 1 and out == ""
    assert err.startswith("error: DCS.3022: ") and "[HTTP 404, request id " in err

    code, out, err = run(capsys, "logs", "link", "--instance", synthetic["instance"], "no-such-file", "--json")
    assert code == 1 and "DCS.4001" in err
    error = json.loads(out)["error"]
    assert set(error) == ERROR_KEYS and error["exit_status"] == 1 and error["status"] == 404
    assert error["error_code"] == "DCS.4001" and error["request_id"]

    code, _, err = run(capsys, "logs", "collect", "--instance", synthetic["instance"], "--replica", "not-a-replica")
    assert code == 1 and "DCS.4800" in err

    code, _, err = run(capsys, "slowlog", "--instance", synthetic["instance"], "--since", "1h", "--until", "2h")
    assert code == 1 and "DCS.4025" in err

    secret = os.environ["DCSLOG_SK"]
    monkeypatch.setenv("DCSLOG_SK", "wrong" + secret[5:])
    code, _, err = run(capsys, "logs", "list", "--instance", synthetic["instance"])
    assert code == 1 and "DCS.1001" in err and secret not in err

    viewer = dcslog_server.credentials(role="viewer")
    monkeypatch.setenv("DCSLOG_AK", viewer["access_key"])
    monkeypatch.setenv("DCSLOG_SK", viewer["secret_key"])
    code, _, err = run(capsys, "logs", "collect", "--instance", synthetic["instance"])
    assert code == 1 and "DCS.2003" in err


def json_error(out: str, exit_status: int) -> dict:
    """The one JSON object --json prints on stdout for an error, checked for its shape."""
    error = json.loads(out)["error"]
    assert set(error) == ERROR_KEYS and error["exit_status"] == exit_status and error["error_msg"], error
    return error


def test_configuration_and_network_errors(client_env, capsys, monkeypatch):
    instance = "00000000-0000-4000-8000-000000000000"
    monkeypatch.delenv("DCSLOG_SK")
    code, out, err = run(capsys, "groups", "--instance", instance)
    assert code == 2 and "needs its secret key" in err and out == ""
    code, out, err = run(capsys, "groups", "--instance", instance, "--json")
    assert code == 2 and "needs its secret key" in err  # the text still on stderr…
    error = json_error(out, 2)  # …and the JSON error on stdout
    assert "needs its secret key" in error["error_msg"] and error["status"] is None and error["error_code"] is None

    monkeypatch.delenv("DCSLOG_AK")
    code, _, err = run(capsys, "groups", "--instance", instance)
    assert code == 2 and "not configured" in err and "DCSLOG_AK" in err

    monkeypatch.setenv("DCSLOG_TOKEN", "anything")
    monkeypatch.setenv("DCSLOG_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    code, _, err = run(capsys, "groups", "--instance", instance)
    assert code == 5 and "cannot reach" in err
    code, out, err = run(capsys, "logs", "list", "--instance", instance, "--json")
    assert code == 5 and "cannot reach" in err and "cannot reach" in json_error(out, 5)["error_msg"]

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main(["logs", "collect", "--instance", instance, "--days", "2"])
    assert exc.value.code == 2 and capsys.readouterr().out == ""
    with pytest.raises(SystemExit) as exc:
        cli.main(["logs", "collect", "--instance", instance, "--days", "2", "--json"])
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and "invalid choice: 2" in err and "invalid choice: 2" in json_error(out, 2)["error_msg"]
    with pytest.raises(SystemExit) as exc:
        cli.main(["slowlog", "--json"])  # a top-level client command: --instance is missing
    out, _ = capsys.readouterr()
    assert exc.value.code == 2 and "--instance" in json_error(out, 2)["error_msg"]


def test_timeout_exits_6_with_the_files_still_creating(dcslog_server_factory, redis_standalone, monkeypatch, tmp_path,
                                                       capsys):
    with dcslog_server_factory(run_worker=False) as server:  # nobody collects: the files stay `creating`
        configure_client(server, monkeypatch, tmp_path)
        instance = server.import_instance(redis_standalone.url)["instance_id"]
        code, out, err = run(capsys, "logs", "collect", "--instance", instance, "--wait", "--timeout", "1",
                             "--interval", "0.2", "--json")
        assert code == 6, err
        assert "error: gave up after 1s with files still creating (--timeout)" in err
        body = json.loads(out)
        assert [f["status"] for f in body["files"]] == ["creating"] and body["instance_id"] == instance
        assert "--timeout" in json_error(out, 6)["error_msg"]


def test_ctrl_c_while_waiting_exits_130(dcslog_server_factory, redis_standalone, monkeypatch, tmp_path):
    with dcslog_server_factory(run_worker=False) as server:  # nobody collects: the wait goes on until Ctrl-C
        credential = configure_client(server, monkeypatch, tmp_path)
        instance = server.import_instance(redis_standalone.url)["instance_id"]
        env = client_process_env(server.url, credential, tmp_path)
        # SIGINT as a terminal delivers it, whatever disposition the test runner left for its children.
        proc = subprocess.Popen([*DCSLOG, "logs", "collect", "--instance", instance, "--wait", "--interval", "0.2",
                                 "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            seen = []
            while not any(": creating" in line for line in seen):  # it is in the wait loop now
                line = proc.stderr.readline()
                assert line, f"the client ended early: {''.join(seen)}"
                seen.append(line)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 130, err
        assert "error: interrupted" in err and "Traceback" not in err
        assert json_error(out, 130)["error_msg"].startswith("interrupted")


def test_profile_file_token_and_precedence(dcslog_server, client_env, synthetic, capsys, monkeypatch, tmp_path):
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
    profile = tmp_path / "config.toml"
    profile.write_text(f'[default]\nendpoint = "http://127.0.0.1:1"\nproject_id = "proj-a"\ntoken = "{token}"\n\n'
                       f'[local]\nendpoint = "{dcslog_server.url}"\nproject_id = "proj-a"\n'
                       f'ak = "{client_env["access_key"]}"\nsk = "{client_env["secret_key"]}"\n')
    for name in CLIENT_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DCSLOG_PROFILE_FILE", str(profile))

    code, out, err = run(capsys, "groups", "--instance", synthetic["instance"], "--profile", "local")
    assert code == 0 and synthetic["replica"] in out, err
    code, _, err = run(capsys, "groups", "--instance", synthetic["instance"])  # [default]: a dead endpoint
    assert code == 5
    monkeypatch.setenv("DCSLOG_ENDPOINT", dcslog_server.url)  # the environment wins, key by key; token auth
    code, out, err = run(capsys, "groups", "--instance", synthetic["instance"])
    assert code == 0 and synthetic["replica"] in out, err
    code, _, err = run(capsys, "groups", "--instance", synthetic["instance"], "--profile", "nope")
    assert code == 2 and "no profile [nope]" in err and "local" in err

    config = load_config("local")
    assert client_env["secret_key"] not in repr(config) and isinstance(config, ClientConfig)
    profile.write_text("[default]\nendpoint = 'x'\nsecret = 1\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_config()


# -- slow log -------------------------------------------------------------------------------------

def test_slowlog_since_sort_limit(dcslog_server, client_env, redis_node_factory, capsys):
    node = redis_node_factory("127.0.0.2", args=["--slowlog-log-slower-than", "10000"])
    imported = dcslog_server.import_instance(node.url)
    with contextlib.closing(node.client()) as r:
        for seconds in ("0.02", "0.05", "0.03"):
            r.execute_command("DEBUG", "SLEEP", seconds)
    dcslog_server.harvest()

    body = run_json(capsys, "slowlog", "--instance", imported["instance_id"], "--since", "1h", "--sort", "duration",
                    "--limit", "2")
    assert body["total_num"] == 3 and body["count"] == 2
    durations = [float(e["duration"]) for e in body["slowlogs"]]
    assert durations == sorted(durations, reverse=True) and durations[0] >= 50
    assert all(e["command"].startswith("DEBUG SLEEP") for e in body["slowlogs"])

    code, out, err = run(capsys, "slowlog", "--instance", imported["instance_id"], "--since", "1h",
                         "--command", "debug", "--asc")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["START_TIME", "DURATION_MS", "NODE", "ROLE", "CLIENT", "COMMAND"]
    assert [line.split()[-1] for line in lines[1:4]] == ["0.02", "0.05", "0.03"]  # oldest first
    assert lines[4].startswith("3 of 3 entries")

    body = run_json(capsys, "slowlog", "--instance", imported["instance_id"], "--since", "1h", "--until", "30m")
    assert body["total_num"] == 0


def test_parse_time():
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_time("90m", now) == now - timedelta(minutes=90)
    assert parse_time("2d", now) == now - timedelta(days=2)
    assert parse_time("now", now) == now
    assert parse_time("2026-05-01T10:00:00", now) == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert parse_time("2026-05-01T10:00:00+02:00", now) == datetime(2026, 5, 1, 8, tzinfo=UTC)
    assert parse_time(str(int(now.timestamp() * 1000)), now) == now


def test_live_progress_redraws_in_place():
    import io

    stream = io.StringIO()
    board = StatusBoard("collecting", stream, live=True)
    board.show([{"id": "a", "file_name": "a.log", "status": "creating"}])
    board.show([{"id": "a", "file_name": "a.log", "status": "succeed", "size": 2048}])
    board.finish()
    assert "\x1b[2F" in stream.getvalue() and "a.log  succeed   2.0 KiB" in stream.getvalue()
    stream = io.StringIO()
    bar = ByteProgress("a.log", 0, stream=stream, live=True)
    bar.finish()
    assert "100%" in stream.getvalue() and stream.getvalue().endswith("\n")


# -- as a real process ----------------------------------------------------------------------------

def client_process_env(endpoint: str, credential: dict, tmp_path: Path) -> dict[str, str]:
    """The environment of a client run as a process: only the client's own DCSLOG_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCSLOG_")}
    env.update({"DCSLOG_ENDPOINT": endpoint, "DCSLOG_PROJECT_ID": credential["project_id"],
                "DCSLOG_AK": credential["access_key"], "DCSLOG_SK": credential["secret_key"],
                "DCSLOG_PROFILE_FILE": str(tmp_path / "none.toml")})
    return env


@pytest.fixture
def serve_process(tmp_path):
    """`dcslog serve` as its own process on a free port; yields (its URL, the environment of its admin CLI)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCSLOG_")}
    env.update({"DCSLOG_DATA_DIR": str(tmp_path / "serve-data"), "DCSLOG_HOST": "127.0.0.1",
                "DCSLOG_PORT": str(port), "DCSLOG_WORKER_POLL_INTERVAL": "0.2"})
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*DCSLOG, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(url) or proc.poll() is not None, what="dcslog serve to answer")
        assert proc.poll() is None, log.read_text()
        yield url, env
    finally:
        stop_processes(proc)


def test_collect_wait_and_get_against_dcslog_serve_as_a_process(serve_process, redis_standalone, tmp_path):
    url, server_env = serve_process

    def dcslog(env, *argv: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess:
        return subprocess.run([*DCSLOG, *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)

    def admin(*argv: str):
        done = dcslog(server_env, *argv, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    credential = admin("credentials", "create", "--project-id", "demo", "--role", "operator")
    instance = admin("instances", "import", "--project-id", "demo", "--name", "cache", "--redis",
                     redis_standalone.url)["instance_id"]
    env = client_process_env(url, credential, tmp_path)
    today = datetime.now(UTC).date()
    name = f"redis_{redis_standalone.host}_{today}.log"

    done = dcslog(env, "logs", "collect", "--instance", instance, "--wait", "--interval", "0.2", "--json")
    assert done.returncode == 0, done.stderr
    assert f"{name}: creating" in done.stderr and f"{name}: succeed" in done.stderr
    [item] = json.loads(done.stdout)["files"]
    assert item["status"] == "succeed" and item["file_name"] == name and item["size"] > 0

    done = dcslog(env, "logs", "get", "--instance", instance, "--days", "0", "-o", "incident", "--interval", "0.2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == ["FILE_NAME", "STATUS", "SIZE", "SAVED_AS", "ERROR"]
    assert f"incident/{name}" in done.stdout
    body = (tmp_path / "incident" / name).read_bytes()
    [listed] = json.loads(dcslog(env, "logs", "list", "--instance", instance, "--json").stdout)["file_list"]
    assert listed["id"] == item["id"]  # collected again: the same file, refreshed in place
    assert hashlib.sha256(body).hexdigest() == listed["sha256"] and len(body) == listed["size"]
    assert b"Ready to accept connections" in body and expected_day(redis_standalone.log_file, today).startswith(body)


def test_as_a_subprocess_with_no_local_server_data(synthetic, client_env, tmp_path):
    empty = tmp_path / "empty-cwd"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCSLOG_")}
    env.update({"DCSLOG_ENDPOINT": os.environ["DCSLOG_ENDPOINT"], "DCSLOG_PROJECT_ID": "proj-a",
                "DCSLOG_AK": client_env["access_key"], "DCSLOG_SK": client_env["secret_key"],
                "DCSLOG_PROFILE_FILE": str(tmp_path / "none.toml"),
                # A server setting that would break the server-side commands: the client never reads it.
                "DCSLOG_DATABASE_URL": "postgresql+asyncpg://nowhere/none"})

    def dcslog(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dcslog.cli", *argv], cwd=empty, env=env, capture_output=True,
                              text=True, timeout=120)

    done = dcslog("logs", "get", "--instance", synthetic["instance"], "--replica", synthetic["replica"],
                  "--days", "1", "-o", "out", "--interval", "0.2", "--json")
    assert done.returncode == 0, done.stderr
    [download] = json.loads(done.stdout)["downloads"]
    assert (empty / "out" / Path(download["file"]).name).read_bytes() == synthetic["today_bytes"]
    assert hashlib.sha256(synthetic["today_bytes"]).hexdigest() == download["sha256"]

    done = dcslog("groups", "--instance", "00000000-0000-4000-8000-000000000000")
    assert done.returncode == 1 and "DCS.3022" in done.stderr
    assert sorted(p.name for p in empty.iterdir()) == ["out"]  # no ./data, no database
