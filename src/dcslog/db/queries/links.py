"""Download links: only those revoked one by one are recorded (a link is a signed token)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dcslog.db.inline import read
from dcslog.db.models import LogFile, RevokedLink
from dcslog.db.readcache import cached


async def revoked_link_ids(session: AsyncSession, file_id: str) -> frozenset[str]:
    """The ids of the file's links revoked one by one since all its links last were (at most the
    revocations people made of one file's links within its retention: a few). Cached, inline."""
    def load(s: Session) -> frozenset[str]:
        return frozenset(s.scalars(select(RevokedLink.link_id).where(RevokedLink.file_id == file_id)))
    return await cached(session, ("revoked_links", file_id), lambda: read(session, load))


async def stored_key(session: AsyncSession, file_id: str) -> str | None:
    """The key the file's content is stored under now, read from the database (never a cached row:
    a re-key compares and sets it). Session."""
    return await session.scalar(select(LogFile.object_key).where(LogFile.id == file_id))
