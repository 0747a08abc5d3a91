"""Run logs as records (SPEC section 6) on the client side: reading a query's pages, following, printing.

* :class:`RecordReader` reads a records query: page after page until it has
  what it needs or ``next_cursor`` is null (a page may hold fewer records
  than asked, none even, while more follow), or as the endpoint's NDJSON
  stream; it gathers the ``sources`` of every answer in :class:`Sources`.
* :func:`follow` reads the endpoint's follow (Server-Sent Events) and makes it
  again, after the last record read, when the connection is lost.
* :class:`RecordPrinter` prints a record as the log reads:
  ``2026-11-26 14:03:07.123 10.0.0.1:6379 M # message``, continuation lines
  indented below, coloured by level on a terminal; or, with ``--json``, as
  the endpoint sent it, one JSON object a line.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from dcslog.client.api import RECORDS_PAGE_MAX, ApiError, DcsApi, EndpointUnreachable
from dcslog.command import CommandFailed, node_address

# Redis's own letters for a role and marks for a level, as its log writes them.
ROLE_LETTERS = {"master": "M", "slave": "S", "child": "C", "sentinel": "X"}
LEVEL_MARKS = {"debug": ".", "verbose": "-", "notice": "*", "warning": "#"}
LEVELS = tuple(LEVEL_MARKS)
ROLES = tuple(ROLE_LETTERS)
CONTINUATION_INDENT = "    "
_LEVEL_STYLES = {"warning": "\x1b[1;31m", "verbose": "\x1b[2m", "debug": "\x1b[2m"}  # bold red; dim
_RESET = "\x1b[0m"
# A log line holds whatever a client sent Redis: no control character reaches the terminal as is.
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# Seconds before each try to follow again, the last repeated: soon after a blip, gently while the endpoint is down.
RECONNECT_WAITS = (0.2, 0.5, 1.0, 2.0, 5.0)


# -- reading --------------------------------------------------------------------------------------

class Sources:
    """What the answers said about each node's sources: ``unread``, the nodes not read (with the
    first reason given for each), so a partial answer says it is partial; and, for a follower,
    the changes not yet reported (:meth:`news`)."""

    def __init__(self) -> None:
        self.unread: dict[str, dict] = {}  # replication_id → its first source with read=false
        self._failing: dict[str, str | None] = {}  # replication_id → its error, while it stays unread
        self._news: list[dict] = []

    def add(self, sources: Iterable[dict] | None) -> None:
        """Take an answer's ``sources``."""
        for source in sources or []:
            key = str(source.get("replication_id") or source.get("replication_ip"))
            if source.get("read", True):
                self._failing.pop(key, None)
                continue
            self.unread.setdefault(key, source)
            if key not in self._failing or self._failing[key] != source.get("error"):
                self._news.append(source)
            self._failing[key] = source.get("error")

    def news(self) -> list[dict]:
        """The sources that became unread (or unread for another reason) since the last call."""
        news, self._news = self._news, []
        return news


class RecordReader:
    """One instance's records queries. ``query`` holds the endpoint's parameters (``start_time``,
    ``end_time``, ``replication_id``, ``keyword``, ``case``, ``level``, ``role``, ``sort_dir``,
    ``cursor``; None values are left out)."""

    def __init__(self, api: DcsApi, instance_id: str, sources: Sources | None = None) -> None:
        self.api, self.instance_id = api, instance_id
        self.sources = sources or Sources()
        self.more = False  # the last read stopped at its limit with records left unread

    def pages(self, query: dict[str, Any], limit: int) -> Iterator[dict]:
        """The records in the query's order, up to ``limit`` (0: all), page after page."""
        got, cursor = 0, query.get("cursor")
        self.more = False
        while True:
            size = RECORDS_PAGE_MAX if limit == 0 else min(RECORDS_PAGE_MAX, limit - got)
            page = self.api.list_redislog_records(self.instance_id, {**query, "limit": size, "cursor": cursor})
            self.sources.add(page.get("sources"))
            records = page["records"]
            following = page.get("next_cursor")
            for i, record in enumerate(records):
                yield record
                got += 1
                if limit and got >= limit:
                    self.more = i + 1 < len(records) or bool(following)
                    return
            if not following:
                return
            if following == cursor and not records:
                # The endpoint's promise is that a page moves on; one that does not would be asked forever.
                raise ApiError(200, None, "the endpoint answered a records page that does not move on "
                                          f"(next_cursor {following!r} again)")
            cursor = following

    def stream(self, query: dict[str, Any]) -> Iterator[dict]:
        """Every record of the query, from the endpoint's NDJSON stream (one request, no paging)."""
        self.more = False
        with self.api.stream_redislog_records(self.instance_id, query) as (sources, records):
            self.sources.add(sources)
            yield from records

    def last(self, query: dict[str, Any], n: int) -> list[dict]:
        """The last ``n`` records of the query's window, oldest first (newest-first pages, reversed)."""
        if n <= 0:
            return []
        records = list(self.pages({**query, "sort_dir": "desc"}, n))
        records.reverse()
        return records


def follow(api: DcsApi, instance_id: str, query: dict[str, Any], start_ms: int | None, after: str | None, *,
           on_sources: Callable[[list[dict]], None], on_break: Callable[[CommandFailed], None]) -> Iterator[dict]:
    """The records of the endpoint's follow (SSE) of ``query``, strictly after the record id
    ``after``, or (without one) from ``start_ms``: each once, in the order sent, until Ctrl-C.

    A connection that breaks off, or that the endpoint ends (an API process restarting), is made
    again after a short wait (:data:`RECONNECT_WAITS`), with ``Last-Event-ID`` the last record
    yielded: the endpoint goes on strictly after it, so nothing is lost or repeated. Each connection
    is signed afresh (an AK/SK signature is valid for minutes, a follow for days). ``on_break`` hears
    of a connection lost, once until one is made again; a 502/503/504 (a proxy before an API process
    that is restarting) or no answer at all is tried again, any other error answer, or the
    ``event: error`` that ends a revoked caller's stream, is raised (ApiError)."""
    attempt, told = 0, False
    while True:
        params = {**query, "start_time": None if after else start_ms}
        try:
            with api.follow_redislog_records(instance_id, params, after) as events:
                for event, data in events:
                    attempt, told = 0, False  # followed again (the stream opens with its sources)
                    if event == "record":
                        after = str(data["id"])
                        yield data
                    elif event == "sources":
                        on_sources(data)
            lost: CommandFailed = EndpointUnreachable("the endpoint ended the follow")
        except EndpointUnreachable as exc:
            lost = exc
        except ApiError as exc:
            if exc.status not in (502, 503, 504):
                raise
            lost = exc
        if not told:
            on_break(lost)
            told = True
        time.sleep(RECONNECT_WAITS[min(attempt, len(RECONNECT_WAITS) - 1)])
        attempt += 1


# -- printing -------------------------------------------------------------------------------------

def wants_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and not when NO_COLOR (https://no-color.org) is set or TERM is dumb."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def record_time(record: dict) -> str:
    """``2026-11-26 14:03:07.123``: the record's ``time`` as the endpoint gave it (the instance's
    time zone, as the log itself reads), without its offset; from ``time_ms`` in UTC without one."""
    try:
        moment = datetime.fromisoformat(str(record["time"]))
    except (KeyError, ValueError):
        moment = datetime.fromtimestamp(int(record["time_ms"]) / 1000, UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}"


def printable(text: str) -> str:
    """``text`` with control characters (but the tab) shown as ``\\xNN``."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def node_labels(nodes: Iterable[dict]) -> dict[str, str]:
    """replication_id → ``IP:PORT``, from ListGroupReplicationInfo's nodes (a record names its node
    by id and IP; the port comes from there)."""
    return {str(n["replication_id"]): node_address(n) for n in nodes if n.get("replication_id")}


class RecordPrinter:
    """Prints records on ``out``: as the log reads, or (``json``) one JSON object a line."""

    def __init__(self, labels: dict[str, str], *, json_lines: bool = False, colour: bool = False,
                 out: TextIO | None = None) -> None:
        self.labels, self.json_lines, self.colour = labels, json_lines, colour
        self.out = out or sys.stdout
        self.width = max((len(label) for label in labels.values()), default=0)
        self.count = 0

    def node(self, record: dict) -> str:
        return self.labels.get(str(record.get("replication_id"))) or node_address(record)

    def lines(self, record: dict) -> list[str]:
        """The lines of one record: its head and its continuation lines, indented."""
        level = str(record.get("level"))
        head = " ".join((record_time(record), self.node(record).ljust(self.width),
                         ROLE_LETTERS.get(str(record.get("role")), "?"), LEVEL_MARKS.get(level, "?"),
                         printable(str(record.get("message") or ""))))
        lines = [head.rstrip(" ")] + [CONTINUATION_INDENT + printable(str(line)) for line in record.get("lines") or []]
        style = _LEVEL_STYLES.get(level) if self.colour else None
        return [f"{style}{line}{_RESET}" for line in lines] if style else lines

    def print(self, records: Iterable[dict]) -> int:
        """Print ``records`` as they come; returns how many."""
        n = 0
        for record in records:
            if self.json_lines:
                self.out.write(json.dumps(record, separators=(",", ":")) + "\n")
            else:
                self.out.write("\n".join(self.lines(record)) + "\n")
            n += 1
        self.count += n
        return n

    def flush(self) -> None:
        self.out.flush()

    def unread_warning(self, source: dict) -> str:
        return f"warning: {self.node(source)} not read: {source.get('error') or 'no reason given'}"
