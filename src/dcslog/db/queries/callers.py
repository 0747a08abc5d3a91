"""Who may call: credentials (AK/SK) and tokens."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog.db.inline import read
from dcslog.db.models import Credential, Token
from dcslog.db.readcache import cached


async def caller_by_token_hash(session: AsyncSession, token_hash: str) -> Token | None:
    """The token stored under ``token_hash``, expired or not. Cached, inline."""
    return await cached(session, ("token", token_hash), lambda: read(session, lambda s: s.get(Token, token_hash)))


async def credential(session: AsyncSession, access_key: str,
                     secret: Callable[[Credential | None], str]) -> tuple[Credential | None, str]:
    """The credential of ``access_key`` (None: unknown) and ``secret(credential)``, which is
    cached with it: decrypting a secret key costs more than the cached look-up does
    (docs/benchmarks-http.md). Cached, inline."""
    async def load() -> tuple[Credential | None, str]:
        row = await read(session, lambda s: s.get(Credential, access_key))
        return row, secret(row)
    return await cached(session, ("credential", access_key), load)


async def credentials(session: AsyncSession, project_id: str | None = None) -> list[Credential]:
    """Every credential (of one project), oldest first. Session: for the CLI."""
    query = select(Credential).order_by(Credential.created_at)
    if project_id:
        query = query.where(Credential.project_id == project_id)
    return list(await session.scalars(query))
