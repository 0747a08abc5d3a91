"""Run logs as records (SPEC §6, dcslog extensions): search every node of an instance, or one collected file.

One query, two answers: a page of JSON (``records``, ``next_cursor``,
``scanned_bytes``, ``sources``), or, with ``Accept: application/x-ndjson``, every
matching record streamed one JSON object a line, without paging (what each node
could be read from is then in the ``X-Dcslog-Sources`` header).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from contextlib import ExitStack
from typing import Any

from aiohttp import web

from dcslog import errors
from dcslog.api.context import Context
from dcslog.api.operations import Header, Reply, operation
from dcslog.api.params import choice, integer, json_response, text
from dcslog.runlog.grammar import LEVELS, ROLES
from dcslog.services import records, redislog
from dcslog.services.records import RecordQuery

NDJSON = "application/x-ndjson"
EPOCH_MS = re.compile(r"[0-9]{1,15}")
NODE_IDS = re.compile(r"[0-9a-f-]{36}(,[0-9a-f-]{36}){0,127}")
#: Records sent per hop from the reading thread to the response.
EXPORT_BATCH = 256


def _keyword(raw: str) -> str:
    if len(raw) > 256 or "\n" in raw or "\r" in raw:
        raise ValueError(raw)
    return raw


START_TIME = text("start_time", pattern=EPOCH_MS, convert=int,
                  hint="start_time must be milliseconds since the epoch (UTC), e.g. 1764576000000.",
                  description="ms since the epoch; default end_time minus one hour")
END_TIME = text("end_time", pattern=EPOCH_MS, convert=int, not_before="start_time",
                hint="end_time must be milliseconds since the epoch (UTC), e.g. 1764579600000.",
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
FILE_ID = text("id", location="path", arg="file_id", description="the collected file's id")
PARAMS = [START_TIME, END_TIME, NODES, KEYWORD, CASE, LEVEL, ROLE, RECORD_LIMIT, CURSOR, SORT_DIR]
QUERY_PARAMS = [START_TIME, END_TIME, KEYWORD, CASE, LEVEL, ROLE, RECORD_LIMIT, CURSOR, SORT_DIR]
ACCEPT = Header("Accept", f"{NDJSON}: every matching record, one JSON object a line, streamed without paging")
ANSWER = {200: Reply("ListRecordsResponse", f"A page of records (with Accept: {NDJSON}, every record as NDJSON)")}
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
           params=PARAMS, headers=[ACCEPT], ok=ANSWER, errors=ERRORS)
async def list_redislog_records(ctx: Context, start_time: int | None, end_time: int | None,
                                replication_id: list[str] | None, keyword: str | None, case: str, level: str,
                                role: str, limit: int, cursor: records.Cursor | None,
                                sort_dir: str) -> web.StreamResponse:
    query = _query(start_time, end_time, keyword, case, level, role, cursor, sort_dir)
    plans = await records.plan_nodes(ctx.session, ctx.instance, ctx.keyring, replication_id, query)
    await ctx.session.close()  # the reading may take a while: hold no connection meanwhile
    return await _answer(ctx, plans, query, limit)


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
    plan = await records.plan_file(ctx.session, ctx.instance, row, object_key)
    await ctx.session.close()
    return await _answer(ctx, [plan], query, limit)


async def _answer(ctx: Context, plans: list[records.NodePlan], query: RecordQuery, limit: int) -> web.StreamResponse:
    store, tz = ctx.store, ctx.instance.timezone
    if NDJSON in ctx.request.headers.get("Accept", ""):
        return await _export(ctx.request, plans, query, store, tz)
    page = await asyncio.to_thread(records.read_page, plans, query, store, tz, limit)
    return json_response(page)


async def _export(request: web.Request, plans: list[records.NodePlan], query: RecordQuery, store: Any,
                  tz: str) -> web.StreamResponse:
    stack = ExitStack()
    try:
        sources, items = await asyncio.to_thread(records.export, plans, query, store, tz, stack)
        response = web.StreamResponse(headers={"Content-Type": f"{NDJSON};charset=UTF-8",
                                               "X-Dcslog-Sources": json.dumps(sources, separators=(",", ":"))})
        response.enable_chunked_encoding()
        await response.prepare(request)

        def batch() -> bytes:
            lines = []
            for item in items:
                lines.append(json.dumps(item, separators=(",", ":")).encode())
                if len(lines) >= EXPORT_BATCH:
                    break
            return b"\n".join(lines) + b"\n" if lines else b""

        while chunk := await asyncio.to_thread(batch):
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        stack.close()
