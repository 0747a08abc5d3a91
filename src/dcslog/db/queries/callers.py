"""Who may call: credentials (AK/SK) and tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dcslog.db.inline import read
from dcslog.db.models import Credential, Token
from dcslog.db.readcache import cached


async def caller_by_token_hash(session: AsyncSession, token_hash: str) -> Token | None:
    """The token stored under ``token_hash``, expired or revoked or not. Cached, inline."""
    return await cached(session, ("token", token_hash), lambda: read(session, lambda s: s.get(Token, token_hash)))


async def caller_row(session: AsyncSession, user_id: str) -> Token | Credential | None:
    """The token whose id is ``user_id`` (``tok-…``), or the credential of that access key: what a
    ``Caller`` was authenticated by, as it stands now. Cached, inline."""
    def load(s: Session) -> Token | Credential | None:
        if user_id.startswith("tok-"):
            return s.scalar(select(Token).where(Token.id == user_id))
        return s.get(Credential, user_id)
    return await cached(session, ("caller", user_id), lambda: read(session, load))


async def credential(session: AsyncSession, access_key: str,
                     secret: Callable[[Credential | None], str]) -> tuple[Credential | None, str]:
    """The credential of ``access_key`` (None: unknown; revoked or not) and ``secret(credential)``, which is
    cached with it: decrypting a secret key costs more than the cached look-up does
    (docs/benchmarks-http.md). Cached, inline."""
    async def load() -> tuple[Credential | None, str]:
        row = await read(session, lambda s: s.get(Credential, access_key))
        return row, secret(row)
    return await cached(session, ("credential", access_key), load)


async def credentials(session: AsyncSession, project_id: str | None = None, *,
                      revoked: bool = False) -> list[Credential]:
    """The credentials (of one project), oldest first; revoked ones only with ``revoked``. Session: for
    the CLI."""
    query = select(Credential).order_by(Credential.created_at, Credential.access_key)
    if project_id:
        query = query.where(Credential.project_id == project_id)
    if not revoked:
        query = query.where(Credential.revoked_at.is_(None))
    return list(await session.scalars(query))


async def credential_for_update(session: AsyncSession, access_key: str) -> Credential | None:
    """The credential of ``access_key``, to be changed in this session (revoked). Session."""
    return await session.get(Credential, access_key, with_for_update=True)


async def tokens(session: AsyncSession, project_id: str | None = None, *,
                 usable_at: datetime | None = None) -> list[Token]:
    """The tokens (of one project), oldest first; with ``usable_at``, only those neither revoked nor
    expired then. Session: for the CLI."""
    query = select(Token).order_by(Token.created_at, Token.id)
    if project_id:
        query = query.where(Token.project_id == project_id)
    if usable_at is not None:
        query = query.where(Token.revoked_at.is_(None), Token.expires_at > usable_at)
    return list(await session.scalars(query))


async def token_for_update(session: AsyncSession, token_id: str) -> Token | None:
    """The token whose id (not the token) is ``token_id``, to be changed in this session (revoked). Session."""
    return await session.scalar(select(Token).where(Token.id == token_id).with_for_update())
