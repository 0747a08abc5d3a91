"""INSERT … ON CONFLICT as the database spells it (SQLite and PostgreSQL alike), importing only
that database's dialect: the other one would cost a server about 2.5 MB for nothing."""

from __future__ import annotations

import importlib
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


def insert_for(dialect_name: str, table: Any) -> Any:
    """The dialect's INSERT of ``table``, which knows ``on_conflict_do_nothing/update``."""
    name = "postgresql" if dialect_name == "postgresql" else "sqlite"
    return importlib.import_module(f"sqlalchemy.dialects.{name}").insert(table)


def insert(session: AsyncSession, table: Any) -> Any:
    """``insert_for`` the session's database."""
    return insert_for(session.get_bind().dialect.name, table)
