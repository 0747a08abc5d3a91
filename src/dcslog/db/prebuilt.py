"""Prebuilt statements run on the driver's cursor: the fast path of the shortest, hottest reads.

Building and hashing a SQLAlchemy statement, and SQLAlchemy's execution path
around the driver, each cost several times what SQLite takes to answer a
short, index-backed read (bench/slowlog.py: ListSlowlog's first page). A
statement of plain columns (no type conversions) built once at import is
compiled once per dialect here, and run with ``fetch_prebuilt`` straight on
the DBAPI cursor of a connection the caller already holds — inline on the
loop or on the session's connection, whichever ``db/inline.py`` chose.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_COMPILED: dict[tuple[ClauseElement, str], SQLCompiler] = {}  # (prebuilt statement, dialect name) -> compiled


def fetch_prebuilt(connection: Connection, statement: ClauseElement, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of ``statement`` (built once, at import: it is compiled once per dialect and kept,
    keyed by identity) with ``params``, as the driver returns them (plain tuples)."""
    key = (statement, connection.dialect.name)  # a Select hashes by identity; the key keeps it alive
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _COMPILED[key] = cast(SQLCompiler, statement.compile(dialect=connection.dialect))
    named = compiled.construct_params(params)  # with the statement's own literals (coalesce's 0)
    values: MutableMapping[str, Any] | list[Any] = named
    if compiled.positional and compiled.positiontup is not None:
        values = [named[name] for name in compiled.positiontup]
    dbapi = connection.dialect.loaded_dbapi
    cursor = connection.connection.cursor()
    try:
        cursor.execute(compiled.string, values)
        return cast("list[tuple[Any, ...]]", cursor.fetchall())
    except dbapi.Error as exc:
        # As SQLAlchemy would raise it: a busy SQLite then sends an inline read back to the
        # session (db/inline.py), as for every other read.
        raise DBAPIError.instance(compiled.string, values, exc, dbapi.Error) from exc
    finally:
        cursor.close()
