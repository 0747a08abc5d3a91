"""The cluster timeline (SPEC §7): run-log records, slow-log entries and events of an instance's nodes,
merged in one order, paged by cursor.

**Order** (total: no two items share a position): ``time_ms``, then the kind — ``event``,
``runlog``, ``slowlog`` — then the kind's own order:

* an event: its node's replication id, its ``seq`` (the order of one change's events), its id;
* a run-log record: its node's replication id, its place in the node's log (``seq``) — the
  records endpoint's own order;
* a slow-log entry: its node's replication id, its stored id (the harvester stores a node's
  entries in the order the node ran them, across restarts too, where Redis's own ids start again).

**Cursor**: the position of the last item a page *examined*, encoded (opaque to clients). Examined
includes run-log entries the level filter turned away (the records' checkpoints), so a page that
read much and returned little still moves on. The next page starts strictly after it in every
kind at once: the kinds' own keys continue after the position's when it is of their kind, and at
the position's millisecond (kinds after it) or the one after (kinds before it) otherwise.

Reading: the stored kinds (events, slow log) are read from the database first, at most ``limit``
rows each from the cursor on (a page holds at most ``limit`` items, and every row is one, so a
page never needs a row after those); then the run-log records are read in a thread, as the records
endpoint reads them (``services/records.py``: live logs, agents, collected days), and the three
are merged.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from dcslog.db import queries
from dcslog.db.models import Event, Instance, Replication
from dcslog.keys import Keyring
from dcslog.runlog.records import Record
from dcslog.services import records
from dcslog.services.events import event_item, local_time
from dcslog.services.records import Merge, NodePlan, RecordQuery
from dcslog.services.slowlog_query import slowlog_item
from dcslog.storage import ObjectStore

#: The kinds, in their order within one millisecond.
KINDS = ("event", "runlog", "slowlog")
EVENT, RUNLOG, SLOWLOG = range(3)
ID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
MS = "[0-9]{1,15}"
# A cursor's text before its encoding, one form per kind: e.{time}.{node}.{seq}.{event id},
# r.{time}.{node}.{seq}, s.{time}.{node}.{entry id}.
_CURSOR_FORMS = {
    "e": re.compile(rf"e\.({MS})\.({ID})\.([0-9]{{1,9}})\.({ID})"),
    "r": re.compile(rf"r\.({MS})\.({ID})\.(-1|[0-9]{{1,10}})"),
    "s": re.compile(rf"s\.({MS})\.({ID})\.([0-9]{{1,19}})"),
}


@dataclass(frozen=True, order=True)
class Position:
    """Where an item sits in the timeline. ``key`` is the kind's own order: (node, seq, event id)
    for an event, (node, seq) for a record, (node, entry id) for a slow-log entry."""

    time_ms: int
    kind: int
    key: tuple[Any, ...]

    def encode(self) -> str:
        if self.kind == EVENT:
            text = "e.{}.{}.{}.{}".format(self.time_ms, *self.key)
        elif self.kind == RUNLOG:
            text = "r.{}.{}.{}".format(self.time_ms, *self.key)
        else:
            text = "s.{}.{}.{}".format(self.time_ms, *self.key)
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def parse_cursor(raw: str) -> Position:
    """A cursor as ``Position.encode`` wrote it; ValueError when it is not one."""
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(raw) from None
    form = _CURSOR_FORMS.get(text[:1])
    match = form.fullmatch(text) if form is not None else None
    if match is None:
        raise ValueError(raw)
    time_ms = int(match[1])
    if text[0] == "e":
        return Position(time_ms, EVENT, (match[2], int(match[3]), match[4]))
    if text[0] == "r":
        return Position(time_ms, RUNLOG, (match[2], int(match[3])))
    return Position(time_ms, SLOWLOG, (match[2], int(match[3])))


@dataclass
class TimelineQuery:
    start_ms: int
    end_ms: int  # excluded
    kinds: frozenset[str] = frozenset(KINDS)
    replication_ids: list[str] | None = None  # None: every node
    level: str | None = None  # the minimum level of run-log records (None: all)
    cursor: Position | None = None

    def start_for(self, kind: int) -> int:
        """Where ``kind`` starts: the window's start, or the cursor's millisecond when that is
        later — the one after it when the cursor's kind comes after ``kind`` in a millisecond
        (every item of ``kind`` at the cursor's millisecond came before the cursor)."""
        c = self.cursor
        if c is None:
            return self.start_ms
        return max(self.start_ms, c.time_ms + 1 if c.kind > kind else c.time_ms)


@dataclass
class TimelinePlan:
    """What a page reads: the stored rows (from the cursor on) and the run-log nodes to read."""

    tz: str
    limit: int
    nodes: dict[str, Replication]
    events: list[Event] = field(default_factory=list)
    slowlog: list[tuple[Any, ...]] = field(default_factory=list)
    more_stored: bool = False  # a stored kind filled its ``limit`` rows: it may have more after them
    record_plans: list[NodePlan] = field(default_factory=list)
    record_query: RecordQuery | None = None


async def plan(session: AsyncSession, instance: Instance, keyring: Keyring, query: TimelineQuery,
               limit: int) -> TimelinePlan:
    """Everything a page needs from the database (an unknown ``replication_id`` is DCS.4800, as
    the records endpoint answers); the caller may close the session before ``read_page``."""
    c = query.cursor
    # The window may be empty here (a cursor at its very end): the nodes are still opened, so that
    # every page says how each could be read.
    record_query = RecordQuery(min(query.start_for(RUNLOG), query.end_ms), query.end_ms, level=query.level)
    if c is not None and c.kind == RUNLOG:
        replication_id, seq = c.key
        record_query.cursor = records.Cursor(c.time_ms, seq, replication_id)
    # The records' own planning checks the node ids and finds each node's log and collected days.
    record_plans = await records.plan_nodes(session, instance, keyring, query.replication_ids, record_query)
    out = TimelinePlan(instance.timezone, limit, {p.replication.id: p.replication for p in record_plans})
    if "runlog" in query.kinds:
        out.record_plans, out.record_query = record_plans, record_query
    if "event" in query.kinds:
        after_event = (c.time_ms, *c.key) if c is not None and c.kind == EVENT else None
        out.events = await queries.timeline_events(
            session, instance.id, start_ms=query.start_for(EVENT), end_ms=query.end_ms, after=after_event,
            replication_ids=query.replication_ids, limit=limit)
    if "slowlog" in query.kinds:
        after_entry = (c.time_ms, *c.key) if c is not None and c.kind == SLOWLOG else None
        out.slowlog = await queries.timeline_slowlog(
            session, instance.id, start_ms=query.start_for(SLOWLOG), end_ms=query.end_ms, after=after_entry,
            replication_ids=query.replication_ids, limit=limit)
    out.more_stored = len(out.events) >= limit or len(out.slowlog) >= limit
    return out


#: Where each kind's own object goes in its item.
BODY = {"event": "event", "runlog": "record", "slowlog": "slowlog"}


def _item(kind: str, position: Position, zone: ZoneInfo, body: dict[str, Any], *, replication_id: str,
          replication_ip: str, replication_port: int, group_name: str | None, role: str | None) -> dict[str, Any]:
    return {"kind": kind, "time": local_time(position.time_ms, zone), "time_ms": position.time_ms,
            "replication_id": replication_id, "replication_ip": replication_ip, "replication_port": replication_port,
            "group_name": group_name, "role": role, "cursor": position.encode(), BODY[kind]: body}


def _events(plan: TimelinePlan, zone: ZoneInfo) -> Iterator[tuple[Position, dict[str, Any] | None]]:
    for event in plan.events:
        position = Position(event.time_ms, EVENT, (event.replication_id, event.seq, event.id))
        # No role: an event is about the node, whatever its role (a role_change's details say both).
        yield position, _item("event", position, zone, event_item(event, zone), replication_id=event.replication_id,
                              replication_ip=event.replication_ip, replication_port=event.replication_port,
                              group_name=event.group_name, role=None)


def _slowlog(plan: TimelinePlan, zone: ZoneInfo) -> Iterator[tuple[Position, dict[str, Any] | None]]:
    for row in plan.slowlog:
        entry = slowlog_item(row)
        start_time_ms = row[2]  # PAGE_COLUMNS' third: the item itself has it in whole seconds, as DCS writes it
        position = Position(start_time_ms, SLOWLOG, (entry["replication_id"], entry["id"]))
        node = plan.nodes.get(entry["replication_id"])  # None: the node has left the instance since
        yield position, _item("slowlog", position, zone, entry, replication_id=entry["replication_id"],
                              replication_ip=entry["node_ip"], replication_port=entry["node_port"],
                              group_name=node.group_name if node else entry["shard_name"],
                              role=entry["node_role"])


def _records(merge: Merge, zone: ZoneInfo) -> Iterator[tuple[Position, dict[str, Any] | None]]:
    """The run-log records, and the checkpoints of entries the filters turned away (as None: examined,
    not shown)."""
    for item, stream in merge:
        node = stream.plan.replication
        if isinstance(item, Record):
            position = Position(item.time_ms, RUNLOG, (node.id, item.seq))
            yield position, _item("runlog", position, zone, records.record_dict(item, node, zone),
                                  replication_id=node.id, replication_ip=node.host, replication_port=node.port,
                                  group_name=node.group_name, role=item.role)
        else:
            time_ms, seq = item.key
            yield Position(time_ms, RUNLOG, (node.id, seq)), None


class KWayMerge:
    """Sorted iterators of (position, payload) merged into one, by position. ``exhausted`` once every
    iterator has run dry (``heapq.merge`` cannot say that)."""

    def __init__(self, sources: list[Iterator[tuple[Position, Any]]]):
        self._sources = sources
        self._heap: list[tuple[Position, int, Any]] = []
        for index in range(len(sources)):
            self._push(index)

    def _push(self, index: int) -> None:
        head = next(self._sources[index], None)
        if head is not None:
            # (position, index) is unique in the heap (one head per source): payloads are never compared.
            heapq.heappush(self._heap, (head[0], index, head[1]))

    @property
    def exhausted(self) -> bool:
        return not self._heap

    def __iter__(self) -> Iterator[tuple[Position, Any]]:
        while self._heap:
            position, index, payload = heapq.heappop(self._heap)
            self._push(index)
            yield position, payload


def read_page(plan: TimelinePlan, store: ObjectStore, budget: int | None = None) -> dict[str, Any]:
    """One page: ``{items, next_cursor, sources}`` (blocking: run it in a thread). A page stops at
    ``limit`` items or once the run logs read ``budget`` bytes (default: the records' page budget);
    ``next_cursor`` is None once every kind is read to the end of the window."""
    budget = records.PAGE_BUDGET if budget is None else budget
    zone = ZoneInfo(plan.tz)
    items: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    with ExitStack() as stack:
        merge = None
        streams: list[Iterator[tuple[Position, Any]]] = [_events(plan, zone), _slowlog(plan, zone)]
        if plan.record_query is not None:
            merge = Merge(plan.record_plans, plan.record_query, store, plan.tz, stack)
            streams.append(_records(merge, zone))
        timeline = KWayMerge(streams)
        last: Position | None = None  # the last item examined
        for position, item in timeline:
            last = position
            if item is not None:
                items.append(item)
            if len(items) >= plan.limit or (merge is not None and merge.scanned >= budget):
                break
        if merge is not None:
            sources = [s.sources.as_dict() for s in merge.streams]
    done = timeline.exhausted and not plan.more_stored
    return {"items": items, "next_cursor": None if done or last is None else last.encode(), "sources": sources}
