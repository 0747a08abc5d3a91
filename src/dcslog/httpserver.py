"""The HTTP plumbing every dcslog server runs on (``dcslog serve`` and ``dcslog agent``).

The DCS error envelope (``dcs_envelope``: the one place a failure becomes
``{"error_code", "error_msg", "error_ext_msg"}``), request ids, size limits,
the access log, and the runner (``run_app``, ``DcsRunner``) whose connections
answer malformed HTTP in the envelope too. It imports neither the database nor
the services: the agent runs on it alone, the service's app is ``app.py``.

aiohttp was chosen against PERF-ANCHORS.md: its FileResponse serves links with
sendfile at ~0.97x nginx (Starlette's reaches 0.14-0.69x) and it answers
small JSON requests at ~0.12x nginx per core (FastAPI: 0.04x). It runs on the
standard asyncio loop, which has loop.sendfile() (uvloop has not).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import itertools
import logging
import os
import re
import signal
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

from dcslog import errors
from dcslog.api.params import json_response
from dcslog.observability import REQUEST_METRICS, log_info, new_request_id, request_id_var
from dcslog.roles import TOKEN_ID

log = logging.getLogger("dcslog")

REQUEST_ID = web.RequestKey("request_id", str)
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_BODY = 64 * 1024  # no DCS endpoint here takes a body; keep what is read small
MAX_URL = 8 * 1024
MAX_HEADERS = 16 * 1024
# aiohttp answers a request over its own parser limits itself, in plain text, before any
# middleware. Its limits sit above ours (MAX_URL, MAX_HEADERS), so that ours answer first,
# in the envelope; memory stays bounded by theirs.
PARSER_LIMITS: dict[str, Any] = {"max_line_size": 64 * 1024, "max_field_size": 64 * 1024}

HTTP_ERRORS = {
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
}


def _as_dcs_error(exc: web.HTTPException) -> errors.DcsError:
    if exc.status in HTTP_ERRORS:
        error = HTTP_ERRORS[exc.status]()
    else:
        error = errors.DcsError(exc.reason or "Invalid request.", "DCS.4800" if exc.status < 500 else "DCS.5000")
        error.status = exc.status
    if "Allow" in exc.headers:  # a 405 must say which methods the resource has (RFC 9110)
        error.headers = {**error.headers, "Allow": exc.headers["Allow"]}
    return error


def _status_error(status: int, message: str) -> errors.DcsError:
    error = errors.DcsError(message)
    error.status = status
    return error


def _error_response(error: errors.DcsError) -> web.Response:
    response = json_response(error.body(), status=error.status)
    response.headers.update(error.headers)
    return response


class AnswerCut(ConnectionResetError):
    """A streamed answer (a download, an agent's day) failed after its first bytes went out."""


@web.middleware
async def dcs_envelope(request: web.Request, handler) -> web.StreamResponse:
    """The one place that turns any failure into the DCS error envelope, and stamps X-Request-Id."""
    given = request.headers.get("X-Request-Id", "")
    # A caller's own id is echoed (it ties their logs to ours) only if it is tame: it goes into our log.
    request_id = given if SAFE_REQUEST_ID.fullmatch(given) else new_request_id()
    request[REQUEST_ID] = request_id
    request_id_var.set(request_id)
    try:
        if len(request.raw_path) > MAX_URL:
            raise _status_error(414, f"The URL is longer than {MAX_URL} bytes.")
        if sum(map(len, itertools.chain.from_iterable(request.raw_headers))) > MAX_HEADERS:
            raise _status_error(431, f"The request headers are larger than {MAX_HEADERS} bytes.")
        response = await handler(request)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if request.writer.output_size > 0:
            # Part of a streamed answer is out: an envelope now would land inside its body.
            # The connection is closed instead, without the end of the chunked or sized
            # body, so the client sees a broken answer, never a short one that looks whole.
            level = logging.INFO if isinstance(exc, ConnectionError) else logging.WARNING  # the client left
            log.log(level, "answer cut after %d bytes: %s, request_id=%s", request.writer.output_size,
                    exc or type(exc).__name__, request_id)
            raise AnswerCut() from exc
        if isinstance(exc, errors.DcsError):
            response = _error_response(exc)
        elif isinstance(exc, web.HTTPException):
            if exc.status < 400:  # a redirect: aiohttp sends the exception itself
                exc.headers["X-Request-Id"] = request_id
                raise
            response = _error_response(_as_dcs_error(exc))
        else:
            log.exception("unexpected error, request_id=%s", request_id)
            response = _error_response(errors.InternalError())
    # A handler that streams (the agent) has sent its headers already and sets the id itself.
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    return response


def _route_template(request: web.BaseRequest) -> str:
    try:
        match_info = cast(web.Request, request).match_info
    except (AttributeError, AssertionError):  # none: aiohttp refused the request before routing it
        match_info = None
    resource = match_info.route.resource if match_info is not None else None
    return resource.canonical if resource is not None else "(unmatched)"


# Revoking a token takes its id; a token sent there instead is refused (404), and must not be logged.
TOKEN_ROUTE = "/v2/{project_id}/tokens/{token_id}"


class AccessLogger(AbstractAccessLogger):
    """Runs once per request, after its response is sent (aiohttp calls it whenever an
    access logger is set, ``enabled`` being True): counts the request in the request
    metrics, and writes the access line — method, path as sent (percent-encoded, so one
    line), status, time; the request id is added by the log format — unless the
    ``aiohttp.access`` logger is quiet (DCSLOG_ACCESS_LOG=false). Download tokens are
    bearer secrets: never logged; nor is what came where a token's id belongs, unless it is one."""

    def log(self, request, response, time):
        route = _route_template(request)
        REQUEST_METRICS.count(route, request.method, response.status, time)
        if self.logger.isEnabledFor(logging.INFO):
            path = request.rel_url.raw_path
            if request.path.startswith("/downloads/"):  # the decoded path: "/%64ownloads/…" too
                path = "/downloads/<token>"
            elif route == TOKEN_ROUTE and not TOKEN_ID.fullmatch(request.match_info["token_id"]):
                path = path.rsplit("/", 1)[0] + "/<not a token id>"  # perhaps the token, pasted for its id
            log_info(self.logger, f"{request.method} {path} {response.status} {time * 1000:.1f}ms")


# What every server of ours (dcslog serve, the tests' servers, the agent) runs aiohttp with.
# keepalive_timeout: web.run_app's 75 s for an idle keep-alive connection (the protocol's
# own default is an hour of held file descriptors per idle client).
RUNNER_OPTIONS: dict[str, Any] = {**PARSER_LIMITS, "access_log_class": AccessLogger, "keepalive_timeout": 75.0}


class DcsRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, answering in the DCS envelope what never reaches
    the middleware: a request its HTTP parser rejects (bad request line, header or chunked
    body, a line over PARSER_LIMITS), which aiohttp answers in plain text."""

    __slots__ = ()

    def handle_error(self, request, status=500, exc=None, message=None):
        if isinstance(exc, AnswerCut):  # logged by dcs_envelope: only closing is left (aiohttp does it)
            raise ConnectionError("the answer was cut")
        request_id = new_request_id()
        request_id_var.set(request_id)  # this runs in the request's task: its access line gets the id too
        if status >= 500:
            log.error("unexpected error outside the application, request_id=%s", request_id, exc_info=exc)
            error: errors.DcsError = errors.InternalError()
            error.status = status
        if request.writer.output_size > 0:  # as aiohttp: a response is half sent, only closing is left
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        if status < 500:
            # The parser's first line says what was wrong; the rest echoes the client's bytes.
            reason = (message or "").partition("\n")[0].strip().rstrip(":")[:200] or "Malformed HTTP request"
            if reason.startswith("Got more than"):
                reason = f"A request line or header is longer than {PARSER_LIMITS['max_line_size']} bytes"
            log.info("malformed request from %s, request_id=%s: %s", request.remote, request_id, reason)
            error = _status_error(status, f"Malformed HTTP request: {reason}.")
        response = _error_response(error)
        response.headers["X-Request-Id"] = request_id
        response.force_close()  # the parser has lost its place in the stream
        return response


class DcsServer(web.Server):
    def __call__(self) -> RequestHandler:
        return DcsRequestHandler(self, loop=self._loop, **self._kwargs)


class DcsRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are ``DcsRequestHandler``s. aiohttp has no option
    for the protocol class, so the server it builds is given ours (which adds no state)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = DcsServer
        return server


def one_malloc_arena() -> None:
    """Have glibc's malloc use one arena for every thread (unless MALLOC_ARENA_MAX says otherwise).
    By default each thread that allocates gets an arena of its own (up to 8 per core), and each
    keeps what was freed in it: the 1–4 MiB reads of run-log scans, run on whichever thread of the
    pool, stayed in several at once (+9 MB of RSS after a few searches; 96 MB instead of 104 MB
    with one arena in `bench/search_http.py`). This process's threads take turns on the GIL, so
    one arena costs no parallelism. Called before any thread starts; elsewhere than glibc, nothing."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    m_arena_max = -8  # <malloc.h>
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(m_arena_max, 1)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return cast("Callable[[int], int]", ctypes.CDLL("libc.so.6").malloc_trim)
    except (OSError, AttributeError):  # not glibc
        return None


def give_back_freed_memory() -> None:
    """Return to the kernel the pages of glibc's heap that are free (``malloc_trim(0)``: the top
    of the heap, and the whole pages inside free chunks). A run-log scan's blocks (256 KiB–4 MiB)
    are freed in the heap, and the small allocations that follow (a request's buffers) take
    pieces of those holes, so the next scan's blocks go above them: after the first-page runs of
    `bench/search_http.py` the heap held 0.2–11.5 MB free, resident, depending on how requests
    interleaved. Called when a scan is over (a page, an export); costs ≈60 µs; elsewhere than
    glibc, nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def run_app(app: web.Application, *, host: str, port: int, ssl_context=None, ready=None) -> None:
    """Serve ``app`` through ``DcsRunner`` until SIGINT or SIGTERM, then shut down as
    ``web.run_app`` does: stop listening, let requests in flight finish (downloads, agent
    streams; up to aiohttp's 60 s shutdown timeout), then run the app's cleanup (the worker).
    ``ready()`` is called once the socket listens."""
    one_malloc_arena()

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)

        def on_signal() -> None:
            stop.set()
            for signum in signals:  # a second Ctrl-C or SIGTERM ends the process at once
                loop.remove_signal_handler(signum)
        for signum in signals:
            loop.add_signal_handler(signum, on_signal)
        runner = DcsRunner(app, **RUNNER_OPTIONS)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
            if ready is not None:
                ready()
            await stop.wait()
        finally:
            await runner.cleanup()  # before asyncio.run cancels what is left: the drain comes first

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
