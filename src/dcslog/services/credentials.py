"""Who may call the API: AK/SK credentials and X-Auth-Tokens, made, listed and deleted by the admin
commands (``dcslog credentials …``, ``dcslog token create``). Requests find them through ``auth``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.db import queries
from dcslog.db.models import Credential, Token
from dcslog.keys import Keyring, hash_token, new_access_key, new_secret_key, new_token
from dcslog.services.common import utcnow


async def create_credential(session: AsyncSession, keyring: Keyring, *, project_id: str, role: str) -> dict[str, str]:
    """A new AK/SK pair for the project and role. The secret key is in the answer, and only there:
    the database keeps it encrypted with the server key."""
    secret_key = new_secret_key()
    credential = Credential(access_key=new_access_key(), secret_encrypted=keyring.encrypt(secret_key),
                            project_id=project_id, role=role, created_at=utcnow())
    session.add(credential)
    await session.commit()
    return {"access_key": credential.access_key, "secret_key": secret_key,
            "project_id": credential.project_id, "role": credential.role}


async def list_credentials(session: AsyncSession, project_id: str | None = None) -> list[dict[str, str]]:
    """Every credential (of one project), oldest first, without its secret."""
    return [{"access_key": c.access_key, "project_id": c.project_id, "role": c.role,
             "created_at": c.created_at.isoformat() + "Z"} for c in await queries.credentials(session, project_id)]


async def delete_credential(session: AsyncSession, access_key: str) -> dict[str, Any]:
    """Delete the credential: the next request signed with it is refused (``NotFound`` if there is none)."""
    deleted = await session.execute(delete(Credential).where(Credential.access_key == access_key))
    if not cast(CursorResult[Any], deleted).rowcount:
        await session.rollback()
        raise errors.NotFound(f"No credential with access key {access_key}.")
    await session.commit()
    return {"access_key": access_key, "deleted": True}


async def create_token(session: AsyncSession, *, project_id: str, role: str, ttl: int) -> dict[str, str]:
    """A new X-Auth-Token for the project and role, valid ``ttl`` seconds. The token is in the answer,
    and only there: the database keeps its SHA-256."""
    token = new_token()
    now = utcnow()
    row = Token(token_hash=hash_token(token), project_id=project_id, role=role, created_at=now,
                expires_at=now + timedelta(seconds=ttl))
    session.add(row)
    await session.commit()
    return {"token": token, "expires_at": row.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "project_id": row.project_id, "role": row.role}
