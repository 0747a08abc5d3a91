"""The download behind a link: no credentials, the signed token is the authority (unless the link
was revoked since: ``redislog.file_for_download`` asks the database, through the read cache).

A link serves the file as collected, or, made with ``format=ndjson`` (its token says so,
under the MAC, and its URL ends in ``?format=ndjson``), the file's records, converted as
they are read. The format a download asks for must be the one the link was signed for:
any other, or the query added to, removed from or changed on a link, is a forged link (403).

Conditional requests are answered here, in RFC 9110's order (§13.2.2), not by
aiohttp's ``FileResponse``: its ETag is the file's mtime and size, and it
understands only the date form of ``If-Range`` (an entity tag there was taken
for "unchanged", so a resumed download could be spliced onto new content).
Our ETag is the content's recorded SHA-256: the same on every API process,
changed exactly when the content is. ``FileResponse`` still sends the file
(sendfile(), HEAD, the Range itself), seeing the request without the
conditions already answered, and without a Range that ``If-Range`` voided.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import cast

from aiohttp import ETag, hdrs, web

from dcslog import errors
from dcslog.api.ndjson import NDJSON, NdjsonStream
from dcslog.api.operations import Fail, Header, Reply, operation
from dcslog.api.params import text
from dcslog.api.schemas import integer, string
from dcslog.db.models import LogFile
from dcslog.httpserver import REQUEST_ID
from dcslog.services import records, redislog
from dcslog.state import DOWNLOAD_BUDGET, JOURNAL, KEYRING, SESSIONMAKER, STORE
from dcslog.storage.local import LocalObjectStore


class RangeNotSatisfiable(errors.DcsError):
    status = 416
    error_msg = "The requested range is not satisfiable."


class PreconditionFailed(errors.DcsError):
    status = 412
    error_msg = "The file has changed: the precondition failed."


CONDITIONS = (hdrs.IF_MATCH, hdrs.IF_NONE_MATCH, hdrs.IF_MODIFIED_SINCE, hdrs.IF_UNMODIFIED_SINCE, hdrs.IF_RANGE)
# aiohttp reads a suffix of zero bytes as "from byte 0" (-0 == 0): it selects nothing (RFC 9110 §14.1.3).
EMPTY_SUFFIX = re.compile(r"bytes=-0+", re.IGNORECASE)
CACHE_CONTROL = "private, no-store"
NDJSON_CONTENT_TYPE = f"{NDJSON}; charset=UTF-8"


class CorkedFileResponse(web.FileResponse):
    """FileResponse (sendfile(), HEAD, Range) with TCP_CORK held while it is sent, as nginx's
    ``tcp_nopush``: the kernel then sends only full segments. Without it, the last 100 MiB of a
    file went out at 0.6x nginx's speed; with it, at nginx's (docs/benchmarks-http.md).

    ``etag`` replaces FileResponse's own (mtime and size); ``view``, when set, is the request
    as FileResponse should see it (see ``download_redislog``)."""

    view: web.BaseRequest | None = None

    def __init__(self, path: Path, *, etag: str, headers: dict[str, str] | None = None):
        self._content_etag = etag
        super().__init__(path, headers=headers)

    @property
    def etag(self) -> ETag | None:
        return super().etag

    @etag.setter
    def etag(self, value: ETag | str | None) -> None:
        # FileResponse stamps the ETag of its stat() just before sending: keep ours.
        web.StreamResponse.etag.fset(self, self._content_etag)  # type: ignore[attr-defined]  # the base's setter

    async def prepare(self, request: web.BaseRequest):
        request = self.view or request
        sock = request.transport.get_extra_info("socket") if request.transport is not None else None
        corked = False
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6) and hasattr(socket, "TCP_CORK"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                corked = True
        try:
            return await super().prepare(request)
        finally:
            if corked and sock is not None:  # flushes the last partial segment
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)


def _names(tags: tuple[ETag, ...], etag: str, *, weak: bool) -> bool:
    """Whether an If-Match/If-None-Match list names the content: ``*``, or ``etag`` by strong
    comparison (neither tag weak) unless ``weak`` comparison is allowed (RFC 9110 §8.8.3.2)."""
    return any(tag.value == "*" or (tag.value == etag and (weak or not tag.is_weak)) for tag in tags)


def _precondition(request: web.BaseRequest, etag: str, last_modified: datetime) -> int | None:
    """RFC 9110 §13.2.2 steps 1-4: 412 or 304 when a precondition says so, else None."""
    if (if_match := request.if_match) is not None:
        if not _names(if_match, etag, weak=False):
            return 412
    elif (since := request.if_unmodified_since) is not None and last_modified > since:
        return 412
    if (if_none_match := request.if_none_match) is not None:
        if _names(if_none_match, etag, weak=True):
            return 304
    elif (since := request.if_modified_since) is not None and last_modified <= since:
        return 304
    return None


def _range_applies(request: web.BaseRequest, etag: str, last_modified: datetime) -> bool:
    """Step 5 (§13.1.5): a Range counts only if If-Range, when sent, names the current content —
    an entity tag by strong comparison (so a weak one never does), a date only when it is
    exactly Last-Modified. Otherwise the whole file goes out (200), never a piece to splice."""
    if hdrs.RANGE not in request.headers:
        return False
    validator = request.headers.get(hdrs.IF_RANGE)
    if validator is None:
        return True
    validator = validator.strip()
    if validator.startswith(("\"", "W/")):
        return validator == f'"{etag}"'
    return request.if_range == last_modified


def _check_range(request: web.BaseRequest, size: int) -> None:
    """416 in the envelope for what FileResponse would answer 416 with an empty body, and for
    ``bytes=-0``, which it would answer 206 with the whole file."""
    unsatisfiable = RangeNotSatisfiable()
    unsatisfiable.headers = {"Content-Range": f"bytes */{size}"}
    if EMPTY_SUFFIX.fullmatch(request.headers[hdrs.RANGE]):
        raise unsatisfiable
    try:
        start = request.http_range.start
    except ValueError:
        raise unsatisfiable from None
    if start is not None and (start >= size if start >= 0 else size == 0):
        raise unsatisfiable


async def _current_copy(request: web.Request) -> tuple[LogFile, str | None, Path, os.stat_result]:
    """The file the link names, the link's id, where its content lies, and that file's stat."""
    store = request.app[STORE]
    for _ in range(2):
        async with request.app[SESSIONMAKER]() as session:
            row, link_id = await redislog.file_for_download(session, request.app[KEYRING],
                                                            request.match_info["token"])
        # Raw links of other stores point at the store itself (records links come here on any
        # store, so a forged raw one is still 403 there, as everywhere).
        if not isinstance(store, LocalObjectStore):
            raise errors.NotFound()
        if row.object_key is None:  # file_for_download answers only files with a copy; a refresh raced it
            continue
        path = store.path(row.object_key)
        try:
            return row, link_id, path, path.stat()
        except FileNotFoundError:
            pass  # a refresh may have published new content and deleted this copy just now: look again
    raise errors.NotFound("The log file no longer exists.")


# A public operation reads its own query and declares only its path (operations._validate): the
# records form of a link is documented here, in words.
DESCRIPTION = (
    "The link as CreateRedislogDownloadLink made it. A link made with format=ndjson ends in ?format=ndjson "
    "(query parameter `format`: raw, the default, or ndjson; it must be the format the link was signed for, "
    "else 403 DCS.2004) and answers 200 with the file's records, one JSON object a line "
    f"(Content-Type: {NDJSON_CONTENT_TYPE}; Content-Disposition: attachment; filename=\"redis_<ip>_<day>.ndjson\"; "
    "Accept-Ranges: none), converted as it is sent: no Content-Length, ETag or Last-Modified; Range, If-Range and "
    "the date conditions are ignored (the whole body, 200); If-Match is 412 unless it is *, If-None-Match: * is 304.")


FILE_HEADERS = {
    "Content-Disposition": {"required": True, "schema": string(pattern='^attachment; filename="redis_.+\\.log"$')},
    "Content-Length": {"required": True, "schema": integer(minimum=0)},
    "ETag": {"required": True, "schema": string()},
    "Last-Modified": {"required": True, "schema": string()},
    "Accept-Ranges": {"required": True, "schema": string(enum=["bytes"])},
}


@operation("GET", "/downloads/{token}", role=None, tag="links", document_head=True,
           summary="Download a collected run-log file through its signed link",
           description=DESCRIPTION,
           params=[text("token", location="path", description="the signed token of the link")],
           headers=[Header("Range", "a byte range (206 partial content)"),
                    Header("If-Range", "an ETag or date: the range only if the file is unchanged"),
                    Header("If-Match", "412 unless the ETag matches"),
                    Header("If-Unmodified-Since", "412 if the file changed since"),
                    Header("If-None-Match", "304 if the ETag matches"),
                    Header("If-Modified-Since", "304 unless the file changed since")],
           ok={200: Reply(string(), "The file (text/plain; charset=utf-8)", "text/plain", FILE_HEADERS),
               206: Reply(string(), "Part of the file", "text/plain", {**FILE_HEADERS, "Content-Range": {
                   "required": True, "schema": string(pattern="^bytes [0-9]+-[0-9]+/[0-9]+$")}}),
               304: Reply(None, "Not modified (If-None-Match / If-Modified-Since)")},
           errors=[Fail(403, "The link is invalid, tampered with, expired or revoked", ("DCS.2004",)),
                   Fail(404, "The file is gone (retention) or being collected again", ("DCS.4001",)),
                   Fail(412, "If-Match / If-Unmodified-Since failed", ("DCS.4800",)),
                   Fail(416, "Range not satisfiable", ("DCS.4800",), headers={
                       "Content-Range": {"required": False, "schema": string(pattern="^bytes \\*/[0-9]+$")}}),
                   Fail(429, "The project's downloads a minute (DCSLOG_DOWNLOADS_PER_MINUTE) reached on this API "
                             "process", ("APIGW.0308",), headers={
                       "Retry-After": {"required": True, "schema": string(pattern="^[0-9]+$")}})])
async def download_redislog(request: web.Request) -> web.StreamResponse:
    if _asked_format(request) == redislog.NDJSON:
        return await _download_records(request)
    row, link_id, path, stat = await _current_copy(request)
    etag = row.sha256 or f"{stat.st_mtime_ns:x}-{stat.st_size:x}"
    name = redislog.file_name(row.replication_ip, row.day)
    headers = {"Content-Type": "text/plain; charset=utf-8",
               "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": CACHE_CONTROL}
    response = CorkedFileResponse(path, etag=etag, headers=headers)
    # Compared as the client saw it: whole seconds, as FileResponse will stamp it from the same file.
    response.last_modified = stat.st_mtime
    last_modified = cast(datetime, response.last_modified)  # set just above
    answer = _precondition(request, etag, last_modified)
    if answer == 412:
        raise PreconditionFailed()
    if answer == 304:  # no body, and the validators a 200 would carry (RFC 9110 §15.4.5)
        return web.Response(status=304, headers={hdrs.ETAG: f'"{etag}"', hdrs.LAST_MODIFIED:
                                                 response.headers[hdrs.LAST_MODIFIED], "Cache-Control": CACHE_CONTROL})
    ranged = _range_applies(request, etag, last_modified)
    if ranged:
        _check_range(request, stat.st_size)
    if any(header in request.headers for header in CONDITIONS) or (hdrs.RANGE in request.headers and not ranged):
        # FileResponse would answer the conditions again, by its own ETag, and honour a voided
        # Range: it sees a copy of the request with no headers but the Range to serve. (The others
        # are none of its business, and copying them can fail: aiohttp re-encodes them as UTF-8.)
        response.view = request.clone(headers={hdrs.RANGE: request.headers[hdrs.RANGE]} if ranged else {})
    await _record_release(request, row, link_id)
    return response


async def _record_release(request: web.Request, row: LogFile, link_id: str | None) -> None:
    """The audit trail's ``link.download``, committed before the first byte of the body goes out:
    if it cannot be recorded, the download fails (500) and nothing is released; past the project's
    downloads a minute (``DownloadBudget``, what bounds the trail's disk), 429 and nothing either. A
    ``HEAD`` (and a 304, 412 or 416, answered before this) sends no content and is not recorded."""
    if request.method == "HEAD":
        return
    request.app[DOWNLOAD_BUDGET].take(row.project_id)
    await redislog.record_download(request.app[JOURNAL], row, link_id, source_ip=request.remote,
                                   request_id=request[REQUEST_ID])


def _asked_format(request: web.BaseRequest) -> str:
    """The format the download asks for (no ``format``: raw). Whether the link may serve it is its
    signature's say (``redislog.file_for_download``); a value that is no format, or several
    ``format`` parameters, name no link dcslog made: 403 as a forged one."""
    asked = request.query.getall("format", [])
    if not asked:
        return redislog.RAW
    if len(asked) > 1 or asked[0] not in redislog.LINK_FORMATS:
        raise errors.LinkForbidden()
    return asked[0]


async def _download_records(request: web.Request) -> web.StreamResponse:
    """A records link: every record of the file, one JSON object a line, converted in a thread
    as it is sent (``records.export`` over the whole file), from any store (S3 too: dcslog reads
    the object in ranges). HEAD opens the file and sends the headers alone.

    The body is made afresh at each request, from the content and the node as dcslog knows it
    now (its address and group are in every record), so no validator describes it: no ETag or
    Last-Modified, no ranges (``Accept-Ranges: none``). Hence, as RFC 9110 §13.1 reads for a
    representation without them: ``If-Match`` is 412 unless it is ``*``; ``If-None-Match`` matches
    only as ``*`` (304); the date conditions, ``If-Range`` and ``Range`` are ignored — the whole
    body, 200."""
    store = request.app[STORE]
    query = records.RecordQuery(0, records.MAX_MS)
    with ExitStack() as stack:
        async with NdjsonStream() as stream:
            for _ in range(2):
                async with request.app[SESSIONMAKER]() as session:
                    row, link_id, instance, plan = await redislog.records_for_download(
                        session, request.app[KEYRING], request.match_info["token"])
                if request.method != "HEAD":  # past the budget, before the conversion is paid for
                    request.app[DOWNLOAD_BUDGET].check(row.project_id)
                sources, items = await stream.call(records.export, [plan], query, store, instance.timezone, stack)
                if sources[0]["collected_days"]:
                    break
                # The copy could not be opened: a refresh may have published new content and deleted
                # this copy just now. Look again.
                stack.close()
            else:
                raise errors.NotFound("The log file no longer exists.")
            if (if_match := request.if_match) is not None and not any(tag.value == "*" for tag in if_match):
                raise PreconditionFailed()
            if (if_none_match := request.if_none_match) is not None and any(tag.value == "*" for tag in if_none_match):
                return web.Response(status=304, headers={"Cache-Control": CACHE_CONTROL})
            name = redislog.records_file_name(row.replication_ip, row.day)
            response = web.StreamResponse(headers={
                "Content-Type": NDJSON_CONTENT_TYPE, "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": CACHE_CONTROL, "Accept-Ranges": "none",
                # Sent with the headers, before the middleware could stamp it on a prepared answer.
                "X-Request-Id": request[REQUEST_ID]})
            await _record_release(request, row, link_id)
            # No Content-Length: aiohttp sends it chunked (HTTP/1.1) or to the close (HTTP/1.0).
            await response.prepare(request)
            if request.method != "HEAD":
                await stream.send(response, items)
            await response.write_eof()
            return response
