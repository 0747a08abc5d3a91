"""What a DCS route needs before it runs: a session, the authenticated caller, the instance.

``dcs_operation(role)`` wraps a handler: it authenticates the request, checks
the project in the path against the credential and the caller's role, loads
the ``{instance_id}`` of the path within that project, and hands the handler a
``Context``. Handlers never see an unauthenticated request.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.auth import authenticate
from dcslog.config import Settings
from dcslog.db.models import Instance
from dcslog.keys import Keyring
from dcslog.roles import Caller
from dcslog.services.common import get_instance, validate_project_id
from dcslog.signing import SignedRequest
from dcslog.state import KEYRING, SESSIONMAKER, SETTINGS, STORE, WORKER

@dataclass
class Context:
    request: web.Request
    session: AsyncSession
    caller: Caller
    instance: Instance | None

    @property
    def settings(self) -> Settings:
        return self.request.app[SETTINGS]

    @property
    def keyring(self) -> Keyring:
        return self.request.app[KEYRING]

    @property
    def store(self):
        return self.request.app[STORE]

    def wake_worker(self) -> None:
        worker = self.request.app.get(WORKER)
        if worker is not None:
            worker.wake()


Handler = Callable[[Context], Awaitable[web.StreamResponse]]


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


def dcs_operation(role: str) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    def decorator(handler: Handler):
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
                if "instance_id" in request.match_info:
                    instance = await get_instance(session, project_id, request.match_info["instance_id"])
                return await handler(Context(request, session, caller, instance))
            finally:
                # Answered from the read cache, the session never began: nothing to release.
                if session.in_transaction():
                    await session.close()
        return route
    return decorator
