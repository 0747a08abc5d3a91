"""What a DCS route needs before it runs: a session, the authenticated caller, the instance.

``dcs_route`` turns a declared operation's handler into what aiohttp calls: it
authenticates the request, checks the project in the path against the credential and
the caller's role, loads the ``{instance_id}`` of the path within that project, reads the
declared parameters, and only then calls the handler with a ``Context`` and those
parameters. Handlers never see an unauthenticated request or an unchecked parameter.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.auth import authenticate
from dcslog.config import Settings
from dcslog.db.models import Instance
from dcslog.httpserver import REQUEST_ID
from dcslog.keys import Keyring
from dcslog.roles import Caller
from dcslog.services.audit import Actor
from dcslog.services.common import get_instance, validate_project_id
from dcslog.signing import SignedRequest
from dcslog.state import KEYRING, SESSIONMAKER, SETTINGS, STORE


@dataclass
class Context:
    request: web.Request
    session: AsyncSession
    caller: Caller
    loaded_instance: Instance | None  # None on a path without {instance_id}

    @property
    def instance(self) -> Instance:
        """The path's ``{instance_id}``, loaded within the caller's project."""
        if self.loaded_instance is None:  # a handler of a path without one asked for it: a bug, not a request's
            raise LookupError("this operation's path has no {instance_id}")
        return self.loaded_instance

    @property
    def actor(self) -> Actor:
        """The caller as the audit trail records it, with the request's source address and id."""
        return Actor.of_caller(self.caller, self.request.remote, self.request[REQUEST_ID])

    @property
    def settings(self) -> Settings:
        return self.request.app[SETTINGS]

    @property
    def keyring(self) -> Keyring:
        return self.request.app[KEYRING]

    @property
    def store(self):
        return self.request.app[STORE]


Handler = Callable[..., Awaitable[web.StreamResponse]]  # (ctx, **the declared parameters)
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]
ReadArguments = Callable[[Context], Awaitable[dict[str, Any]]]


def _wire_headers(headers: CIMultiDictProxy[str]) -> CIMultiDictProxy[str]:
    """The headers with every value as text that hashes and encodes.

    aiohttp decodes header bytes as UTF-8 with ``surrogateescape``, so a value
    that is not UTF-8 (Latin-1, which is what requests, and so the SDK, sends)
    holds lone surrogates that no encoder takes. Such a value is read as the
    Latin-1 it is: a token or signature made of it is then simply wrong (401).
    """
    if all(value.isascii() for value in headers.values()):
        return headers
    return CIMultiDictProxy(CIMultiDict(
        (name, value.encode("utf-8", "surrogateescape").decode("latin-1") if _has_surrogates(value) else value)
        for name, value in headers.items()))


def _has_surrogates(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return True
    return False


def dcs_route(handler: Handler, role: str, *, with_instance: bool, read_arguments: ReadArguments | None) -> Route:
    """The route of a declared DCS operation. Checks in DCS's order: credentials, project, role,
    instance, then the parameters (``read_arguments``, built once per operation)."""
    @functools.wraps(handler)
    async def route(request: web.Request) -> web.StreamResponse:
        session = request.app[SESSIONMAKER]()
        try:
            caller = await authenticate(
                SignedRequest(request.method, request.rel_url.raw_path, request.rel_url.raw_query_string,
                              _wire_headers(request.headers), await request.read()),
                session, request.app[KEYRING], request.app[SETTINGS].clock_skew)
            project_id = request.match_info["project_id"]
            validate_project_id(project_id)
            if project_id != caller.project_id:
                raise errors.ProjectMismatch()
            if not caller.can(role):
                raise errors.Forbidden()
            instance = None
            if with_instance:
                instance = await get_instance(session, project_id, request.match_info["instance_id"])
            ctx = Context(request, session, caller, instance)
            if read_arguments is None:
                return await handler(ctx)
            return await handler(ctx, **await read_arguments(ctx))
        finally:
            # Answered from the read cache, the session never began: nothing to release.
            if session.in_transaction():
                await session.close()
    return route
