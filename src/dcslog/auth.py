"""Who is calling: the credential behind an AK/SK signature (checked by ``signing``) or an
``X-Auth-Token``, looked up in the database, as a ``roles.Caller``.

A revoked credential or token (``revoked_at`` set, ``services.credentials``) is refused with
DCS.1001 like an unknown one. Its row is read through the read cache as every caller is, and
that is what makes a revocation take effect at once on every API process: the cache answers
only while the database is unchanged, and a revocation is a commit (``db/readcache.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.db import queries
from dcslog.db.models import Credential, Token
from dcslog.keys import Keyring, hash_token
from dcslog.roles import Caller
from dcslog.signing import SignedRequest, parse_authorization, verify_signature


async def authenticate(request: SignedRequest, session: AsyncSession, keyring: Keyring,
                       clock_skew: int, now: datetime | None = None) -> Caller:
    now = now or datetime.now(UTC).replace(tzinfo=None)
    token = request.headers.get("x-auth-token")
    if token:
        return await _authenticate_token(token, session, now)
    authorization = request.headers.get("authorization")
    if authorization:
        return await _authenticate_signature(request, authorization, session, keyring, clock_skew, now)
    raise errors.MissingCredentials()


async def check_standing(session: AsyncSession, caller: Caller, now: datetime | None = None) -> None:
    """For a request that lasts (a follow): raise what a new request by the same caller would get
    now if its token or access key has since been revoked (or the token has expired), so that a
    revocation ends the caller's open streams too (``api/records._send_follow``)."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    row = await queries.caller_row(session, caller.user_id)
    if row is None or row.revoked_at is not None:
        raise errors.Unauthorized("The token has been revoked." if isinstance(row, Token)
                                  else "The access key has been revoked.")
    if isinstance(row, Token) and row.expires_at <= now:
        raise errors.ExpiredCredentials("The token has expired.")


async def _authenticate_token(token: str, session: AsyncSession, now: datetime) -> Caller:
    # Looked up by its hash: the table never holds a usable token.
    token_hash = hash_token(token)
    row = await queries.caller_by_token_hash(session, token_hash)
    if row is None:
        raise errors.Unauthorized("Invalid token.")
    if row.revoked_at is not None:  # before the expiry: revoked is final, expired might be thought renewable
        raise errors.Unauthorized("The token has been revoked.")
    if row.expires_at <= now:
        raise errors.ExpiredCredentials("The token has expired.")
    # Its id, not the token: what it does (a task's user_id, a link revoked) is told by the id.
    return Caller(project_id=row.project_id, role=row.role, user_id=row.id)


async def _authenticate_signature(request: SignedRequest, authorization: str, session: AsyncSession,
                                  keyring: Keyring, clock_skew: int, now: datetime) -> Caller:
    access_key, signed_headers, signature = parse_authorization(authorization)

    def secret_key_of(credential: Credential | None) -> str:
        # An unknown AK costs the same decrypt and HMAC as a known one, so response
        # time does not tell which access keys exist (see docs/design.md for what the
        # read cache, which keeps both answers, changes there).
        return keyring.decrypt(credential.secret_encrypted if credential else keyring.dummy_secret)
    credential, secret_key = await queries.credential(session, access_key, secret_key_of)
    verify_signature(request, (signed_headers, signature), secret_key, clock_skew, now)
    if credential is None:
        raise errors.Unauthorized("Invalid signature.")
    if credential.revoked_at is not None:
        # Said only to whoever signed with its secret key: the holder, who may as well know why.
        raise errors.Unauthorized("The access key has been revoked.")
    return Caller(project_id=credential.project_id, role=credential.role, user_id=access_key)
