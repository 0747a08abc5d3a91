"""create_app(settings): the aiohttp application, its error envelope, and its lifetime.

aiohttp was chosen against PERF-ANCHORS.md: its FileResponse serves links with
sendfile at ~0.97x nginx (Starlette's reaches 0.14-0.69x) and it answers
small JSON requests at ~0.12x nginx per core (FastAPI: 0.04x). It runs on the
standard asyncio loop, which has loop.sendfile() (uvloop has not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from dcslog import errors
from dcslog.api.params import json_response
from dcslog.api.routes import add_routes
from dcslog.config import Settings
from dcslog.console import add_console_routes
from dcslog.db.session import create_engine, create_sessionmaker, upgrade
from dcslog.keys import Keyring, load_server_key
from dcslog.observability import REQUEST_SECONDS, REQUESTS, request_id_var
from dcslog.state import ENGINE, KEYRING, SESSIONMAKER, SETTINGS, STORE, WORKER
from dcslog.storage import open_object_store

log = logging.getLogger("dcslog")

REQUEST_ID = web.RequestKey("request_id", str)
STARTED = web.RequestKey("started", float)
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_BODY = 64 * 1024  # no DCS endpoint here takes a body; keep what is read small
MAX_URL = 8 * 1024
MAX_HEADERS = 16 * 1024
# aiohttp answers a request over its own parser limits itself, in plain text, before any
# middleware. Its limits sit above ours (MAX_URL, MAX_HEADERS), so that ours answer first,
# in the envelope; memory stays bounded by theirs. Pass to run_app / AppRunner.
PARSER_LIMITS = {"max_line_size": 64 * 1024, "max_field_size": 64 * 1024}

HTTP_ERRORS = {
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
}


def _as_dcs_error(exc: web.HTTPException) -> errors.DcsError:
    if exc.status in HTTP_ERRORS:
        return HTTP_ERRORS[exc.status]()
    error = errors.DcsError(exc.reason or "Invalid request.", "DCS.4800" if exc.status < 500 else "DCS.5000")
    error.status = exc.status
    return error


def _too_large(status: int, message: str) -> errors.DcsError:
    error = errors.DcsError(message)
    error.status = status
    return error


def _error_response(error: errors.DcsError) -> web.Response:
    response = json_response(error.body(), status=error.status)
    response.headers.update(error.headers)
    return response


@web.middleware
async def dcs_envelope(request: web.Request, handler) -> web.StreamResponse:
    """The one place that turns any failure into the DCS error envelope."""
    given = request.headers.get("X-Request-Id", "")
    # A caller's own id is echoed (it ties their logs to ours) only if it is tame: it goes into our log.
    request[REQUEST_ID] = given if SAFE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    request[STARTED] = time.perf_counter()
    request_id_var.set(request[REQUEST_ID])
    try:
        if len(request.raw_path) > MAX_URL:
            raise _too_large(414, f"The URL is longer than {MAX_URL} bytes.")
        if sum(len(name) + len(value) for name, value in request.raw_headers) > MAX_HEADERS:
            raise _too_large(431, f"The request headers are larger than {MAX_HEADERS} bytes.")
        return await handler(request)
    except errors.DcsError as exc:
        return _error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error_response(_as_dcs_error(exc))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error, request_id=%s", request[REQUEST_ID])
        return _error_response(errors.InternalError())


async def _on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Stamp the request id and count the response: here, because a FileResponse
    settles its status (200, 206, 304, 416) only when it is prepared."""
    response.headers["X-Request-Id"] = request.get(REQUEST_ID) or uuid.uuid4().hex
    route = request.match_info.route.resource
    template = route.canonical if route is not None else "(unmatched)"
    REQUESTS.labels(template, request.method, str(response.status)).inc()
    if STARTED in request:
        REQUEST_SECONDS.labels(template, request.method).observe(time.perf_counter() - request[STARTED])


class AccessLogger(AbstractAccessLogger):
    """Method, path, status, time and request id; download tokens are bearer secrets, so never the full link."""

    def log(self, request, response, time):
        path = request.path
        if path.startswith("/downloads/"):
            path = "/downloads/<token>"
        # The request id is on the record already (observability.RequestIdFilter).
        self.logger.info('%s %s %s %.1fms', request.method, path, response.status, time * 1000)


def create_app(settings: Settings | None = None, *, run_worker: bool = True) -> web.Application:
    """The application; opening the database, object store and worker happens at start-up, not at import."""
    settings = settings or Settings()
    app = web.Application(middlewares=[dcs_envelope], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    add_routes(app)
    add_console_routes(app)
    app.on_response_prepare.append(_on_response_prepare)
    app.cleanup_ctx.append(_resources(run_worker))
    return app


def _resources(run_worker: bool):
    async def resources(app: web.Application):
        settings = app[SETTINGS]
        url = settings.effective_database_url
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        app[ENGINE] = engine
        app[SESSIONMAKER] = create_sessionmaker(engine)
        app[KEYRING] = Keyring(load_server_key(settings))
        app[STORE] = await asyncio.to_thread(open_object_store, settings)
        worker_task = None
        if run_worker:
            from dcslog.worker import Worker

            app[WORKER] = Worker(settings, app[SESSIONMAKER], app[STORE], app[KEYRING])
            worker_task = asyncio.create_task(app[WORKER].run())
        yield
        if worker_task is not None:
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
        await engine.dispose()
    return resources
