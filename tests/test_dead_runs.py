"""Dead runs, with real processes killed by SIGKILL, on SQLite and on PostgreSQL + S3.

* A restarted `dcslog serve` or `dcslog worker` recognises the runs of a dead process of
  its host at once: their staged files go, their jobs are taken over without waiting
  for the lease (set to 10 minutes here, so only the recognition can explain it).
* A live process's long cut keeps its lease and its staged file while processes beside
  it die and start, however short the lease.
* A worker of another host that dies and does not come back has its job taken over by
  the others within a minute, with the default lease.

A cut is held in the middle, for as long as a test needs, by reading the node's log through a
real `dcslog agent` that the test stops (SIGSTOP) and resumes (SIGCONT): the worker has
staged its file and waits on the agent's answer (up to its 30 s read timeout).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from dcslog.testing.ports import free_port
from dcslog.testing.processes import stop_processes
from dcslog.testing.waiting import answers, wait_for
from tests.backend_fixtures import BACKENDS
from tests.test_redislog import day_lines, today_utc

DCSLOG = [sys.executable, "-m", "dcslog.cli"]
AGENT_KEY = "agent-key-for-dead-run-tests"
SERVER_KEY = "4d2yIHNGdcI2O8sGc1XyM7YQ3ZhfJm7XvAD5KJ8HBNc="


@dataclass
class Agent:
    """A real `dcslog agent` serving ``log_dir``; ``hold()`` stops it, ``release()`` resumes it."""
    proc: subprocess.Popen
    url: str
    log_dir: Path

    def hold(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def release(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


@dataclass
class Deployment:
    """dcslog processes on one database and object store (a backend of ``BACKENDS``), driven as
    an operator would: the CLI, an API process, workers, and `kill -9`."""
    backend: str
    env: dict[str, str]
    tmp: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    token: str = ""
    api: str = ""

    @property
    def staging(self) -> Path:
        data = Path(self.env["DCSLOG_DATA_DIR"])
        return data / "files" / ".staging" if self.backend == "embedded" else data / "staging"

    def staged(self) -> set[Path]:
        return set(self.staging.glob("*.part")) if self.staging.exists() else set()

    def cli(self, *args: str) -> dict:
        done = subprocess.run([*DCSLOG, *args, "--json"], env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def start(self, *args: str, name: str, prefix: tuple[str, ...] = (), **settings: str) -> subprocess.Popen:
        env = {**self.env, **{f"DCSLOG_{k.upper()}": v for k, v in settings.items()}}
        with open(self.tmp / f"{name}.log", "ab") as out:
            proc = subprocess.Popen([*prefix, *DCSLOG, *args], env=env, stdout=out, stderr=out)
        self.procs.append(proc)
        return proc

    def start_api(self) -> None:
        port = free_port()
        self.start("serve", "--no-worker", "--port", str(port), name="api")
        self.api = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(self.api), timeout=30, what="the API process")
        self.token = self.cli("token", "create", "--project-id", "demo")["token"]

    def start_victim(self, **settings: str) -> subprocess.Popen:
        """The process that will be killed: `dcslog serve` (API and worker in one) on the embedded
        default, a `dcslog worker` beside the API processes on PostgreSQL."""
        if self.backend == "embedded":
            return self.start("serve", "--port", str(free_port()), name="victim", **settings)
        return self.start("worker", name="victim", **settings)

    def kill(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def collect(self, instance_id: str, query_time: int = 0) -> None:
        response = httpx.post(f"{self.api}/v2/demo/instances/{instance_id}/redislog",
                              params={"log_type": "run", "query_time": query_time},
                              headers={"X-Auth-Token": self.token})
        assert response.status_code == 204, response.text

    def rows(self, query: str, *params) -> list[tuple]:
        if self.backend == "embedded":
            with sqlite3.connect(Path(self.env["DCSLOG_DATA_DIR"]) / "dcslog.db") as db:
                return db.execute(query.replace("%s", "?"), params).fetchall()
        import psycopg

        url = self.env["DCSLOG_DATABASE_URL"].replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(url, autocommit=True) as db:
            return db.execute(query, params).fetchall()

    def task(self, instance_id: str) -> tuple:
        """(status, lease_owner, attempts, handed_back) of the instance's only task."""
        [row] = self.rows("SELECT status, lease_owner, attempts, handed_back FROM tasks WHERE instance_id = %s",
                          instance_id)
        return row

    def held_by(self, instance_id: str, proc: subprocess.Popen) -> bool:
        owner = self.task(instance_id)[1]
        return owner is not None and f":{proc.pid}:" in owner

    def files(self, instance_id: str) -> list[tuple]:
        return self.rows("SELECT day, status, size FROM log_files WHERE instance_id = %s ORDER BY day", instance_id)

    def download(self, instance_id: str) -> dict[str, bytes]:
        """Every file of the instance, downloaded through its link, by day."""
        headers = {"X-Auth-Token": self.token}
        listing = httpx.get(f"{self.api}/v2/demo/instances/{instance_id}/redislog",
                            params={"log_type": "run", "limit": 10}, headers=headers).json()["file_list"]
        contents = {}
        for item in listing:
            link = httpx.post(f"{self.api}/v2/demo/instances/{instance_id}/redislog/{item['id']}/links",
                              headers=headers).json()["link"]
            contents[item["time"]] = httpx.get(link).content
        return contents


@pytest.fixture
def deployment(request, tmp_path):
    """``deployment(**settings)``: a Deployment on the backend the test is parametrized with."""
    made: list[Deployment] = []

    def make(**settings: str) -> Deployment:
        env = {**os.environ, "DCSLOG_DATA_DIR": str(tmp_path / "data"), "DCSLOG_SERVER_KEY": SERVER_KEY,
               "DCSLOG_WORKER_POLL_INTERVAL": "0.2", "DCSLOG_SLOWLOG_INTERVAL": "3600"}
        env.pop("DCSLOG_JOB_LEASE", None)
        if request.param == "postgres-s3":
            postgres = request.getfixturevalue("postgres")
            s3 = request.getfixturevalue("s3_server")
            env.update({"DCSLOG_DATABASE_URL": postgres.create_database(),
                        "DCSLOG_OBJECT_STORE": s3.store_url(s3.create_bucket()),
                        "DCSLOG_S3_ACCESS_KEY_ID": "test", "DCSLOG_S3_SECRET_ACCESS_KEY": "test"})
        env.update({f"DCSLOG_{k.upper()}": v for k, v in settings.items()})
        made.append(Deployment(request.param, env, tmp_path))
        subprocess.run([*DCSLOG, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
        return made[-1]
    yield make
    for d in made:
        stop_processes(*d.procs)


@pytest.fixture
def agent(tmp_path):
    log_dir = tmp_path / "remote-logs"
    log_dir.mkdir()
    port = free_port("127.0.0.3")
    proc = subprocess.Popen([*DCSLOG, "agent", "--host", "127.0.0.3", "--port", str(port), "--allow-dir",
                             str(log_dir)], env={**os.environ, "DCSLOG_AGENT_KEY": AGENT_KEY},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.3:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/v1/runlog/day").status_code == 401
        except httpx.TransportError:
            return False
    try:
        wait_for(up, what="dcslog agent")
        yield Agent(proc, url, log_dir)
    finally:
        proc.send_signal(signal.SIGCONT)
        stop_processes(proc)


def import_node(d: Deployment, node, agent: Agent, content: bytes, name: str) -> str:
    """An instance for ``node`` whose run log (``content``) is read through ``agent``; its id."""
    log_file = agent.log_dir / f"{name}.log"
    log_file.write_bytes(content)
    return d.cli("instances", "import", "--project-id", "demo", "--name", name, "--redis", node.url,
                 "--log-file", f"{node.address}={log_file}", "--agent", f"{node.address}={agent.url}",
                 "--agent-key", AGENT_KEY)["instance_id"]


@pytest.mark.parametrize("deployment", BACKENDS, indirect=True)
def test_a_restarted_process_takes_over_its_own_dead_run_at_once(deployment, agent, redis_standalone):
    """SIGKILL mid-cut, then the same command again on the same host: the dead run's staged file
    is removed and its job taken over at once, not when its lease (10 minutes) runs out."""
    lease = 600
    d = deployment(job_lease=str(lease))
    content = day_lines(today_utc(), 200)
    instance_id = import_node(d, redis_standalone, agent, content, "node")
    d.start_api()
    agent.hold()
    victim = d.start_victim()
    d.collect(instance_id)
    wait_for(lambda: d.held_by(instance_id, victim) and d.staged(), timeout=30, what="the victim to be mid-cut")
    [dead_part] = d.staged()
    d.kill(victim)
    agent.release()
    assert dead_part.exists() and d.task(instance_id)[0] == "running"

    d.start_victim()  # the restart
    wait_for(lambda: d.files(instance_id)[0][1] != "creating" and d.task(instance_id)[0] != "running",
             timeout=lease / 5, what=f"the dead run to be taken over (long before its {lease} s lease runs out)")
    assert not dead_part.exists()
    assert d.files(instance_id) == [(today_utc().isoformat(), "succeed", len(content))]
    # The dead run counts as an attempt, as a crash does (it was not handed back).
    assert d.task(instance_id) == ("succeed", None, 2, 0)
    assert d.download(instance_id) == {today_utc().isoformat(): content}
    assert d.staged() == set()


@pytest.mark.parametrize("deployment", BACKENDS, indirect=True)
def test_a_long_cut_keeps_its_lease_and_staged_file_while_processes_beside_it_die_and_start(
        deployment, agent, redis_node_factory):
    """A live worker cutting a day for many leases (a big file, a slow agent) on a 2 s lease,
    while another process of the same host and staging directory is killed mid-cut and
    restarted: the live run's lease is renewed all along, its staged file is never taken for a
    crash's leftover, and only the dead run's job is taken over; both days end whole."""
    lease = 2
    d = deployment(job_lease=str(lease))
    content = {name: day_lines(today_utc(), 120, f"{name} ") for name in ("live", "dead")}
    instance = {name: import_node(d, redis_node_factory(host), agent, content[name], name)
                for name, host in (("live", "127.0.0.2"), ("dead", "127.0.0.6"))}
    d.start_api()
    agent.hold()

    live = d.start("worker", name="live-worker", worker_concurrency="1")
    d.collect(instance["live"])
    wait_for(lambda: d.held_by(instance["live"], live) and d.staged(), timeout=30, what="the live worker mid-cut")
    [live_part] = d.staged()
    victim = d.start_victim(worker_concurrency="1")
    d.collect(instance["dead"])
    wait_for(lambda: d.held_by(instance["dead"], victim) and len(d.staged()) == 2, timeout=30,
             what="the victim mid-cut")
    [dead_part] = d.staged() - {live_part}
    d.kill(victim)
    d.start_victim()  # the restart

    def dead_run_taken_over() -> bool:
        _, owner, attempts, _ = d.task(instance["dead"])
        return attempts == 2 and owner is not None and f":{victim.pid}:" not in owner
    wait_for(dead_run_taken_over, timeout=30, what="the dead run's job to be taken over")
    time.sleep(3 * lease)  # the live cut goes on, through three leases
    assert live_part.exists()
    assert not dead_part.exists()
    assert d.held_by(instance["live"], live) and d.task(instance["live"])[2] == 1

    agent.release()
    wait_for(lambda: all(d.task(i)[0] != "running" for i in instance.values()), timeout=60,
             what="both jobs to end")
    for name, instance_id in instance.items():
        assert d.files(instance_id) == [(today_utc().isoformat(), "succeed", len(content[name]))], name
        assert d.download(instance_id) == {today_utc().isoformat(): content[name]}, name
    assert d.task(instance["live"]) == ("succeed", None, 1, 0)  # never taken over
    assert d.task(instance["dead"]) == ("succeed", None, 2, 0)
    assert d.staged() == set()


def on_another_host() -> tuple[str, ...]:
    """A command prefix that runs a process under another host name (a UTS namespace of its own),
    still sharing this machine's disk: a worker of another host with the same staging directory,
    as on a shared volume. Needs root (CI runs as root)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        if os.environ.get("CI"):
            pytest.fail("this test runs a process under another host name: run it as root (CI does)")
        pytest.skip("runs a process under another host name: needs root (CI runs it)")
    return ("unshare", "--uts", "sh", "-c", 'hostname dcslog-other-host && exec "$@"', "sh")


@pytest.mark.parametrize("deployment", BACKENDS, indirect=True)
def test_a_worker_of_another_host_that_dies_for_good_is_taken_over_within_a_minute(deployment, agent,
                                                                                  redis_standalone):
    """The default lease: a worker on another host claims a 7-day collection and is SIGKILLed
    mid-cut, never to come back; the worker of this host takes every day over within a minute.
    (Its staged file is another host's: this host cannot tell whether that process lives, so it
    is left to the retention sweep's age rule.)"""
    other_host = on_another_host()
    d = deployment()
    days = [today_utc() - timedelta(days=back) for back in range(6, -1, -1)]
    content = {day.isoformat(): day_lines(day, 60) for day in days}
    instance_id = import_node(d, redis_standalone, agent, b"".join(content.values()), "node")
    d.start_api()
    agent.hold()
    victim = d.start("worker", name="victim", prefix=other_host)
    d.collect(instance_id, query_time=7)
    wait_for(lambda: d.held_by(instance_id, victim) and d.staged(), timeout=30, what="the victim mid-cut")
    assert d.task(instance_id)[1].startswith("dcslog-other-host:")
    [other_hosts_part] = d.staged()
    d.start("worker", name="survivor")
    wait_for(lambda: b"stops it gracefully" in (d.tmp / "survivor.log").read_bytes(), timeout=30,
             what="the surviving worker to run")
    d.kill(victim)
    agent.release()

    # The task settles in its own transaction after its last day's: wait for both.
    wait_for(lambda: {status for _, status, _ in d.files(instance_id)} == {"succeed"}
             and d.task(instance_id)[0] != "running", timeout=60,
             what="every day to be taken over and collected within a minute")
    assert d.task(instance_id) == ("succeed", None, 2, 0)
    assert d.download(instance_id) == content
    assert d.staged() == {other_hosts_part}
