"""Collecting through `dcslog agent`: a node whose log file the service cannot read itself."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import pytest
from huaweicloudsdkdcs.v2 import CreateRedislogRequest

from dcslog.agent.client import AGENT_ACCESS_KEY
from dcslog.signing import sign_request
from dcslog.testing.ports import free_port
from dcslog.testing.redis_servers import TlsFiles
from dcslog.testing.waiting import wait_for
from tests.test_faults import big_day, copytruncate_while_collecting
from tests.test_redislog import day_lines, download, today_utc, wait_settled

KEY = "agent-secret-for-tests"


@contextlib.contextmanager
def running_agent(tmp_path, tls: TlsFiles | None = None, extra: tuple[str, ...] = ()):
    """`dcslog agent` on 127.0.0.3, in a mount namespace of its own where ``log_dir`` holds the
    "remote host's" logs; in the tests' (and the service's) namespace ``log_dir`` is an empty directory.

    Yields (agent URL, log_dir as the node reports it, the directory whose files the agent sees there).
    """
    log_dir = tmp_path / "var-log-redis"  # the path on the "remote host"
    remote_files = tmp_path / "remote-host-disk"
    log_dir.mkdir()
    remote_files.mkdir()
    port = free_port("127.0.0.3")
    env = {**os.environ, "DCSLOG_AGENT_KEY": KEY}
    agent_cmd = [sys.executable, "-m", "dcslog.cli", "agent", "--host", "127.0.0.3", "--port", str(port),
                 "--allow-dir", str(log_dir), *extra]
    if tls is not None:
        agent_cmd += ["--tls-cert", tls.cert, "--tls-key", tls.key]
    if os.geteuid() == 0 and shutil.which("unshare"):
        # sh -c SCRIPT $0 $1 COMMAND…: bind the remote disk over log_dir, then exec the agent.
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   'src=$0 dst=$1; shift; mount --bind "$src" "$dst" && exec "$@"',
                   str(remote_files), str(log_dir), *agent_cmd]
    else:  # without root, the agent shares our view of the disk
        command, remote_files = agent_cmd, log_dir
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"{'https' if tls else 'http'}://127.0.0.3:{port}"

    trust = ssl.create_default_context(cafile=tls.cert) if tls else True

    def up():
        try:
            return httpx.get(url + "/v1/runlog/day", verify=trust).status_code == 401
        except httpx.TransportError:
            return False
    try:
        wait_for(up, what="dcslog agent")
        yield url, log_dir, remote_files
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


@pytest.fixture
def agent(tmp_path):
    with running_agent(tmp_path) as running:
        yield running


def import_through_agent(server, node, agent_url: str, log_file: str, name: str = "remote") -> dict:
    """Import ``node`` with its run log at ``log_file`` on its host, read through the agent."""
    return server.import_instance(node.url, "proj-a", name, "--log-file", f"{node.address}={log_file}",
                                  "--agent", f"{node.address}={agent_url}", "--agent-key", KEY)


def test_collection_through_an_agent(dcslog_server, redis_standalone, agent):
    agent_url, log_dir, remote_files = agent
    content = day_lines(today_utc(), 40) + b"  crash report continuation\n"
    (remote_files / "redis.log").write_bytes(content)
    if remote_files != log_dir:  # the service cannot read the node's log file itself
        assert not (log_dir / "redis.log").exists()
    imported = import_through_agent(dcslog_server, redis_standalone, agent_url, f"{log_dir}/redis.log")
    assert imported["group_list"][0]["replication_list"][0]["agent"] == agent_url
    client = dcslog_server.sdk()
    client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
    [item] = wait_settled(client, imported["instance_id"])
    assert item.status == "succeed"
    assert download(client, imported["instance_id"], item.id).content == content


def test_collection_through_an_agent_over_tls(dcslog_server, redis_standalone, tmp_path, monkeypatch):
    """An https:// agent: refused while its certificate is not trusted (a readable reason), collected
    once the service trusts its CA through the standard SSL_CERT_FILE."""
    tls = TlsFiles.create(tmp_path / "tls", hosts=("127.0.0.3",))
    with running_agent(tmp_path, tls) as (agent_url, log_dir, remote_files):
        assert agent_url.startswith("https://")
        content = day_lines(today_utc(), 25)
        (remote_files / "redis.log").write_bytes(content)
        imported = import_through_agent(dcslog_server, redis_standalone, agent_url, f"{log_dir}/redis.log",
                                        "remote-tls")
        instance_id = imported["instance_id"]
        client = dcslog_server.sdk()
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
        [item] = wait_settled(client, instance_id)
        assert item.status == "failed"
        token = dcslog_server.cli("token", "create", "--project-id", "proj-a")["token"]
        tasks = httpx.get(f"{dcslog_server.url}/v2/proj-a/instances/{instance_id}/tasks",
                          headers={"X-Auth-Token": token}).json()["tasks"]
        assert "CERTIFICATE_VERIFY_FAILED" in tasks[0]["error_msg"]

        monkeypatch.setenv("SSL_CERT_FILE", tls.cert)
        client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
        [item] = wait_settled(client, instance_id)
        assert item.status == "succeed"
        assert download(client, instance_id, item.id).content == content


def test_agent_errors_reach_the_user(dcslog_server, redis_standalone, agent):
    agent_url, log_dir, remote_files = agent
    imported = import_through_agent(dcslog_server, redis_standalone, agent_url, "/etc/passwd")
    client = dcslog_server.sdk()
    client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
    [item] = wait_settled(client, imported["instance_id"])
    assert item.status == "failed"
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a")["token"]
    tasks = httpx.get(f"{dcslog_server.url}/v2/proj-a/instances/{imported['instance_id']}/tasks",
                      headers={"X-Auth-Token": token}).json()["tasks"]
    assert "outside the directories this agent serves" in tasks[0]["error_msg"]


def test_agent_refuses_unsigned_wrongly_signed_and_outside_requests(agent):
    agent_url, log_dir, remote_files = agent
    (remote_files / "redis.log").write_bytes(day_lines(today_utc(), 3))
    url = f"{agent_url}/v1/runlog/day?day={today_utc().isoformat()}&log_file={log_dir / 'redis.log'}"
    assert httpx.get(url).status_code == 401
    wrong = sign_request(AGENT_ACCESS_KEY, "not-the-key", "GET", url)
    assert httpx.get(url, headers=wrong).json()["error_code"] == "DCS.1001"
    right = sign_request(AGENT_ACCESS_KEY, KEY, "GET", url)
    assert httpx.get(url, headers=right).content == (remote_files / "redis.log").read_bytes()
    traversal = f"{agent_url}/v1/runlog/day?day={today_utc().isoformat()}&log_file={log_dir}/../../../etc/passwd"
    response = httpx.get(traversal, headers=sign_request(AGENT_ACCESS_KEY, KEY, "GET", traversal))
    assert response.status_code == 403 and response.json()["error_code"] == "DCS.2003"
    stale = sign_request(AGENT_ACCESS_KEY, KEY, "GET", url, now=datetime(2020, 1, 1, tzinfo=UTC))
    assert httpx.get(url, headers=stale).json()["error_code"] == "DCS.1002"


def test_import_needs_the_agent_key(dcslog_server, redis_standalone):
    with pytest.raises(AssertionError):
        dcslog_server.import_instance(redis_standalone.url, "proj-a", "x",
                                      "--agent", f"{redis_standalone.address}=http://127.0.0.3:1")


def test_agent_answers_malformed_http_in_the_envelope(agent):
    """The agent runs on the same connection protocol as the service (app.run_app)."""
    from tests.test_error_shape import raw_exchange

    status, headers, body = raw_exchange(agent[0], b"GET /v1/runlog/day HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
    assert status == 400 and headers["x-request-id"]
    assert json.loads(body)["error_code"] == "DCS.4800"


def test_a_log_that_shrinks_mid_stream_cuts_the_stream(agent):
    """copytruncate on the Redis host while the agent streams: the stream breaks without its
    last chunk (the client sees an incomplete answer), never ends as if the short day were whole."""
    agent_url, log_dir, remote_files = agent
    log = remote_files / "redis.log"
    log.write_bytes(big_day(today_utc(), 48))
    url = f"{agent_url}/v1/runlog/day?day={today_utc().isoformat()}&log_file={log_dir / 'redis.log'}"
    received = 0
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete"):
        with httpx.stream("GET", url, headers=sign_request(AGENT_ACCESS_KEY, KEY, "GET", url), timeout=30) as response:
            assert response.status_code == 200
            chunks = response.iter_raw(64 * 1024)
            received += len(next(chunks))
            os.truncate(log, 1000)  # the agent is blocked on our socket, well before the end of the day
            for chunk in chunks:
                received += len(chunk)
    assert received < len(big_day(today_utc(), 48))


def test_collection_through_an_agent_survives_copytruncate_mid_stream(dcslog_server, redis_standalone, agent):
    """The same rotation during a real collection: the service asks again and gets the day
    from redis.log.1 (whether the rotation lands before, during or after the stream)."""
    agent_url, log_dir, remote_files = agent
    log = remote_files / "redis.log"
    content = big_day(today_utc(), 256)
    log.write_bytes(content)
    imported = import_through_agent(dcslog_server, redis_standalone, agent_url, f"{log_dir}/redis.log")
    rotator = copytruncate_while_collecting(log, dcslog_server.settings.data_dir / "files" / ".staging")
    client = dcslog_server.sdk()
    client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
    rotator.join()
    [item] = wait_settled(client, imported["instance_id"])
    assert item.status == "succeed"  # one rotation: the second ask finds the day whole in redis.log.1
    assert download(client, imported["instance_id"], item.id).content == content


@pytest.mark.parametrize("option", ["--agent", "--log-file"])
def test_import_refuses_a_per_node_option_for_a_node_it_did_not_find(dcslog_server, redis_standalone, capsys,
                                                                     option):
    """A typo in the node address would be stored and never used: the collection would then read
    the wrong place. The import fails, naming the nodes it did find, and stores nothing."""
    from dcslog import cli

    value = "http://127.0.0.3:1" if option == "--agent" else "/var/log/redis/other.log"
    code = cli.main(["instances", "import", "--project-id", "proj-a", "--name", "x", "--redis", redis_standalone.url,
                     option, f"127.0.0.9:6379={value}", "--agent-key", KEY])
    assert code != 0
    message = capsys.readouterr().err
    assert f"{option} names 127.0.0.9:6379" in message and redis_standalone.address in message
    assert dcslog_server.cli("instances", "list", "--project-id", "proj-a") == []


def memory_mib(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MiB."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:")) / 1024


def agent_pid(agent_url: str) -> int:
    port = agent_url.rsplit(":", 1)[1]
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                words = f.read().split(b"\0")
        except OSError:
            continue
        if b"dcslog.cli" in words and b"agent" in words and port.encode() in words:
            return int(entry)
    raise AssertionError(f"no agent process on port {port}")


def test_an_agent_streams_a_big_day_in_bounded_memory(dcslog_server, redis_standalone, agent):
    """A 256 MiB day goes through the agent in chunks: its memory grows by a few MiB, not by the day."""
    agent_url, log_dir, remote_files = agent
    before = memory_mib(agent_pid(agent_url), "VmRSS")
    content = big_day(today_utc(), 256)
    (remote_files / "redis.log").write_bytes(content)
    imported = import_through_agent(dcslog_server, redis_standalone, agent_url, f"{log_dir}/redis.log")
    client = dcslog_server.sdk()
    client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
    [item] = wait_settled(client, imported["instance_id"])
    assert item.status == "succeed"
    assert len(download(client, imported["instance_id"], item.id).content) == len(content)
    assert memory_mib(agent_pid(agent_url), "VmHWM") - before < 32


def test_per_node_addresses_are_keyed_as_collection_looks_them_up():
    from dcslog.services.instances import _node_key

    assert _node_key("[::1]:6379") == "::1:6379"  # collection looks up f"{host}:{port}"
    assert _node_key("10.0.0.5:6379") == "10.0.0.5:6379"
