"""InlineReads: the API's short reads on SQLite, run on the event loop's own thread.

Through aiosqlite every DBAPI call (cursor, execute, fetch, close, rollback)
is a hop to the connection's thread and back: a one-row look-up that SQLite
answers in tens of microseconds costs ~0.6 ms of CPU, and under load the
hops queue behind each other for the GIL (docs/benchmarks-http.md, "Reads
on the loop"). On a local file in WAL mode a reader never waits for a
writer, so a short, index-backed read is cheaper run synchronously right
where it is needed than handed to a thread.

The connection is read-only (``mode=ro``: it can neither write nor create
the file) and has no busy timeout, so the loop does not wait for a lock
another connection holds: when SQLite answers "busy" (a checkpoint
restarting the WAL, another connection recovering it after a crash) — or
any other operational error — the read goes through the session instead,
which waits its turn on aiosqlite's thread as before and raises whatever is
really wrong. (SQLite's one exception: a reader that finds the WAL index
damaged after a crash rebuilds it itself, once, here on the loop.) Writes
always go through the session. Only reads that are short by construction use
it: primary-key look-ups, a page of one instance's files or of a project's
instances, and an unfiltered slow-log page within its first 1,000 rows (its
total from the hourly counts). Open-ended queries (a filtered slow-log count,
a deep page) stay on the session. As through the session on SQLite
(pysqlite opens no transaction for a SELECT), each statement sees the
database as of its own start.

``read(session, fn)`` runs ``fn(sync_session)``: inline when the session
carries an ``InlineReads`` (the API's sessions on SQLite), else through
``AsyncSession.run_sync`` (PostgreSQL, the worker, the CLI) — the same
function, the same answer. Objects read inline come back detached. Only the
named queries of ``db/queries/`` call it: which reads run inline is decided
there, once per query.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.request import pathname2url

from sqlalchemy import Table, create_engine
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from dcslog.db.readcache import readonly_sqlite_location
from dcslog.observability import INLINE_READ_FALLBACKS

T = TypeVar("T")
INLINE_READS = "inline_reads"  # the key in Session.info


class InlineReads:
    def __init__(self, database_url: str) -> None:
        self._engine = None
        location = readonly_sqlite_location(database_url)
        if location is not None:
            # One connection, used only from the loop's thread, one read at a time (a read never awaits).
            self._engine = create_engine(
                "sqlite://", poolclass=StaticPool,
                creator=lambda: sqlite3.connect(location, uri=True, timeout=0, check_same_thread=False))

    @property
    def enabled(self) -> bool:
        return self._engine is not None

    def run(self, fn: Callable[[Session], T]) -> tuple[bool, T | None]:
        """(True, ``fn(session)``) read on the loop, or (False, None) when SQLite would not answer
        here: busy or locked (extended codes such as SQLITE_BUSY_RECOVERY included), or any other
        operational error, which the session's own try then reports if it is real."""
        try:
            with Session(self._engine) as session:
                return True, fn(session)
        except OperationalError:
            return False, None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


async def read(session: AsyncSession, fn: Callable[[Session], T]) -> T:
    """``fn(sync_session)``: inline on SQLite in the API, else through ``session``.
    ``fn`` only reads, a bounded amount, and must not depend on ``session``'s own
    uncommitted changes (an inline read does not see them)."""
    inline: InlineReads | None = session.info.get(INLINE_READS)
    if inline is not None and inline.enabled:
        done, value = inline.run(fn)
        if done:
            return cast(T, value)
        INLINE_READ_FALLBACKS.inc()
    return await session.run_sync(fn)


class InlineInserts:
    """Rows of one table inserted, and committed, on the event loop's own thread (SQLite, WAL):
    the audit journal's group commits (``services/audit.Journal``). A WAL append costs ~0.1 ms;
    SQLAlchemy's execution machinery cost twice that around it, so the statement is prepared
    once here and the values are turned into what SQLAlchemy itself would store (the column
    types' own bind processors: a DateTime is the same string). One connection, used from the
    loop only, with no busy timeout: a loop never waits for a lock — ``insert`` answers False
    when another connection holds it, and the caller commits through its waiting path."""

    def __init__(self, path: str, table: Table) -> None:
        location = "file:" + pathname2url(os.path.abspath(path)) + "?mode=rw"  # never a new file
        self._db = sqlite3.connect(location, uri=True, timeout=0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        dialect = sqlite_dialect.dialect()
        self._columns = [(c.name, c.type.bind_processor(dialect)) for c in table.columns]
        self._sql = (f"INSERT INTO {table.name} ({', '.join(name for name, _ in self._columns)}) "
                     f"VALUES ({', '.join('?' for _ in self._columns)})")

    def _values(self, row: dict[str, Any]) -> tuple[Any, ...]:
        """A row's values in column order, as SQLAlchemy would bind them; no column defaults (the
        caller gives every value, None for NULL)."""
        return tuple(process(row.get(name)) if process is not None and row.get(name) is not None else row.get(name)
                     for name, process in self._columns)

    def insert(self, rows: list[dict[str, Any]]) -> bool:
        """Insert and commit ``rows``: True; False (nothing written) when SQLite is busy. Other
        errors (the table gone, the disk full) raise."""
        values = [self._values(row) for row in rows]
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return False
            raise
        try:
            self._db.executemany(self._sql, values)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return True

    def close(self) -> None:
        self._db.close()
