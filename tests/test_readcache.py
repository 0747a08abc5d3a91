"""The API's read cache: answers reused only while no connection, in any process, has committed."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys

import httpx
import pytest

from dcslog.db.readcache import ReadCache
from dcslog.signing import sign_request


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (v INTEGER)")
        db.execute("INSERT INTO t VALUES (1)")
    return path


class Loads:
    """A load that reads the table with its own connection, counting how often it ran."""

    def __init__(self, path):
        self.connection = sqlite3.connect(path)
        self.count = 0

    async def __call__(self):
        self.count += 1
        return self.connection.execute("SELECT v FROM t").fetchone()[0]


def test_answer_reused_until_another_connection_commits(database):
    cache, load = ReadCache(f"sqlite+aiosqlite:///{database}"), Loads(database)
    assert cache.enabled
    assert [asyncio.run(cache.get("k", load, cache.version())) for _ in range(3)] == [1, 1, 1]
    assert load.count == 1
    with sqlite3.connect(database) as writer:
        writer.execute("UPDATE t SET v = 2")
    assert asyncio.run(cache.get("k", load, cache.version())) == 2 and load.count == 2
    assert asyncio.run(cache.get("k", load, cache.version())) == 2 and load.count == 2
    cache.close()


def test_a_commit_in_another_process_is_seen(database):
    cache, load = ReadCache(f"sqlite+aiosqlite:///{database}"), Loads(database)
    asyncio.run(cache.get("k", load, cache.version()))
    subprocess.run([sys.executable, "-c", "import sqlite3, sys\n"
                    "with sqlite3.connect(sys.argv[1]) as db: db.execute('UPDATE t SET v = 3')", str(database)],
                   check=True)
    assert asyncio.run(cache.get("k", load, cache.version())) == 3 and load.count == 2


def test_a_commit_during_the_load_leaves_no_stale_entry(database):
    cache = ReadCache(f"sqlite+aiosqlite:///{database}")
    reader = sqlite3.connect(database)

    async def load_then_commit():
        value = reader.execute("SELECT v FROM t").fetchone()[0]  # the old value...
        with sqlite3.connect(database) as writer:  # ...and a commit before the load returns
            writer.execute("UPDATE t SET v = 4")
        return value

    assert asyncio.run(cache.get("k", load_then_commit, cache.version())) == 1
    assert asyncio.run(cache.get("k", Loads(database), cache.version())) == 4


def test_errors_are_not_cached(database):
    cache, calls = ReadCache(f"sqlite+aiosqlite:///{database}"), []

    async def failing():
        calls.append(1)
        raise LookupError

    for _ in range(2):
        with pytest.raises(LookupError):
            asyncio.run(cache.get("k", failing, cache.version()))
    assert len(calls) == 2


def test_a_busy_database_is_asked_not_trusted(database):
    cache, load = ReadCache(f"sqlite+aiosqlite:///{database}"), Loads(database)
    asyncio.run(cache.get("k", load, cache.version()))

    class Busy:  # what the probe meets while a checkpoint or recovery holds the WAL index
        def execute(self, _sql):
            raise sqlite3.OperationalError("database is locked")
    cache._probe = Busy()
    assert cache.version() is None
    assert asyncio.run(cache.get("k", load, cache.version())) == 1 and load.count == 2  # asked the database


@pytest.mark.parametrize("url", ["postgresql+psycopg://u@127.0.0.1/db", "sqlite+aiosqlite:///:memory:",
                                 "sqlite+aiosqlite:///{tmp}/missing.db", "sqlite+aiosqlite:///{db}?mode=ro"])
def test_off_where_it_could_watch_the_wrong_file(url, database, tmp_path):
    cache = ReadCache(url.format(tmp=tmp_path, db=database))
    assert not cache.enabled and cache.version() is None
    assert not (tmp_path / "missing.db").exists()  # the probe never creates a database


def test_a_path_with_spaces(tmp_path):
    path = tmp_path / "dir with spaces" / "db.sqlite"
    path.parent.mkdir()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (v INTEGER)")
    cache = ReadCache(f"sqlite+aiosqlite:///{path}")
    before = cache.version()
    with sqlite3.connect(path) as writer:
        writer.execute("INSERT INTO t VALUES (1)")
    assert before is not None and cache.version() != before


def test_service_sees_changes_made_by_another_process(dcslog_server, redis_standalone):
    """Cached caller and instance, then the CLI in another process removes both: the next request knows."""
    credential = dcslog_server.credentials()
    instance_id = dcslog_server.import_instance(redis_standalone.url)["instance_id"]

    def api(method, path):
        url = dcslog_server.url + path
        return httpx.request(method, url, headers=sign_request(credential["access_key"], credential["secret_key"],
                                                               method, url))
    for _ in range(2):
        assert api("GET", f"/v2/proj-a/instances/{instance_id}").status_code == 200
    env = {**os.environ, "DCSLOG_DATA_DIR": str(dcslog_server.settings.data_dir)}
    cli = [sys.executable, "-m", "dcslog.cli"]
    subprocess.run([*cli, "instances", "remove", instance_id, "--json"], env=env, check=True, capture_output=True)
    assert api("GET", f"/v2/proj-a/instances/{instance_id}").json()["error_code"] == "DCS.3022"
    subprocess.run([*cli, "credentials", "delete", credential["access_key"], "--json"], env=env, check=True,
                   capture_output=True)
    assert api("GET", "/v2/proj-a/instances").status_code == 401
    assert httpx.get(dcslog_server.url + "/livez").status_code == 200
