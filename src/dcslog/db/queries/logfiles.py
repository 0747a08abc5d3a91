"""Collected run-log files."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Row, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dcslog.db.inline import read
from dcslog.db.models import LogFile
from dcslog.db.readcache import cached


class FilesPage(NamedTuple):
    total: int
    rows: list[Row[*tuple[Any, ...]]]  # every column of log_files, by name


async def log_file(session: AsyncSession, file_id: str) -> LogFile | None:
    """The file, whatever its instance, project or expiry (whoever uses it checks those, at every
    use of a cached row). Cached, inline."""
    return await cached(session, ("log_file", file_id), lambda: read(session, lambda s: s.get(LogFile, file_id)))


_FILES = LogFile.__table__.c
# Files past retention are gone for users at once, whenever the sweeper gets to their bytes.
_LISTED = (_FILES.instance_id == bindparam("instance_id"), _FILES.project_id == bindparam("project_id"),
           _FILES.expires_at > bindparam("now"))
# One statement for the page and the total (a window count), built once: the console and
# `logs collect --wait` poll this list. Past the last page no row carries the total, which
# is then counted on its own.
_LIST_PAGE = (select(*_FILES, func.count().over().label("total")).where(*_LISTED)
              .order_by(_FILES.day.desc(), _FILES.group_index, _FILES.replication_ip, _FILES.id)
              .offset(bindparam("offset")).limit(bindparam("limit")))
_COUNT = select(func.count()).select_from(LogFile.__table__).where(*_LISTED)


async def files_page(session: AsyncSession, instance_id: str, project_id: str, *, now: datetime, offset: int,
                     limit: int) -> FilesPage:
    """The instance's files whose retention has not ended at ``now``: how many, and one page of them,
    newest day first, then by group and replica. Inline."""
    where = {"instance_id": instance_id, "project_id": project_id, "now": now}

    def page(s: Session) -> FilesPage:
        rows = list(s.execute(_LIST_PAGE, {**where, "offset": offset, "limit": limit}).all())
        total = rows[0].total if rows else (s.scalar(_COUNT, where) or 0 if offset else 0)
        return FilesPage(total, rows)
    return await read(session, page)


async def object_keys(session: AsyncSession, instance_id: str) -> list[str]:
    """The object keys of every file of the instance that has content in the store. Session."""
    return list(await session.scalars(select(LogFile.object_key).where(
        LogFile.instance_id == instance_id, LogFile.object_key.is_not(None))))


async def collected_days(session: AsyncSession, instance_id: str, replication_ids: list[str], first_day: str,
                         last_day: str, now: datetime) -> dict[str, list[tuple[str, str]]]:
    """Per node, the (day, object key) of each collected day in ``[first_day, last_day]`` that has
    content in the store (a file being collected again keeps its good copy), oldest first. Session."""
    rows = await session.execute(
        select(LogFile.replication_id, LogFile.day, LogFile.object_key)
        .where(LogFile.instance_id == instance_id, LogFile.replication_id.in_(replication_ids),
               LogFile.day >= first_day, LogFile.day <= last_day, LogFile.object_key.is_not(None),
               LogFile.content_task_id.is_not(None), LogFile.content_expires_at > now, LogFile.expires_at > now)
        .order_by(LogFile.replication_id, LogFile.day))
    days: dict[str, list[tuple[str, str]]] = {}
    for replication_id, day, key in rows:
        days.setdefault(replication_id, []).append((day, str(key)))
    return days
