"""Engine, sessions and schema migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from dcslog.db.inline import INLINE_READS, InlineReads
from dcslog.db.readcache import READ_CACHE, ReadCache

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


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


def create_engine(url: str) -> AsyncEngine:
    if _is_sqlite(url):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


# PostgreSQL channel on which a request that queued collection jobs wakes every worker.
JOBS_CHANNEL = "dcslog_jobs"


def is_postgresql(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq (psycopg.connect) takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def announce_jobs(session: AsyncSession) -> None:
    """Wake the workers of every process when this session commits (PostgreSQL NOTIFY;
    elsewhere they find the jobs at their next poll, or are woken in-process)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {JOBS_CHANNEL}"))


def create_sessionmaker(engine: AsyncEngine, read_cache: ReadCache | None = None,
                        inline_reads: InlineReads | None = None) -> async_sessionmaker[AsyncSession]:
    """Sessions of ``engine``; with a ``ReadCache``, their look-ups through
    ``readcache.cached`` are answered from it while the database is unchanged; with
    ``InlineReads``, their ``inline.read``s run on the loop's thread (the API's, on SQLite)."""
    info = {}
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


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["sqlalchemy_url"] = sync_url(url)
    return config


def upgrade(url: str) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    if _is_sqlite(url):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")
