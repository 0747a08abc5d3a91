"""Real PostgreSQL (Debian package) and an S3-compatible server (moto_server) for the scale-out tests."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dcslog.testing.ports import free_port
from dcslog.testing.waiting import wait_port


def _postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        pytest.fail(f"PostgreSQL's {name} not found: apt-get install postgresql (CI's .ci/run does)", pytrace=False)
    return found


@dataclass
class Postgres:
    port: int

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://dcslog@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"postgresql://dcslog@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server of its own on 127.0.0.1 (initdb in a temp dir; as the postgres user when we are root)."""
    # Not under pytest's tmp dir: that is private to root, and the server may run as postgres.
    base = Path(tempfile.mkdtemp(prefix="dcslog-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        os.chmod(base, 0o755)
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_user, _postgres_bin("initdb"), "-D", str(data), "-U", "dcslog", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    port = free_port()
    log = open(base / "postgres.log", "wb")
    proc = subprocess.Popen([*as_user, _postgres_bin("postgres"), "-D", str(data), "-p", str(port),
                             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockets}",
                             "-c", "fsync=off", "-c", "max_connections=200"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, "postgres")
        yield Postgres(port)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class S3Server:
    endpoint: str

    def create_bucket(self) -> str:
        import boto3

        name = "dcslog-" + uuid.uuid4().hex[:12]
        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test").create_bucket(Bucket=name)
        return name

    def store_url(self, bucket: str) -> str:
        return f"s3://{bucket}?endpoint={self.endpoint}&region=us-east-1"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """moto_server, an S3-compatible server process, on 127.0.0.1."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    # The moto of this interpreter's environment (the test extra pins it), not whatever moto_server is on PATH.
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, "moto_server")
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


BACKENDS = ["embedded", "postgres-s3"]


@pytest.fixture
def backend_env(request, monkeypatch) -> dict[str, str]:
    """DCSLOG_* for a backend: 'embedded' (SQLite + local directory) or 'postgres-s3'."""
    if request.param == "embedded":
        return {}
    postgres = request.getfixturevalue("postgres")
    s3 = request.getfixturevalue("s3_server")
    env = {"DCSLOG_DATABASE_URL": postgres.create_database(),
           "DCSLOG_OBJECT_STORE": s3.store_url(s3.create_bucket()),
           "DCSLOG_S3_ACCESS_KEY_ID": "test", "DCSLOG_S3_SECRET_ACCESS_KEY": "test"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
