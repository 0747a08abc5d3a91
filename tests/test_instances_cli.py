"""`dcslog instances import|show|refresh` against real redis-server nodes: replicas reported under
an address that does not reach them, a second import of one deployment, the groups in text mode,
and the Redis password kept off the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dcslog import cli
from dcslog.testing.redis_servers import wait_until
from tests.test_redis_discovery import start_unannounced

DCSLOG = [sys.executable, "-m", "dcslog.cli"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def nodes_of(view: dict) -> list[tuple]:
    return [(n["replication_ip"], n["replication_port"], n["replication_role"], n["status"], n["address_error"])
            for g in view["group_list"] for n in g["replication_list"]]


# -- replicas reported under an address that does not reach them ---------------------------------

def test_import_explains_a_replica_address_that_reaches_nobody_and_refresh_takes_the_fix(
        dcslog_server, redis_node_factory, capsys):
    primary, replica = start_unannounced(redis_node_factory)
    reported = f"127.0.0.1:{replica.port}"
    code, out, err = run(capsys, "instances", "import", "--project-id", "proj-a", "--name", "c", "--redis",
                         primary.url, "--json")
    assert code == 0, err
    view = json.loads(out)
    [(m_ip, m_port, _, m_status, m_error), (r_ip, r_port, r_role, r_status, r_error)] = nodes_of(view)
    assert (m_ip, m_port, m_status, m_error) == (primary.host, primary.port, "Active", None)
    assert (r_ip, r_port, r_role, r_status) == ("127.0.0.1", replica.port, "slave", "Inactive")
    assert "replica-announce-ip" in r_error and f"--replica-address {reported}=HOST:PORT" in r_error
    # Said on stderr too, as what it is: not a log-file problem.
    assert f"warning: {reported}: The primary {primary.address} reports a replica at {reported}" in err
    assert "--logfile" not in err

    # The fix: the replica announces its address. A refresh lists it there, and forgets the
    # address that reached nobody (there was nothing of it to keep).
    replica.stop()
    replica.args += ["--replica-announce-ip", replica.host]
    replica.start()
    wait_until(lambda: primary.info("replication").get("slave0", {}).get("ip") == replica.host, 15,
               "the primary to report the announced address")
    refreshed = dcslog_server.cli("instances", "refresh", view["instance_id"])
    assert nodes_of(refreshed) == [(primary.host, primary.port, "master", "Active", None),
                                   (replica.host, replica.port, "slave", "Active", None)]
    assert refreshed["group_list"][0]["replication_list"][1]["log_file"] == replica.log_file


def test_the_real_address_given_at_import_or_refresh(dcslog_server, redis_node_factory, capsys):
    primary, replica = start_unannounced(redis_node_factory)
    reported = f"127.0.0.1:{replica.port}"
    expected = [(primary.host, primary.port, "master", "Active", None),
                (replica.host, replica.port, "slave", "Active", None)]
    imported = dcslog_server.import_instance(primary.url, "proj-a", "given", "--replica-address",
                                             f"{reported}={replica.address}")
    assert nodes_of(imported) == expected
    assert imported["group_list"][0]["replication_list"][1]["log_file"] == replica.log_file
    assert nodes_of(dcslog_server.cli("instances", "refresh", imported["instance_id"])) == expected  # kept

    # Given later, to refresh: the unconfirmed address goes, the real one comes.
    later = dcslog_server.import_instance(primary.url, "proj-b", "later")
    assert nodes_of(later)[1][:4] == ("127.0.0.1", replica.port, "slave", "Inactive")
    refreshed = dcslog_server.cli("instances", "refresh", later["instance_id"], "--replica-address",
                                  f"{reported}={replica.address}")
    assert nodes_of(refreshed) == expected

    # An address the primary does not report is refused, naming the ones it does.
    code, out, err = run(capsys, "instances", "import", "--project-id", "proj-c", "--name", "typo", "--redis",
                         primary.url, "--replica-address", f"127.0.0.1:1={replica.address}")
    assert code == 1 and "--replica-address names 127.0.0.1:1" in err and reported in err
    code, out, err = run(capsys, "instances", "import", "--project-id", "proj-c", "--name", "typo", "--redis",
                         primary.url, "--replica-address", f"{reported}=nowhere")
    assert code == 1 and "HOST:PORT" in err
    assert dcslog_server.cli("instances", "list", "--project-id", "proj-c") == []


# -- one deployment, one instance ------------------------------------------------------------------

def test_a_second_import_of_a_deployment_is_refused_unless_forced(dcslog_server, redis_replicated, capsys):
    first = dcslog_server.import_instance(redis_replicated.primary.url, "proj-a", "first")
    # Through another of its nodes, under another name: the same deployment all the same.
    code, out, err = run(capsys, "instances", "import", "--project-id", "proj-a", "--name", "second", "--redis",
                         redis_replicated.replicas[1].url)
    assert code == 1
    assert f"instance {first['instance_id']} ('first')" in err and "--force" in err
    assert [i["instance_id"] for i in dcslog_server.cli("instances", "list", "--project-id", "proj-a")] == [
        first["instance_id"]]
    # Another project may import it; --force makes a second instance in the same one.
    dcslog_server.import_instance(redis_replicated.primary.url, "proj-b", "theirs")
    forced = dcslog_server.import_instance(redis_replicated.replicas[1].url, "proj-a", "second", "--force")
    assert forced["instance_id"] != first["instance_id"]
    assert len(dcslog_server.cli("instances", "list", "--project-id", "proj-a")) == 2


# -- text output -----------------------------------------------------------------------------------

def test_show_prints_the_groups_in_text_mode(dcslog_server, redis_replicated, capsys):
    imported = dcslog_server.import_instance(redis_replicated.primary.url)
    code, out, err = run(capsys, "instances", "show", imported["instance_id"])
    assert code == 0, err
    lines = out.splitlines()
    assert ["GROUP", "REPLICATION_ID", "ROLE", "ADDRESS", "STATUS", "LOG_FILE"] in [line.split() for line in lines]
    ids = [n["replication_id"] for n in imported["group_list"][0]["replication_list"]]
    for replication_id, node, role in zip(ids, redis_replicated.nodes, ["master", "slave", "slave"], strict=True):
        [line] = [line for line in lines if replication_id in line]
        assert line.split() == ["group-0", replication_id, role, node.address, "Active", node.log_file]


def test_an_admin_error_is_reported_as_every_command_reports_one(dcslog_server, capsys):
    """`error: …` on stderr, exit status 1, and with --json the client commands' JSON error, carrying
    the DCS code of an error the API has too; in text mode, nothing on stdout."""
    unknown = "00000000-0000-4000-8000-000000000000"
    code, out, err = run(capsys, "instances", "show", unknown, "--json")
    assert (code, err) == (1, "error: The instance does not exist.\n")
    assert json.loads(out) == {"error": {"exit_status": 1, "status": None, "error_code": "DCS.3022",
                                         "error_msg": "The instance does not exist.", "error_ext_msg": None,
                                         "request_id": None}}
    code, out, err = run(capsys, "credentials", "delete", "NOSUCHKEY")
    assert code == 1 and out == "" and "error: No credential with access key NOSUCHKEY." in err
    code, out, err = run(capsys, "instances", "import", "--project-id", "p", "--name", "n", "--redis",
                         "redis://127.0.0.2:1", "--log-file", "nonsense", "--json")
    error = json.loads(out)["error"]
    assert code == 1 and error["error_code"] is None and "--log-file 'nonsense'" in error["error_msg"]


# -- the Redis password ----------------------------------------------------------------------------

SECRET = "pw-Never-In-Argv-7f3a"


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_the_redis_password_is_never_on_a_command_line(dcslog_server, redis_node_factory):
    node = redis_node_factory(password=SECRET)
    url = f"redis://{node.address}"
    env = {k: v for k, v in os.environ.items() if k != "DCSLOG_REDIS_PASSWORD"}

    # From the environment.
    argv = [*DCSLOG, "instances", "import", "--project-id", "proj-a", "--name", "env", "--redis", url, "--json"]
    proc = subprocess.Popen(argv, env={**env, "DCSLOG_REDIS_PASSWORD": SECRET}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = cmdline(proc.pid)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert SECRET not in seen and SECRET not in " ".join(argv) and SECRET not in out + err
    view = json.loads(out)
    assert view["no_password_access"] == "false"
    assert nodes_of(view) == [(node.host, node.port, "master", "Active", None)]

    # Asked for: from stdin when it is not a terminal. The process waits for it, so its command
    # line is read while it runs.
    argv = [*DCSLOG, "instances", "import", "--project-id", "proj-b", "--name", "prompt", "--redis", url,
            "--password-prompt", "--json"]
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen = cmdline(proc.pid)
    out, err = proc.communicate(SECRET + "\n", timeout=120)
    assert proc.returncode == 0, err
    assert SECRET not in seen and SECRET not in " ".join(argv) and SECRET not in out + err
    view = json.loads(out)
    assert nodes_of(view) == [(node.host, node.port, "master", "Active", None)]
    # Stored (encrypted) with the instance: a refresh needs nothing more.
    assert dcslog_server.cli("instances", "refresh", view["instance_id"])["status"] == "RUNNING"


def test_a_password_in_the_url_still_works_with_a_warning(dcslog_server, redis_node_factory, capsys, monkeypatch):
    monkeypatch.delenv("DCSLOG_REDIS_PASSWORD", raising=False)
    node = redis_node_factory(password=SECRET)
    code, out, err = run(capsys, "instances", "import", "--project-id", "proj-a", "--name", "old", "--redis",
                         node.url, "--json")
    assert code == 0, err
    assert "warning: the password in --redis" in err and "DCSLOG_REDIS_PASSWORD" in err and SECRET not in err
    assert nodes_of(json.loads(out)) == [(node.host, node.port, "master", "Active", None)]


def test_a_confirmed_replica_that_is_silent_at_a_refresh_keeps_its_address_and_log(dcslog_server, redis_replicated):
    """A replica down (here: paused) while the primary still lists it is down, not misaddressed: it
    stays a confirmed node with its log file, and the harvester goes on trying it."""
    view = dcslog_server.import_instance(redis_replicated.primary.url)
    replica = redis_replicated.replicas[0]
    replica.pause()
    try:
        refreshed = dcslog_server.cli("instances", "refresh", view["instance_id"])
    finally:
        replica.resume()
    [node] = [n for g in refreshed["group_list"] for n in g["replication_list"]
              if (n["replication_ip"], n["replication_port"]) == (replica.host, replica.port)]
    assert node["status"] == "Inactive" and node["address_error"] is None
    assert node["log_file"] == replica.log_file
    dcslog_server.harvest()
    refreshed = dcslog_server.cli("instances", "refresh", view["instance_id"])
    assert all(n["status"] == "Active" for g in refreshed["group_list"] for n in g["replication_list"])
