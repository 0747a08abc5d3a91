"""Engine, sessions and schema migrations."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, cast
from urllib.request import pathname2url

from sqlalchemy import Table, event, pool, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import inspect as inspect_database
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from dcslog.db.inline import INLINE_READS, InlineReads
from dcslog.db.readcache import READ_CACHE, ReadCache
from dcslog.filemodes import private_sqlite_file

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# A migration's file is named after its revision: versions/NNNN_what_it_does.py, revision 'NNNN'.
_MIGRATION_FILE = re.compile(r"(\d{4})_\w+\.py")


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # The API and the worker share the file: WAL lets readers go on while a
    # writer commits, and the busy timeout makes a second writer wait its turn
    # instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def sqlite_file(url: str) -> str | None:
    """The path of the SQLite file ``url`` names, or None (another database, or one in memory)."""
    if not _is_sqlite(url):
        return None
    path = make_url(url).database
    return path if path and path != ":memory:" and not path.startswith("file:") else None


def describe_database(url: str) -> str:
    """Where ``url`` points, for people: the SQLite file's absolute path, or the URL with its
    password hidden."""
    path = sqlite_file(url)
    if path is not None:
        return f"SQLite database {os.path.abspath(path)}"
    return make_url(url).render_as_string(hide_password=True)


def schema_revision(url: str) -> str | None:
    """The migration the database at ``url`` is at, or None when it holds no dcslog schema (a
    SQLite file that does not exist: it is not created here). Connection failures raise."""
    path = sqlite_file(url)
    if path is not None:
        if not os.path.isfile(path):
            return None
        private_sqlite_file(path)  # before SQLite opens it and makes its -wal/-shm beside it
        # mode=rw: a file that went away meanwhile is an error, never a new empty database.
        location = "file:" + pathname2url(os.path.abspath(path)) + "?mode=rw"
        with contextlib.closing(sqlite3.connect(location, uri=True, timeout=10)) as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'").fetchone():
                row = db.execute("SELECT version_num FROM alembic_version").fetchone()
                return row[0] if row else None
            return None
    engine = create_sync_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            if not inspect_database(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def create_engine(url: str) -> AsyncEngine:
    path = sqlite_file(url)
    if path is not None:
        private_sqlite_file(path)
    if _is_sqlite(url):
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


def audit_journal_url(url: str) -> str | None:
    """Where the audit records of actions that write nothing else (links made, downloads) go, when
    not into the database itself: on SQLite, a file beside it (``dcslog.db`` → ``dcslog-audit.db``).

    Why a file of its own: a commit to the main file changes its ``data_version``, which empties
    every API process's read cache (``db/readcache.py``) and takes the single writer's turn —
    one per download made the link endpoint 0.39x and small downloads 0.83x as fast. On PostgreSQL
    (no read cache, row-level writes) the records stay in the database: None."""
    path = sqlite_file(url)
    if path is None:
        return None
    main = Path(path)
    return make_url(url).set(database=str(main.with_name(f"{main.stem}-audit{main.suffix}"))).render_as_string(
        hide_password=False)


async def open_audit_journal(url: str, *, create: bool = True) -> AsyncEngine | None:
    """The engine of ``audit_journal_url(url)``, its one table created if missing (owner-only file),
    or None when the records go to the database at ``url`` (or, with ``create`` false, when the file
    does not exist). Its schema is ``AuditRecord``'s: a migration that changes ``audit_records``
    changes this file's table too (none has). Processes starting together may all create it:
    ``IF NOT EXISTS``, not a look first."""
    journal_url = audit_journal_url(url)
    if journal_url is None:
        return None
    path = sqlite_file(journal_url)
    if not create and (path is None or not os.path.isfile(path)):
        return None
    from sqlalchemy.schema import CreateIndex, CreateTable

    from dcslog.db.models import AuditRecord

    table = cast(Table, AuditRecord.__table__)
    engine = create_engine(journal_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(CreateTable(table, if_not_exists=True))
            for index in table.indexes:
                await connection.execute(CreateIndex(index, if_not_exists=True))
    except BaseException:
        await engine.dispose()
        raise
    return engine


def is_postgresql(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq (psycopg.connect) takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_sessionmaker(engine: AsyncEngine, read_cache: ReadCache | None = None,
                        inline_reads: InlineReads | None = None) -> async_sessionmaker[AsyncSession]:
    """Sessions of ``engine``; with a ``ReadCache``, their look-ups through
    ``readcache.cached`` are answered from it while the database is unchanged; with
    ``InlineReads``, their ``inline.read``s run on the loop's thread (the API's, on SQLite)."""
    info: dict[str, object] = {}
    if read_cache is not None:
        info[READ_CACHE] = read_cache
    if inline_reads is not None:
        info[INLINE_READS] = inline_reads
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


def sync_url(url: str) -> str:
    """The same database through a synchronous driver (Alembic runs synchronously)."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite")
    elif parsed.drivername == "postgresql+asyncpg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def head_revision() -> str:
    """The newest migration's revision, from the file names alone (Alembic is not loaded for it)."""
    return max(m.group(1) for f in (MIGRATIONS_DIR / "versions").iterdir()
               if (m := _MIGRATION_FILE.fullmatch(f.name)))


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["sqlalchemy_url"] = sync_url(url)
    return config


def upgrade(url: str) -> None:
    """Bring the schema to the newest migration (idempotent); creates the database (a SQLite
    file, owner-only) if there is none. Admin commands check ``schema_revision`` first.

    A database already at the head is left without loading Alembic: its ~10 MB of modules would
    stay in the server's memory for nothing (issue #14's RSS target)."""
    path = sqlite_file(url)
    if path is not None:
        private_sqlite_file(path)
    if schema_revision(url) == head_revision():
        return
    from alembic import command

    command.upgrade(alembic_config(url), "head")
