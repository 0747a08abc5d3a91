"""Run logs as records (SPEC §6, dcslog extensions): search every node of an instance, or one collected file.

One query, two answers: a page of JSON (``records``, ``next_cursor``,
``scanned_bytes``, ``sources``), or, with ``Accept: application/x-ndjson``, every
matching record streamed one JSON object a line, without paging (what each node
could be read from is then in the ``X-Dcslog-Sources`` header).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.api.context import Context
from dcslog.api.ndjson import NDJSON, NdjsonStream
from dcslog.api.operations import Header, Reply, operation
from dcslog.api.params import choice, epoch_ms, integer, json_response, text
from dcslog.auth import check_standing
from dcslog.httpserver import REQUEST_ID, give_back_freed_memory
from dcslog.roles import Caller
from dcslog.runlog.grammar import LEVELS, ROLES
from dcslog.services import records, redislog
from dcslog.services.records import RecordQuery
from dcslog.state import SESSIONMAKER, STOPPING

NODE_IDS = re.compile(r"[0-9a-f-]{36}(,[0-9a-f-]{36}){0,127}")


def _keyword(raw: str) -> str:
    if len(raw) > 256 or "\n" in raw or "\r" in raw:
        raise ValueError(raw)
    return raw


START_TIME = epoch_ms("start_time", required=False, description="ms since the epoch; default end_time minus one hour")
END_TIME = epoch_ms("end_time", required=False, not_before="start_time",
                    description="ms since the epoch, excluded; default now (before start_time → 400 DCS.4025)")
NODES = text("replication_id", pattern=NODE_IDS, convert=lambda raw: raw.split(","),
             hint="replication_id must be replication ids (ListGroupReplicationInfo), comma-separated.",
             description="nodes, comma-separated (default: every node of the instance)")
KEYWORD = text("keyword", convert=_keyword, hint="keyword must be 1 to 256 characters on one line.",
               description="records whose message or continuation lines hold it")
CASE = choice("case", ("sensitive", "insensitive"), default="sensitive",
              description="insensitive: ASCII letters match without case")
LEVEL = choice("level", LEVELS, default="debug", description="the minimum level")
ROLE = choice("role", ROLES + ("any",), default="any", description="the role the entry was written in")
RECORD_LIMIT = integer("limit", 100, minimum=1, maximum=1000, description="records per page (default 100)")
CURSOR = text("cursor", convert=records.parse_cursor, schema_pattern="^" + records.CURSOR.pattern + "$",
              hint="cursor must be a next_cursor or a record id as this API gave it.",
              description="continue strictly after it: next_cursor, a record id, or SSE Last-Event-ID")
SORT_DIR = choice("sort_dir", ("asc", "desc"), default="asc")
FOLLOW = choice("follow", ("false", "true"), default="false",
                description="true: stream new records as Server-Sent Events (text/event-stream) as they are "
                            "written; from start_time (default now) or after cursor / Last-Event-ID, until "
                            "end_time if given, else until the client leaves")
FILE_ID = text("id", location="path", arg="file_id", description="the collected file's id")
PARAMS = [START_TIME, END_TIME, NODES, KEYWORD, CASE, LEVEL, ROLE, RECORD_LIMIT, CURSOR, SORT_DIR, FOLLOW]
QUERY_PARAMS = [START_TIME, END_TIME, KEYWORD, CASE, LEVEL, ROLE, RECORD_LIMIT, CURSOR, SORT_DIR]
ACCEPT = Header("Accept", f"{NDJSON}: every matching record, one JSON object a line, streamed without paging")
LAST_EVENT_ID = Header("Last-Event-ID", "with follow=true: continue after this record id (as cursor does)")
EVENT_STREAM = "text/event-stream"
log = logging.getLogger(__name__)
#: Seconds between two reads of the nodes while following, and between heartbeats when nothing comes.
FOLLOW_POLL = 0.25
HEARTBEAT = 15.0
CALLER_RECHECK = 1.0  # seconds between two looks at whether a follow's token or key still stands
FOLLOW_EVENTS = {"description": "Server-Sent Events: data is a Record (event record) or the sources (event sources)"}
EXPORT = {NDJSON: {"type": "string", "description": "one Record (JSON) a line"}}
ANSWER = {200: Reply("ListRecordsResponse", f"A page of records (with Accept: {NDJSON}, every record as NDJSON)",
                     also=EXPORT)}
ERRORS = ["DCS.4800", "DCS.4002", "DCS.4061", "DCS.4025"]


def _query(start_time: int | None, end_time: int | None, keyword: str | None, case: str, level: str, role: str,
           cursor: records.Cursor | None, sort_dir: str) -> RecordQuery:
    start, end = records.default_window(start_time, end_time, int(time.time() * 1000))
    if end < start:
        raise errors.InvalidTimeRange()
    return RecordQuery(start, end, keyword=keyword, insensitive=case == "insensitive",
                       level=None if level == "debug" else level, role=None if role == "any" else role,
                       descending=sort_dir == "desc", cursor=cursor)


@operation("GET", "/v2/{project_id}/instances/{instance_id}/redislog/records", role="viewer",
           tag="dcslog extensions", summary="Run-log records of the instance's nodes, merged in time order",
           params=PARAMS, headers=[ACCEPT, LAST_EVENT_ID], errors=ERRORS,
           ok={200: Reply("ListRecordsResponse", f"A page of records (with Accept: {NDJSON}, every record as "
                          f"NDJSON; with follow=true, {EVENT_STREAM}: an event per record, id its record id)",
                          also={**EXPORT, EVENT_STREAM: FOLLOW_EVENTS})})
async def list_redislog_records(ctx: Context, start_time: int | None, end_time: int | None,
                                replication_id: list[str] | None, keyword: str | None, case: str, level: str,
                                role: str, limit: int, cursor: records.Cursor | None,
                                sort_dir: str, follow: str) -> web.StreamResponse:
    if follow == "true":
        return await _follow(ctx, start_time, end_time, replication_id, keyword, case, level, role, cursor,
                             sort_dir)
    query = _query(start_time, end_time, keyword, case, level, role, cursor, sort_dir)

    async def plan(session: AsyncSession) -> list[records.NodePlan]:
        return await records.plan_nodes(session, ctx.instance, ctx.keyring, replication_id, query)
    return await _answer(ctx, plan, query, limit)


async def _follow(ctx: Context, start_time: int | None, end_time: int | None, replication_id: list[str] | None,
                  keyword: str | None, case: str, level: str, role: str, cursor: records.Cursor | None,
                  sort_dir: str) -> web.StreamResponse:
    """SSE: every record as it is written, from start_time (default now) or after the cursor
    (``cursor`` or ``Last-Event-ID``), until end_time or the client leaves. Nothing runs on once
    the client has gone: the loop is this handler."""
    if sort_dir != "asc":
        raise errors.InvalidParameter("sort_dir", "follow=true reads forward: leave sort_dir out or make it asc.")
    last_event_id = ctx.request.headers.get("Last-Event-ID")
    if last_event_id:
        try:
            cursor = records.parse_cursor(last_event_id)
        except ValueError:
            raise errors.InvalidParameter("Last-Event-ID", "Last-Event-ID must be a record id this API sent.") \
                from None
    now = int(time.time() * 1000)
    start = start_time if start_time is not None else (cursor.time_ms if cursor else now)
    end = end_time if end_time is not None else records.MAX_MS
    if end < start:
        raise errors.InvalidTimeRange()
    query = RecordQuery(start, end, keyword=keyword, insensitive=case == "insensitive",
                        level=None if level == "debug" else level, role=None if role == "any" else role,
                        cursor=cursor)
    plans = await records.plan_nodes(ctx.session, ctx.instance, ctx.keyring, replication_id, query)
    await ctx.session.close()
    follower = records.Follower(plans, query, ctx.store, ctx.instance.timezone)
    request = ctx.request
    response = web.StreamResponse(headers={"Content-Type": f"{EVENT_STREAM};charset=UTF-8",
                                           "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                                           "X-Request-Id": request[REQUEST_ID]})
    await response.prepare(request)
    try:
        return await _send_follow(request, response, follower, end, ctx.caller)
    finally:
        give_back_freed_memory()  # what the polls freed (docs/design.md, "Memory")


async def _send_follow(request: web.Request, response: web.StreamResponse, follower: records.Follower, end: int,
                       caller: Caller) -> web.StreamResponse:
    sent_sources = None
    quiet_since = checked_at = time.monotonic()
    stopping = request.app[STOPPING]
    while True:
        if stopping.is_set():  # the server stops: the client follows on elsewhere (Last-Event-ID)
            with contextlib.suppress(ConnectionResetError, ConnectionError):
                await response.write_eof()
            return response
        if time.monotonic() - checked_at >= CALLER_RECHECK:
            # A revoked token or key ends its open streams too, within a second: the last event is
            # the error a new request would get.
            checked_at = time.monotonic()
            try:
                async with request.app[SESSIONMAKER]() as session:
                    await check_standing(session, caller)
            except errors.DcsError as refused:
                with contextlib.suppress(ConnectionResetError, ConnectionError):
                    await response.write(f"event: error\ndata: {json.dumps(refused.body())}\n\n".encode())
                    await response.write_eof()
                return response
            except Exception as exc:  # noqa: BLE001 - the database unreachable a moment: no revocation
                # could be committed meanwhile either; the stream goes on, and looks again next time.
                log.warning("follow: could not look at the caller's standing: %r", exc)
        now_ms = int(time.time() * 1000)
        found, sources = await asyncio.to_thread(follower.poll, now_ms, end if end < records.MAX_MS else None)
        events = []
        if sources != sent_sources:
            events.append(f"event: sources\ndata: {json.dumps(sources, separators=(',', ':'))}\n\n")
            sent_sources = sources
        for record in found:
            events.append(f"id: {record['id']}\nevent: record\ndata: {json.dumps(record, separators=(',', ':'))}\n\n")
        if not events and time.monotonic() - quiet_since >= HEARTBEAT:
            events.append(": heartbeat\n\n")
        try:
            if events:
                await response.write("".join(events).encode())
                quiet_since = time.monotonic()
            if now_ms >= end:
                await response.write_eof()
                return response
        except (ConnectionResetError, ConnectionError):
            return response  # the client left: nothing more to do
        if request.transport is None or request.transport.is_closing():
            return response
        if not follower.behind:  # a node that writes faster than a poll's limit is read on at once
            await asyncio.sleep(FOLLOW_POLL)


@operation("GET", "/v2/{project_id}/instances/{instance_id}/redislog/{id}/records", role="viewer",
           tag="dcslog extensions", summary="Records of one collected run-log file",
           params=[FILE_ID, *QUERY_PARAMS], headers=[ACCEPT], ok=ANSWER, errors=ERRORS)
async def list_redislog_file_records(ctx: Context, file_id: str, start_time: int | None, end_time: int | None,
                                     keyword: str | None, case: str, level: str, role: str, limit: int,
                                     cursor: records.Cursor | None, sort_dir: str) -> web.StreamResponse:
    row, object_key = await redislog.file_content(ctx.session, ctx.instance, file_id)
    if start_time is None and end_time is None:
        start_time, end_time = 0, records.MAX_MS  # a file's records: all of them unless asked otherwise
    query = _query(start_time, end_time, keyword, case, level, role, cursor, sort_dir)

    async def plan(session: AsyncSession) -> list[records.NodePlan]:
        nonlocal row, object_key
        if session is not ctx.session:  # planning again: the file's content as it is now
            row, object_key = await redislog.file_content(session, ctx.instance, file_id)
        return [await records.plan_file(session, ctx.instance, row, object_key)]
    return await _answer(ctx, plan, query, limit)


Planner = Callable[[AsyncSession], Awaitable[list[records.NodePlan]]]


async def _answer(ctx: Context, plan: Planner, query: RecordQuery, limit: int) -> web.StreamResponse:
    """A page, or the NDJSON export, of what ``plan`` says to read. The session is closed before the
    reading, which may take a while. A collected copy deleted after it was planned (a newer
    collection of its day replaced it; on S3 its reads come later, by ranged GETs) is planned
    again, once, in a session of its own: the answer reads the newer copy. A copy still missing
    then costs its day (``sources``), as it always did."""
    store, tz = ctx.store, ctx.instance.timezone

    async def read(plans: list[records.NodePlan]) -> web.StreamResponse:
        if NDJSON in ctx.request.headers.get("Accept", ""):
            return await _export(ctx.request, plans, query, store, tz)
        return json_response(await asyncio.to_thread(_read_page, plans, query, store, tz, limit))

    plans = await plan(ctx.session)
    await ctx.session.close()
    for node in plans:
        node.raise_if_gone = True  # the first time: a day found missing is planned again, below
    try:
        return await read(plans)
    except FileNotFoundError:
        async with ctx.request.app[SESSIONMAKER]() as session:
            plans = await plan(session)
    return await read(plans)


def _read_page(plans: list[records.NodePlan], query: RecordQuery, store: Any, tz: str, limit: int
               ) -> dict[str, Any]:
    try:
        return records.read_page(plans, query, store, tz, limit)
    finally:
        give_back_freed_memory()  # the scan's blocks (docs/design.md, "Memory")


async def _export(request: web.Request, plans: list[records.NodePlan], query: RecordQuery, store: Any,
                  tz: str) -> web.StreamResponse:
    with ExitStack() as stack:
        async with NdjsonStream() as stream:
            sources, items = await stream.call(records.export, plans, query, store, tz, stack)
            response = web.StreamResponse(headers={"Content-Type": f"{NDJSON};charset=UTF-8",
                                                   "X-Dcslog-Sources": json.dumps(sources, separators=(",", ":")),
                                                   "X-Request-Id": request[REQUEST_ID]})
            response.enable_chunked_encoding()
            await response.prepare(request)
            try:
                await stream.send(response, items)
            except FileNotFoundError as gone:  # too late to plan again (_answer): the headers are sent
                raise ConnectionAbortedError(f"a collected copy was replaced during the export: {gone}") from gone
            await response.write_eof()
            return response
