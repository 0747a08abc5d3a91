"""``dcslog agent``: runs beside redis-server on a Redis host and serves day slices of its run logs.

The service asks ``GET /v1/runlog/day?log_file=PATH&day=YYYY-MM-DD&tz=ZONE`` signed
with the agent's key (SDK-HMAC-SHA256, as the DCS API itself), and gets that
day's bytes — the same slicer, rotated and .gz files included — streamed in
1 MiB chunks, so memory stays bounded whatever the day's size. ``GET
/v1/runlog/records?log_file=…&start_ms=…`` (and the records query) answers a
node's records as NDJSON, filtered here so only matching records cross the
network. Only files under the agent's allowed directories are served. PATH may be a container
runtime's log file or a pod's container directory (``runlog.containers``): read only, as any log.
It may also name a unit's journal (``journal:UNIT``, ``runlog.journal``): read through this host's
journalctl, for the units the agent is started to allow (``--allow-unit``), a journal directory or
file given with it only under the allowed directories; its records are read from a window of it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import os
import re
import ssl
from contextlib import ExitStack
from datetime import date, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from dcslog import errors
from dcslog.httpserver import REQUEST_ID, dcs_envelope, run_app
from dcslog.runlog import journal
from dcslog.runlog.grammar import Clock
from dcslog.runlog.records import Checkpoint, Filters, Scan, first_time, host_segments, record_to_wire, scan_node
from dcslog.runlog.slicer import SourceChanged, UnknownLogFormat, iter_day
from dcslog.runlog.sources import log_sources
from dcslog.signing import SignedRequest, parse_authorization, verify_signature

log = logging.getLogger("dcslog.agent")

AGENT_KEY = web.AppKey("agent_key", str)
ALLOWED_DIRS = web.AppKey("allowed_dirs", tuple)
ALLOWED_UNITS = web.AppKey("allowed_units", tuple)
CLOCK_SKEW = 900
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _allowed(path: str, allowed_dirs: tuple[Path, ...]) -> Path:
    if not os.path.isabs(path):
        raise errors.InvalidParameter("log_file", "log_file must be an absolute path.")
    resolved = Path(os.path.realpath(path))
    # Rotated siblings live beside the file, so the file's directory is what must be allowed; a
    # container log's directory (a pod's container directory) holds its files itself.
    if not any(resolved.parent == d or d in resolved.parents or (resolved == d and resolved.is_dir())
               for d in allowed_dirs):
        raise errors.Forbidden(f"{path} is outside the directories this agent serves.")
    # What the path stands for — a directory's container logs, a link's target and its rotated
    # siblings — must be inside them too: a link in an allowed directory is no way out of it.
    for source in log_sources(str(resolved)):
        real = Path(os.path.realpath(source))
        if not any(d in real.parents for d in allowed_dirs):
            raise errors.Forbidden(f"{path} links outside the directories this agent serves.")
    return resolved


def _allowed_journal(source: journal.JournalLog, request: web.Request) -> journal.JournalLog:
    """The journal a ``journal:UNIT`` log source names, when this agent serves it."""
    try:
        journal.check_unit(source.unit)
    except ValueError as exc:
        raise errors.InvalidParameter("log_file", str(exc)) from None
    # A pattern given as the unit would match more than the units allowed: only names are served.
    if any(c in source.unit for c in "*?[]") or not any(
            fnmatch.fnmatchcase(source.unit, pattern) for pattern in request.app[ALLOWED_UNITS]):
        raise errors.Forbidden(f"The journal of {source.unit} is not served by this agent (--allow-unit).")
    if source.path is not None:
        allowed = request.app[ALLOWED_DIRS]
        resolved = Path(os.path.realpath(source.path))
        if not os.path.isabs(source.path) or not any(resolved == d or d in resolved.parents for d in allowed):
            raise errors.Forbidden(f"{source.path} is outside the directories this agent serves.")
    return source


def _authenticate(request: web.Request) -> None:
    authorization = request.headers.get("Authorization")
    if not authorization:
        raise errors.MissingCredentials()
    _, signed_headers, signature = parse_authorization(authorization)
    verify_signature(SignedRequest(request.method, request.rel_url.raw_path, request.rel_url.raw_query_string,
                                   request.headers, b""), (signed_headers, signature), request.app[AGENT_KEY],
                     CLOCK_SKEW)


def _zone(request: web.Request) -> tzinfo:
    """The instance's zone, in which days begin and end and naive times are read (absent: UTC)."""
    try:
        return ZoneInfo(request.query.get("tz") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise errors.InvalidParameter("tz", "tz must be an IANA time zone, e.g. Europe/Berlin.") from None


async def runlog_day(request: web.Request) -> web.StreamResponse:
    _authenticate(request)
    log_file = request.query.get("log_file", "")
    raw_day = request.query.get("day", "")
    if not DAY.fullmatch(raw_day):
        raise errors.InvalidParameter("day", "day must be yyyy-MM-dd.")
    try:
        day = date.fromisoformat(raw_day)
    except ValueError:
        raise errors.InvalidParameter("day", "day must be yyyy-MM-dd.") from None
    tz = _zone(request)
    in_journal = journal.parse(log_file)
    try:
        if in_journal is not None:
            chunks, first = await asyncio.to_thread(_open_journal_day, _allowed_journal(in_journal, request), day, tz)
        else:
            path = _allowed(log_file, request.app[ALLOWED_DIRS])
            chunks, first = await asyncio.to_thread(_open_day, str(path), day, tz)
    except journal.JournalError as exc:
        raise errors.UnreadableLog(str(exc)) from None
    except UnknownLogFormat as exc:
        raise errors.UnreadableLog(str(exc)) from None
    except FileNotFoundError:
        raise errors.NotFound(f"Log file {log_file} (and rotated copies) not found on this host.") from None
    except PermissionError:
        raise errors.Forbidden(f"No permission to read log file {log_file}.") from None
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8",
                                           "X-Request-Id": request[REQUEST_ID]})
    response.enable_chunked_encoding()
    await response.prepare(request)
    # A failure from here on (the log shrinking under a copytruncate rotation, a disk error)
    # cuts the stream without its last chunk (httpserver.dcs_envelope): the service never takes a
    # short day for a whole one, and asks again.
    chunk = first
    while chunk is not _END:
        await response.write(chunk)
        chunk = await asyncio.to_thread(next, chunks, _END)
    await response.write_eof()
    return response


_END = b""  # iter_day yields no empty chunk


def _open_day(path: str, day: date, tz: tzinfo):
    """(the day's chunks, the first of them or ``_END``). A copytruncate rotation before
    anything is sent is no failure: the day is sliced again, as the service does locally."""
    try:
        chunks = iter_day(path, day, tz=tz)
        return chunks, next(chunks, _END)
    except SourceChanged:
        chunks = iter_day(path, day, tz=tz)
        return chunks, next(chunks, _END)


def _journal_window(source: journal.JournalLog, scan: Scan, stack: ExitStack) -> list:
    """The unit's journal around the scan's window, as segments (``journal.scan_segments``)."""
    return list(journal.scan_segments(source, scan.start_ms, scan.end_ms, scan.after, scan.descending, stack))


def _open_journal_day(source: journal.JournalLog, day: date, tz: tzinfo):
    """(the day's chunks, the first of them or ``_END``) of a unit's journal: the day is cut into
    a temporary file first (``journal.write_day`` spools its window anyway), then streamed."""
    import tempfile

    spool = tempfile.TemporaryFile(prefix="dcslog-agent-journal-")
    try:
        journal.write_day(source, day, spool.fileno(), tz)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise

    def chunks():
        with spool:
            while chunk := spool.read(1 << 20):
                yield chunk

    it = chunks()
    return it, next(it, _END)


_MS = re.compile(r"[0-9]{1,15}")
_AFTER = re.compile(r"([0-9]{1,15})_(-1|[0-9]{1,10})")
#: Lines of records sent per hop from the reading thread; bounded so a slow client holds little.
_BATCH = 256


def _records_scan(request: web.Request) -> Scan:
    query = request.query

    def ms(name: str, required: bool) -> int | None:
        raw = query.get(name, "")
        if not raw and not required:
            return None
        if not _MS.fullmatch(raw):
            raise errors.InvalidParameter(name, f"{name} must be milliseconds since the epoch.")
        return int(raw)

    start_ms, end_ms = ms("start_ms", True), ms("end_ms", False)
    after = None
    if query.get("after"):
        match = _AFTER.fullmatch(query["after"])
        if match is None:
            raise errors.InvalidParameter("after", "after must be TIME_SEQ, as a record key.")
        after = (int(match[1]), int(match[2]))
    try:
        filters = Filters(query.get("keyword") or None, query.get("case") == "insensitive",
                          query.get("level") or None, query.get("role") or None)
    except ValueError as exc:
        raise errors.InvalidParameter("keyword/level/role", str(exc)) from None
    assert start_ms is not None
    return Scan(start_ms, end_ms, after=after, descending=query.get("sort_dir") == "desc", filters=filters,
                clock=Clock(_zone(request)))


async def runlog_records(request: web.Request) -> web.StreamResponse:
    """A node's records, filtered here, as NDJSON: each record, a checkpoint now and then (the key
    of the last entry examined, and the bytes read since the last report), and an end mark
    without which the service takes the stream for cut. The host's first entry time goes in
    ``X-Dcslog-First-Ms``: the service serves older entries from what it collected."""
    _authenticate(request)
    scan = _records_scan(request)
    in_journal = journal.parse(request.query.get("log_file", ""))
    if in_journal is not None:
        _allowed_journal(in_journal, request)
    else:
        path = _allowed(request.query.get("log_file", ""), request.app[ALLOWED_DIRS])
    stack = ExitStack()
    try:
        first_ms = None
        want_first = request.query.get("first") == "1"  # asked only when the service holds collected days
        if in_journal is not None:
            try:
                segments = await asyncio.to_thread(_journal_window, in_journal, scan, stack)
                if want_first:
                    first_ms = await asyncio.to_thread(journal.first_ms, in_journal, scan.clock)
            except journal.JournalError as exc:
                raise errors.UnreadableLog(str(exc)) from None
        else:
            try:
                segments = await asyncio.to_thread(host_segments, str(path), stack)
            except FileNotFoundError:
                raise errors.NotFound(f"Log file {path} (and rotated copies) not found on this host.") from None
            except PermissionError:
                raise errors.Forbidden(f"No permission to read log file {path}.") from None
            if want_first:
                first_ms = await asyncio.to_thread(first_time, segments, scan.clock)
        items = scan_node(segments, scan)
        headers = {"Content-Type": "application/x-ndjson", "X-Request-Id": request[REQUEST_ID]}
        if first_ms is not None:
            headers["X-Dcslog-First-Ms"] = str(first_ms)
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        reported = 0

        def batch() -> tuple[bytes, bool]:
            nonlocal reported
            lines = []
            for item in items:
                if isinstance(item, Checkpoint):
                    lines.append({"checkpoint": list(item.key), "scanned": scan.scanned - reported})
                    reported = scan.scanned
                else:
                    lines.append(record_to_wire(item))
                if len(lines) >= _BATCH:
                    return b"".join(json.dumps(line).encode() + b"\n" for line in lines), False
            lines.append({"end": True, "scanned": scan.scanned - reported})
            return b"".join(json.dumps(line).encode() + b"\n" for line in lines), True

        done = False
        while not done:
            chunk, done = await asyncio.to_thread(batch)
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        stack.close()


def create_agent_app(key: str, allowed_dirs: list[str], allowed_units: list[str] | None = None) -> web.Application:
    if not key:
        raise ValueError("the agent needs a key (--key or DCSLOG_AGENT_KEY)")
    app = web.Application(middlewares=[dcs_envelope])
    app[AGENT_KEY] = key
    app[ALLOWED_DIRS] = tuple(Path(os.path.realpath(d)) for d in allowed_dirs)
    app[ALLOWED_UNITS] = tuple(allowed_units or ())
    app.router.add_get("/v1/runlog/day", runlog_day)
    app.router.add_get("/v1/runlog/records", runlog_records)
    return app


def run_agent(host: str, port: int, key: str, allowed_dirs: list[str], tls_cert: str | None = None,
              tls_key: str | None = None, allowed_units: list[str] | None = None) -> None:
    context = None
    if tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_cert, tls_key)
    run_app(create_agent_app(key, allowed_dirs, allowed_units), host=host, port=port, ssl_context=context,
            ready=lambda: log.info("dcslog agent serving %s on %s:%s", ", ".join(allowed_dirs), host, port))
