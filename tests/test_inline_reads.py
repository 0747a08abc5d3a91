"""The API's short reads on SQLite run on the loop's thread, read-only, and step aside when SQLite is busy."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from dcslog.db import inline
from dcslog.db.inline import InlineReads, read
from dcslog.db.models import Token
from dcslog.db.session import create_engine, create_sessionmaker, upgrade
from dcslog.observability import REGISTRY


@pytest.fixture
def database(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'dcslog.db'}"
    upgrade(url)
    db = sqlite3.connect(tmp_path / "dcslog.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")  # as dcslog's engine sets it
    db.execute("INSERT INTO tokens (token_hash, id, project_id, role, created_at, expires_at) "
               "VALUES ('h', 'tok-0000000000000001', 'proj-a', 'viewer', '2026-01-01 00:00:00', "
               "'2099-01-01 00:00:00')")
    db.close()
    return url, tmp_path / "dcslog.db"


def get_token(session: Session):
    return session.get(Token, "h")


def test_reads_inline_see_every_commit_and_come_back_detached(database):
    url, path = database
    reads = InlineReads(url)
    assert reads.enabled
    done, token = reads.run(get_token)
    assert done and token.role == "viewer" and token.project_id == "proj-a"
    with sqlite3.connect(path) as writer:  # another connection (any process) commits…
        writer.execute("UPDATE tokens SET role = 'admin'")
    assert reads.run(get_token)[1].role == "admin"  # …the next read sees it
    assert token.role == "viewer"  # the object read before is detached: nothing reloads it behind our back
    reads.close()


def test_inline_reads_hold_no_snapshot_between_reads(database):
    """An open read transaction on the long-lived inline connection would pin the WAL: no
    checkpoint could finish and the file would grow without end."""
    url, path = database
    reads = InlineReads(url)
    for _ in range(3):
        reads.run(get_token)
        reads.run(lambda s: s.execute(text("SELECT token_hash FROM tokens")).first())  # a result left unread
    with sqlite3.connect(path) as writer:
        writer.execute("UPDATE tokens SET role = 'admin'")
    with sqlite3.connect(path) as checkpointer:
        busy, _, _ = checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    assert (path.parent / "dcslog.db-wal").stat().st_size == 0
    reads.close()


def test_inline_reads_cannot_write(database):
    reads = InlineReads(database[0])
    assert reads.run(lambda s: s.execute(text("DELETE FROM tokens"))) == (False, None)  # "readonly database"
    with sqlite3.connect(database[1]) as db:
        assert db.execute("SELECT count(*) FROM tokens").fetchone()[0] == 1


def test_a_busy_database_goes_through_the_session_without_blocking_the_loop(database):
    """A connection holding SQLite's exclusive lock: the inline read answers "busy" at once (no
    timeout on the loop), the read goes through the session, which waits its turn on aiosqlite's
    thread while the loop goes on, and gets the answer once the lock is gone."""
    url, path = database
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE tokens SET role = 'operator'")
    holder.execute("COMMIT")  # in exclusive locking mode the lock stays after the commit
    reads = InlineReads(url)
    assert reads.run(get_token) == (False, None)

    def release() -> None:
        holder.execute("PRAGMA locking_mode=NORMAL")
        holder.execute("SELECT 1 FROM tokens").fetchall()  # the lock goes at the next access
        holder.close()

    async def scenario():
        engine = create_engine(url)
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)
        ticking = asyncio.create_task(ticker())
        threading.Timer(0.5, release).start()
        async with create_sessionmaker(engine, inline_reads=reads)() as session:
            token = await read(session, get_token)
        ticking.cancel()
        await engine.dispose()
        return token, ticks
    def fallbacks() -> float:
        return REGISTRY.get_sample_value("dcslog_inline_read_fallbacks_total")
    before = fallbacks()
    token, ticks = asyncio.run(scenario())
    assert fallbacks() == before + 1  # counted for /metrics
    assert token.role == "operator"
    assert ticks >= 20  # the loop ran all along (~50 ticks in 0.5 s)
    assert reads.run(get_token)[1].role == "operator"  # and inline reads work again
    reads.close()


def test_a_busy_database_sends_the_slow_log_page_through_the_session(database):
    """ListSlowlog's page runs its prebuilt statements on the driver's cursor: SQLite's "busy"
    from there must step aside to the session like any inline read, not become a 500."""
    from types import SimpleNamespace

    from dcslog.services.slowlog_query import list_slowlog

    url, path = database
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("COMMIT")
    reads = InlineReads(url)
    assert reads.run(get_token) == (False, None)  # the lock holds

    def release() -> None:
        holder.execute("PRAGMA locking_mode=NORMAL")
        holder.execute("SELECT 1 FROM tokens").fetchall()
        holder.close()

    async def scenario():
        engine = create_engine(url)
        threading.Timer(1.0, release).start()  # long after the inline try, however slow the machine
        async with create_sessionmaker(engine, inline_reads=reads)() as session:
            answer = await list_slowlog(session, SimpleNamespace(id="no-such-instance"), start_ms=0,
                                        end_ms=10**13, offset=0, limit=10, sort_key="duration", sort_dir="desc")
        await engine.dispose()
        return answer
    before = REGISTRY.get_sample_value("dcslog_inline_read_fallbacks_total")
    assert asyncio.run(scenario()) == (0, [], 0)
    assert REGISTRY.get_sample_value("dcslog_inline_read_fallbacks_total") == before + 1
    reads.close()


def test_an_error_inline_is_asked_again_through_the_session(database):
    """Whatever keeps SQLite from answering on the loop (busy with an extended code such as
    SQLITE_BUSY_RECOVERY, or anything else) sends the read through the session: a real
    error is raised from there, a transient one is answered."""
    async def scenario():
        engine = create_engine(database[0])
        async with create_sessionmaker(engine, inline_reads=InlineReads(database[0]))() as session:
            with pytest.raises(OperationalError, match="no such table"):
                await read(session, lambda s: s.execute(text("SELECT * FROM no_such_table")).all())
        await engine.dispose()
    asyncio.run(scenario())


@pytest.mark.parametrize("url", ["postgresql+psycopg://u@127.0.0.1/db", "sqlite+aiosqlite:///:memory:",
                                 "sqlite+aiosqlite:///{tmp}/missing.db"])
def test_off_where_it_could_read_the_wrong_database(url, tmp_path):
    assert not InlineReads(url.format(tmp=tmp_path)).enabled
    assert not (tmp_path / "missing.db").exists()


def test_without_inline_reads_the_same_function_runs_through_the_session(database):
    async def scenario():
        engine = create_engine(database[0])
        async with create_sessionmaker(engine)() as session:
            token = await read(session, get_token)
            assert token in session  # loaded by the session itself, as any of its queries
        await engine.dispose()
        return token
    assert asyncio.run(scenario()).role == "viewer"


def test_the_api_answers_look_ups_and_lists_inline(dcslog_server, redis_standalone, monkeypatch):
    """Through the API on SQLite: caller, instance, file list, file behind a link, instance
    list and view, groups are all read inline, none through aiosqlite's thread — and the
    answers are the right ones."""
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a")["token"]
    instance_id = dcslog_server.import_instance(redis_standalone.url)["instance_id"]
    base = f"{dcslog_server.url}/v2/proj-a/instances/{instance_id}"
    headers = {"X-Auth-Token": token}
    assert httpx.post(f"{base}/redislog", params={"log_type": "run", "query_time": 0},
                      headers=headers).status_code == 204
    inline_reads, session_reads = [], []
    real_run, real_run_sync = InlineReads.run, inline.AsyncSession.run_sync
    monkeypatch.setattr(InlineReads, "run", lambda self, fn: inline_reads.append(fn) or real_run(self, fn))

    async def run_sync(self, fn, *args, **kwargs):
        session_reads.append(fn)
        return await real_run_sync(self, fn, *args, **kwargs)
    monkeypatch.setattr(inline.AsyncSession, "run_sync", run_sync)
    deadline = datetime.now() + timedelta(seconds=60)
    while True:
        listed = httpx.get(f"{base}/redislog", params={"log_type": "run"}, headers=headers)
        assert listed.status_code == 200 and listed.json()["total_num"] == 1
        item = listed.json()["file_list"][0]
        if item["status"] == "succeed" or datetime.now() > deadline:
            break
    assert item["status"] == "succeed"
    link = httpx.post(f"{base}/redislog/{item['id']}/links", headers=headers)
    assert link.status_code == 200
    download = httpx.get(link.json()["link"])
    assert download.status_code == 200 and len(download.content) == item["size"]
    assert httpx.get(f"{base}/redislog", params={"log_type": "run", "offset": 5},
                     headers=headers).json() == {"total_num": 1, "file_list": []}  # past the end: counted
    listed = httpx.get(f"{dcslog_server.url}/v2/proj-a/instances", headers=headers).json()
    assert listed["instance_num"] == 1 and listed["instances"][0]["instance_id"] == instance_id
    assert (listed["instances"][0]["sharding_count"], listed["instances"][0]["replica_count"]) == (1, 1)
    assert httpx.get(base, headers=headers).json() == listed["instances"][0]
    groups = httpx.get(f"{dcslog_server.url}/v2/proj-a/instance/{instance_id}/groups", headers=headers).json()
    assert groups["group_count"] == 1 and len(groups["group_list"][0]["replication_list"]) == 1
    assert inline_reads and not session_reads
