"""The project's access keys and tokens (SPEC §8, dcslog extensions, admin only): listed without a
secret, and revoked — what the console's Credentials view calls.

Making one stays the CLI's (``dcslog credentials create``, ``dcslog token create``): its secret is
shown once, on the terminal of whoever runs the server, never in an HTTP answer a proxy, a browser
or a log on the way could keep. The rules, and the audit records (``credential.revoke``,
``token.revoke``, the API caller as actor), are ``services/credentials.py``'s, as for the CLI.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dcslog.api.context import Context
from dcslog.api.operations import Reply, operation
from dcslog.api.params import json_response, text
from dcslog.services import credentials

# Unknown, or another project's: 404 DCS.4001 alike, so no one learns what exists elsewhere.
ACCESS_KEY = text("access_key", location="path", description="the access key (its secret key is never needed)")
TOKEN_ID = text("token_id", location="path", description="the token's id (tok-…, as listed), never the token")

# The lists hold only what authenticates, so ``revoked_at`` (always null there) is left out.
CREDENTIAL_FIELDS = ("access_key", "name", "role", "project_id", "created_at")
TOKEN_FIELDS = ("id", "name", "role", "project_id", "created_at", "expires_at")


def _only(view: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {field: view[field] for field in fields}


@operation("GET", "/v2/{project_id}/credentials", role="admin", tag="dcslog extensions",
           summary="The project's access keys that authenticate (not revoked), oldest first; never a secret key",
           ok={200: "ListCredentialsResponse"}, errors=["DCS.4002"])
async def list_credentials(ctx: Context) -> web.Response:
    listed = await credentials.list_credentials(ctx.session, ctx.caller.project_id)
    return json_response({"credentials": [_only(view, CREDENTIAL_FIELDS) for view in listed]})


@operation("DELETE", "/v2/{project_id}/credentials/{access_key}", role="admin", tag="dcslog extensions",
           summary="Revoke an access key: 401 DCS.1001 from its next request on, on every API process",
           params=[ACCESS_KEY], ok={204: Reply(None, "Revoked (no body); revoking it again is no error")},
           errors=["DCS.4002"])
async def delete_credential(ctx: Context, access_key: str) -> web.Response:
    await credentials.revoke_credential(ctx.session, ctx.actor, access_key, ctx.caller.project_id)
    return web.Response(status=204)


@operation("GET", "/v2/{project_id}/tokens", role="admin", tag="dcslog extensions",
           summary="The project's tokens that authenticate (neither revoked nor expired), oldest first, by id; "
                   "never a token",
           ok={200: "ListTokensResponse"}, errors=["DCS.4002"])
async def list_tokens(ctx: Context) -> web.Response:
    listed = await credentials.list_tokens(ctx.session, ctx.caller.project_id)
    return json_response({"tokens": [_only(view, TOKEN_FIELDS) for view in listed]})


@operation("DELETE", "/v2/{project_id}/tokens/{token_id}", role="admin", tag="dcslog extensions",
           summary="Revoke a token by its id: 401 DCS.1001 from its next request on, on every API process",
           params=[TOKEN_ID], ok={204: Reply(None, "Revoked (no body); revoking it again is no error")},
           errors=["DCS.4002"])
async def delete_token(ctx: Context, token_id: str) -> web.Response:
    await credentials.revoke_token(ctx.session, ctx.actor, token_id, ctx.caller.project_id)
    return web.Response(status=204)
