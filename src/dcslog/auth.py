"""Who is calling: the credential behind an AK/SK signature (checked by ``signing``) or an
``X-Auth-Token``, looked up in the database, as a ``roles.Caller``."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.db import queries
from dcslog.db.models import Credential
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


async def _authenticate_token(token: str, session: AsyncSession, now: datetime) -> Caller:
    # Looked up by its hash: the table never holds a usable token.
    token_hash = hash_token(token)
    row = await queries.caller_by_token_hash(session, token_hash)
    if row is None:
        raise errors.Unauthorized("Invalid token.")
    if row.expires_at <= now:
        raise errors.ExpiredCredentials("The token has expired.")
    return Caller(project_id=row.project_id, role=row.role, user_id="token")


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
    return Caller(project_id=credential.project_id, role=credential.role, user_id=access_key)
