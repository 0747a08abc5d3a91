"""Who may call the API: AK/SK credentials and X-Auth-Tokens, made by the admin commands
(``dcslog credentials …``, ``dcslog token …``: a secret is shown once, on a terminal), listed and
revoked by them and by an admin through the API (``api/credentials.py``, the console). Requests
find them through ``auth``.

Revoking is a soft delete: the row stays, with ``revoked_at``, so that what a key or token did
can still be told by its name (the audit trail), and ``auth`` refuses it. It is one committed
UPDATE, which every API process sees at its next request: on SQLite the read cache drops every
answer when any connection commits (``db/readcache.py``), on PostgreSQL there is no cache. A
revocation cannot be undone: make a new credential."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.db import queries
from dcslog.db.models import Credential, Token
from dcslog.keys import Keyring, hash_token, new_access_key, new_secret_key, new_token
from dcslog.roles import TOKEN_ID
from dcslog.services import audit
from dcslog.services.audit import Actor
from dcslog.services.common import utcnow

NAME_MAX = 128


def new_token_id() -> str:
    """A token's id: random, so neither the token nor its hash can be had from it."""
    return "tok-" + secrets.token_hex(8)


def _name(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise errors.DcsError(f"a name is 1-{NAME_MAX} printable characters")
    return name


def _time(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def credential_view(credential: Credential) -> dict[str, Any]:
    """A credential as ``list`` shows it: never its secret key."""
    return {"access_key": credential.access_key, "name": credential.name, "role": credential.role,
            "project_id": credential.project_id, "created_at": _time(credential.created_at),
            "revoked_at": _time(credential.revoked_at)}


def token_view(token: Token) -> dict[str, Any]:
    """A token as ``list`` shows it: its id, never the token (nor its hash)."""
    return {"id": token.id, "name": token.name, "role": token.role, "project_id": token.project_id,
            "created_at": _time(token.created_at), "expires_at": _time(token.expires_at),
            "revoked_at": _time(token.revoked_at)}


async def create_credential(session: AsyncSession, keyring: Keyring, actor: Actor, *, project_id: str, role: str,
                            name: str | None = None) -> dict[str, Any]:
    """A new AK/SK pair for the project and role. The secret key is in the answer, and only there:
    the database keeps it encrypted with the server key."""
    secret_key = new_secret_key()
    credential = Credential(access_key=new_access_key(), secret_encrypted=keyring.encrypt(secret_key),
                            project_id=project_id, role=role, created_at=utcnow(), name=_name(name))
    session.add(credential)
    audit.record(session, actor, "credential.create", project_id=project_id, target=credential.access_key)
    await session.commit()
    # Exactly the keys of the CLI contract (SPEC §4); the name is in ``list``.
    return {"access_key": credential.access_key, "secret_key": secret_key,
            "project_id": credential.project_id, "role": credential.role}


async def list_credentials(session: AsyncSession, project_id: str | None = None, *,
                           show_all: bool = False) -> list[dict[str, Any]]:
    """The credentials (of one project) that authenticate — not revoked — or with ``show_all``
    every one, oldest first, without their secrets."""
    return [credential_view(c) for c in await queries.credentials(session, project_id, revoked=show_all)]


async def revoke_credential(session: AsyncSession, actor: Actor, access_key: str,
                            project_id: str | None) -> dict[str, Any]:
    """Revoke the credential (of ``project_id``, when given): the next request signed with it is
    refused (DCS.1001) by every API process. ``NotFound`` if there is none; revoking a revoked one
    again changes nothing (its first ``revoked_at`` stays)."""
    credential = await queries.credential_for_update(session, access_key)
    if credential is None or (project_id is not None and credential.project_id != project_id):
        await session.rollback()
        where = f" in project {project_id}" if project_id is not None else ""
        raise errors.NotFound(f"No credential with access key {access_key}{where}.")
    audit.record(session, actor, "credential.revoke", project_id=credential.project_id, target=access_key,
                 outcome=audit.SUCCEEDED if credential.revoked_at is None else audit.UNCHANGED)
    if credential.revoked_at is None:
        credential.revoked_at = utcnow()
    view = credential_view(credential)
    await session.commit()
    return view


async def create_token(session: AsyncSession, actor: Actor, *, project_id: str, role: str, ttl: int,
                       name: str | None = None) -> dict[str, Any]:
    """A new X-Auth-Token for the project and role, valid ``ttl`` seconds. The token is in the answer,
    and only there: the database keeps its SHA-256 (and an id of its own, for lists and revocation)."""
    token = new_token()
    now = utcnow()
    row = Token(token_hash=hash_token(token), id=new_token_id(), name=_name(name), project_id=project_id,
                role=role, created_at=now, expires_at=now + timedelta(seconds=ttl))
    session.add(row)
    audit.record(session, actor, "token.create", project_id=project_id, target=row.id)
    await session.commit()
    # The contract's keys (SPEC §4), and the id that ``list`` and ``revoke`` know the token by.
    return {"token": token, "id": row.id, "expires_at": _time(row.expires_at), "project_id": row.project_id,
            "role": row.role}


async def list_tokens(session: AsyncSession, project_id: str | None = None, *,
                      show_all: bool = False) -> list[dict[str, Any]]:
    """The tokens (of one project) that authenticate — neither revoked nor expired — or with
    ``show_all`` every one, oldest first. Never a token, nor its hash."""
    return [token_view(t) for t in await queries.tokens(session, project_id,
                                                        usable_at=None if show_all else utcnow())]


async def revoke_token(session: AsyncSession, actor: Actor, token_id: str, project_id: str | None) -> dict[str, Any]:
    """Revoke the token with this id (of ``project_id``, when given): its next request is refused
    (DCS.1001) by every API process. ``NotFound`` if there is none; revoking a revoked one again
    changes nothing."""
    token = await queries.token_for_update(session, token_id)
    if token is None or (project_id is not None and token.project_id != project_id):
        await session.rollback()
        where = f" in project {project_id}" if project_id is not None else ""
        if not TOKEN_ID.fullmatch(token_id):  # perhaps a token itself: not said back, as a secret never is
            raise errors.NotFound(f"No such token id{where}: revoke takes a token's id (tok-…, from "
                                  "`dcslog token list`), not the token.")
        raise errors.NotFound(f"No token with id {token_id}{where}.")
    audit.record(session, actor, "token.revoke", project_id=token.project_id, target=token.id,
                 outcome=audit.SUCCEEDED if token.revoked_at is None else audit.UNCHANGED)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    view = token_view(token)
    await session.commit()
    return view
