"""ReadCache: the answers to the look-ups every request repeats, kept while the database is unchanged.

Every DCS request finds its caller (a credential or a token), most find their
instance, links and downloads find their file: two or three queries whose
answers almost never change between requests, and on SQLite each costs
hundreds of microseconds through aiosqlite's thread hops — ten times the
framework's own cost of a request (docs/benchmarks-http.md).

On SQLite, ``PRAGMA data_version`` read on a connection of our own changes
whenever any other connection, in this process or another, commits to the
database. Reading it takes microseconds and never waits for a lock (the probe
connection has no busy timeout: a busy database just means "don't know", and
the look-up goes to the database). Every entry is stamped with the version it
was loaded under and used only while the version is the same, so a revoked
credential or token, a removed instance or a file being collected again is
seen by the very next request, exactly as without the cache. (That is what
revocation relies on to take effect at once on every API process; a TTL would
not do.)

PostgreSQL offers no signal as cheap, so there the cache is off and every
request queries (psycopg's async driver has no thread hops to amortise): a
revocation, like any commit, is seen by the next request of every process.

The API's sessions carry the cache in ``session.info`` (``create_sessionmaker(engine,
read_cache)``); look-ups go through ``cached(session, key, load)``, which loads
directly wherever there is no cache (the CLI, the worker). Only the named queries of
``db/queries/`` call it: which look-ups are cached is decided there, once per query. Cached objects are
detached from their session (``expunge``) and shared by concurrent requests:
read their attributes, never change them or add them to a session.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar, cast
from urllib.request import pathname2url

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dcslog.db.models import Base

T = TypeVar("T")
READ_CACHE = "read_cache"  # the keys in Session.info
VERSION = "read_cache_version"

MAX_ENTRIES = 10_000


def readonly_sqlite_location(database_url: str) -> str | None:
    """A read-only ``file:`` URI of the SQLite file the URL names, or None (another database,
    in memory, or URL options we would not reproduce). Only a plain file that exists (the
    schema is migrated first): a reader of ours must see the very file the engine uses, and
    never create an empty one."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and not url.query and url.database \
            and url.database != ":memory:" and os.path.isfile(url.database):
        return "file:" + pathname2url(os.path.abspath(url.database)) + "?mode=ro"
    return None


class ReadCache:
    def __init__(self, database_url: str) -> None:
        self._probe: sqlite3.Connection | None = None
        location = readonly_sqlite_location(database_url)
        if location is not None:
            self._probe = sqlite3.connect(location, uri=True, timeout=0, isolation_level=None,
                                          check_same_thread=False)
        self._entries: dict[Hashable, tuple[int, object]] = {}

    @property
    def enabled(self) -> bool:
        return self._probe is not None

    def version(self) -> int | None:
        """The database's change counter as this process sees it, or None when it cannot tell."""
        if self._probe is None:
            return None
        try:
            return self._probe.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:  # busy (a checkpoint, a recovery): ask the database instead
            return None

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]], version: int | None) -> T:
        """``await load()``, or its answer from an earlier call made at the same ``version()``.
        Exceptions (not found, forbidden…) are not cached."""
        if version is None:
            return await load()
        entry = self._entries.get(key)
        if entry is not None and entry[0] == version:
            return cast(T, entry[1])
        # Stamped with the version read *before* loading: a commit during the load
        # changes the version, and the entry is not used again.
        value = await load()
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (version, value)
        return value

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        self._entries.clear()


async def cached(session: AsyncSession, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
    """``await load()`` through the session's read cache, if it has one. ``load`` uses
    ``session``; the ORM objects it returns (alone or in a tuple) leave the session when cached."""
    cache: ReadCache | None = session.info.get(READ_CACHE)
    if cache is None:
        return await load()
    # One version per session: a request's look-ups agree with each other, and the probe
    # (a read transaction's worth of locking) runs once per request, not once per look-up.
    if VERSION not in session.info:
        session.info[VERSION] = cache.version()

    async def load_detached() -> T:
        value = await load()
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, Base) and item in session:
                session.expunge(item)
        return value
    return await cache.get(key, load_detached, session.info[VERSION])


@event.listens_for(Session, "after_commit")
def _forget_version(session: Session) -> None:
    """After its own commit a session's look-ups must not reuse what it saw before."""
    session.info.pop(VERSION, None)
