"""The cluster timeline (SPEC section 7) on the client side: reading every page of a window, and
printing an item a line as a terminal reads it::

    2026-12-06 07:03:57.901 127.0.0.4:6379 M runlog  * MASTER MODE enabled (user request from ...)
    2026-12-06 07:03:57.901 127.0.0.4:6379 - event   failover: became the master (was 127.0.0.2:6379)
    2026-12-06 07:03:58.000 127.0.0.2:6379 M slowlog SLOW 12.3 ms GET user:42

(time in the instance's time zone, node, its role's letter as Redis writes it — ``-`` when the
item does not tell —, kind, what happened). A run-log record's continuation lines follow it,
indented.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dcslog.client.api import RECORDS_PAGE_MAX, ApiError, DcsApi
from dcslog.client.records import (
    CONTINUATION_INDENT,
    LEVEL_MARKS,
    ROLE_LETTERS,
    RecordPrinter,
    Sources,
    printable,
    record_time,
)

KINDS = ("event", "runlog", "slowlog")
KIND_WIDTH = max(map(len, KINDS))
COMMAND_WIDTH = 200  # a slow command's arguments beyond this are cut (…): --json has them whole
_BOLD, _RED, _DIM, _RESET = "\x1b[1m", "\x1b[1;31m", "\x1b[2m", "\x1b[0m"


class TimelineReader:
    """One instance's timeline queries, page after page by ``next_cursor``; the ``sources`` of
    every answer are gathered in ``sources``."""

    def __init__(self, api: DcsApi, instance_id: str) -> None:
        self.api, self.instance_id = api, instance_id
        self.sources = Sources()
        self.more = False  # the last read stopped at its limit with items left unread

    def items(self, query: dict[str, Any], limit: int) -> Iterator[dict]:
        """The items of the query's window in order, up to ``limit`` (0: all)."""
        got, cursor = 0, query.get("cursor")
        self.more = False
        while True:
            size = RECORDS_PAGE_MAX if limit == 0 else min(RECORDS_PAGE_MAX, limit - got)
            page = self.api.list_timeline(self.instance_id, {**query, "limit": size, "cursor": cursor})
            self.sources.add(page.get("sources"))
            items, following = page["items"], page.get("next_cursor")
            for i, item in enumerate(items):
                yield item
                got += 1
                if limit and got >= limit:
                    self.more = i + 1 < len(items) or bool(following)
                    return
            if not following:
                return
            if following == cursor and not items:
                # The endpoint's promise is that a page moves on; one that does not would be asked forever.
                raise ApiError(200, None, f"the endpoint answered a timeline page that does not move on "
                                          f"(next_cursor {following!r} again)")
            cursor = following


def what(item: dict) -> str:
    """What happened, in one line: the log line, ``SLOW 12.3 ms GET key…``, or the event and its message."""
    kind = item.get("kind")
    if kind == "runlog":
        record = item.get("record") or {}
        return f"{LEVEL_MARKS.get(str(record.get('level')), '?')} {record.get('message') or ''}"
    if kind == "slowlog":
        entry = item.get("slowlog") or {}
        command = str(entry.get("command") or "")
        if len(command) > COMMAND_WIDTH:
            command = command[:COMMAND_WIDTH - 1] + "…"
        return f"SLOW {entry.get('duration')} ms {command}"
    event = item.get("event") or {}
    message = (event.get("details") or {}).get("message")
    return f"{event.get('type')}: {message}" if message else str(event.get("type"))


class TimelinePrinter(RecordPrinter):
    """Prints timeline items on ``out``: one line each (a record's continuation lines below it), or
    (``json_lines``) one JSON object a line, as the endpoint sent them."""

    def lines(self, record: dict) -> list[str]:
        item = record
        head = " ".join((record_time(item), self.node(item).ljust(self.width),
                         ROLE_LETTERS.get(str(item.get("role")), "-"), str(item.get("kind")).ljust(KIND_WIDTH),
                         printable(what(item))))
        lines = [head.rstrip(" ")]
        if item.get("kind") == "runlog":
            lines += [CONTINUATION_INDENT + printable(str(line)) for line in (item.get("record") or {}).get("lines")
                      or []]
        style = self._style(item) if self.colour else None
        return [f"{style}{line}{_RESET}" for line in lines] if style else lines

    @staticmethod
    def _style(item: dict) -> str | None:
        """Events stand out; a run-log warning is red, its debug and verbose lines dim (as ``logs search``)."""
        if item.get("kind") == "event":
            return _BOLD
        if item.get("kind") == "runlog":
            level = (item.get("record") or {}).get("level")
            return _RED if level == "warning" else _DIM if level in ("debug", "verbose") else None
        return None
