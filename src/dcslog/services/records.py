"""Run logs as records (SPEC §6): the entries of every chosen node of an instance, merged in time order.

Each node's records come from what its host holds now (the live log and its
rotated copies, read here or by the node's ``dcslog agent``, which filters
where the data is) and from the days dcslog has collected. An entry is taken
from the host when the host still has it: collected days serve only what lies
before the host's first entry, so no entry comes twice.

Order: time, then node (replication id), then the entry's place in its node's
log (``seq``). A record's id, ``{time_ms}_{seq}_{replication_id}``, names the
entry for good; a cursor is the id of the last entry a page *examined* (which
may be one the filters turned away), and the next page continues strictly
after it. A page stops at ``limit`` records or once it has read ``budget``
bytes, whichever comes first, so a window too large for one request is paged.

All reading happens in a thread (files, S3 ranges, agents' streams); the event
loop only sees the finished page, or batches of an export.
"""

from __future__ import annotations

import heapq
import json
import logging
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.agent.client import AgentError, stream_records
from dcslog.db import queries
from dcslog.db.models import Instance, LogFile, Replication
from dcslog.keys import Keyring
from dcslog.redis.addresses import node_entry
from dcslog.runlog import journal
from dcslog.runlog.grammar import Clock
from dcslog.runlog.records import Checkpoint, Filters, Record, Scan, Segment, first_time, host_segments, scan_node
from dcslog.services.common import utcnow
from dcslog.storage import ObjectStore

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
MAX_MS = 10**15 - 1  # the largest time a query takes: year 33658
#: Bytes one page may read before it answers with what it has (and a cursor to go on).
PAGE_BUDGET = 256 << 20
CURSOR = re.compile(r"([0-9]{1,15})_(-1|[0-9]{1,9})_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
SEQ_MAX = 2**31  # above any seq: "after every entry of that millisecond"
Key = tuple[int, int]


@dataclass(frozen=True)
class Cursor:
    time_ms: int
    seq: int
    replication_id: str

    def __str__(self) -> str:
        return f"{self.time_ms}_{self.seq}_{self.replication_id}"


def parse_cursor(raw: str) -> Cursor:
    """A cursor or record id; ValueError when it is neither."""
    match = CURSOR.fullmatch(raw)
    if match is None:
        raise ValueError(raw)
    return Cursor(int(match[1]), int(match[2]), match[3])


@dataclass
class RecordQuery:
    start_ms: int
    end_ms: int
    keyword: str | None = None
    insensitive: bool = False
    level: str | None = None
    role: str | None = None
    descending: bool = False
    cursor: Cursor | None = None

    def filters(self) -> Filters:
        return Filters(self.keyword, self.insensitive, self.level, self.role)

    def filters_anything(self) -> bool:
        return bool(self.keyword or self.level or self.role)

    def after_for(self, replication_id: str) -> Key | None:
        """Where this node continues: the cursor's key, moved to the edge of its millisecond for
        nodes sorting before or after the cursor's (ties go by node, then by place)."""
        c = self.cursor
        if c is None:
            return None
        if replication_id == c.replication_id:
            return c.time_ms, c.seq
        # A node sorting before the cursor's: ascending, it has had all of that millisecond
        # (continue after it); descending, all of it is still to come (continue below its end).
        # A node sorting after: the other way round.
        if replication_id < c.replication_id:
            return c.time_ms, SEQ_MAX
        return c.time_ms, 0 if self.descending else -1


@dataclass
class NodePlan:
    """Where one node's records are: its host (file or agent) and its collected days."""

    replication: Replication
    log_file: str | None
    agent_url: str | None
    agent_key: str | None
    collected: list[tuple[str, str]] = field(default_factory=list)  # (day, object key), oldest first
    error: str | None = None  # why the host cannot be read, known before trying
    # A collected day's object found missing: skipped (its days cost, the answer goes on), or with
    # this, FileNotFoundError — for a caller that plans again, since a newer collection of the day
    # may have replaced it since the plan was made (api/records._answer).
    raise_if_gone: bool = False


@dataclass
class NodeSources:
    replication_id: str
    replication_ip: str
    live: str | None
    read: bool = False
    error: str | None = None
    collected_days: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"replication_id": self.replication_id, "replication_ip": self.replication_ip, "live": self.live,
                "read": self.read, "error": self.error, "collected_days": self.collected_days}


async def plan_nodes(session: AsyncSession, instance: Instance, keyring: Keyring, replication_ids: list[str] | None,
                     query: RecordQuery) -> list[NodePlan]:
    """The chosen nodes (every node of the instance by default; an unknown id is DCS.4800) and
    what each has to read for the query's window."""
    nodes = await queries.replications(session, instance.id)
    if replication_ids:
        known = {n.id: n for n in nodes}
        unknown = [rid for rid in replication_ids if rid not in known]
        if unknown:
            raise errors.InvalidParameter(
                "replication_id", f"{unknown[0]} is no node of this instance: see ListGroupReplicationInfo.")
        nodes = [known[rid] for rid in dict.fromkeys(replication_ids)]
    tz = ZoneInfo(instance.timezone)
    # (an open-ended follow's end is far in the future, past datetime's year 9999: no day after
    # tomorrow has been collected)
    soon = int(datetime.now(UTC).timestamp() * 1000) + 2 * 86_400_000
    # A day file may hold entries of the window when its day touches the window in the instance's zone.
    first_day = datetime.fromtimestamp(min(query.start_ms, soon) / 1000, tz).date()
    last_day = datetime.fromtimestamp(max(query.start_ms, min(query.end_ms - 1, soon)) / 1000, tz).date()
    collected = await queries.collected_days(session, instance.id, [n.id for n in nodes], first_day.isoformat(),
                                             last_day.isoformat(), utcnow())
    agents = json.loads(instance.agents)
    plans = []
    for node in nodes:
        agent_url = node_entry(agents, node.host, node.port)
        agent_key = None
        if agent_url and instance.agent_key_encrypted is not None:
            agent_key = keyring.decrypt(instance.agent_key_encrypted)
        plan = NodePlan(node, node.log_file, agent_url, agent_key, collected.get(node.id, []))
        if node.log_file is None:
            plan.error = f"no log file: {node.log_file_error or 'unknown'}"
        elif agent_url and agent_key is None:
            plan.error = "the instance names an agent for this node but holds no agent key"
        plans.append(plan)
    return plans


async def plan_file(session: AsyncSession, instance: Instance, row: LogFile, object_key: str) -> NodePlan:
    """One collected file as a node with nothing on its host: its records are the file's."""
    node = next((n for n in await queries.replications(session, instance.id) if n.id == row.replication_id), None)
    if node is None:  # the node left the instance; its files stay until retention ends
        node = Replication(id=row.replication_id, instance_id=instance.id, group_name=row.group_name,
                           host=row.replication_ip, port=0)
    return NodePlan(node, None, None, None, [(row.day, object_key)])


def default_window(start_ms: int | None, end_ms: int | None, now_ms: int) -> tuple[int, int]:
    """The window asked for; by default the hour before ``end_ms`` (or now)."""
    end = end_ms if end_ms is not None else (now_ms if start_ms is None or start_ms <= now_ms else start_ms + HOUR_MS)
    start = start_ms if start_ms is not None else end - HOUR_MS
    return start, end


class _NodeStream:
    """One node's records and checkpoints for a query, in the query's direction, and what it read."""

    def __init__(self, plan: NodePlan, query: RecordQuery, store: ObjectStore, tz: str, stack: ExitStack):
        self.plan, self.query, self.store, self.tz, self.stack = plan, query, store, tz, stack
        node = plan.replication
        self.replication_id = node.id
        live = "agent" if plan.agent_url else "file" if plan.log_file else None
        self.sources = NodeSources(node.id, node.host, live, error=plan.error)
        self.scans: list[Scan] = []
        self.remote_scanned = 0

    @property
    def scanned(self) -> int:
        return sum(s.scanned for s in self.scans) + self.remote_scanned

    def _scan(self, end_ms: int) -> Scan:
        q = self.query
        scan = Scan(q.start_ms, end_ms, after=q.after_for(self.replication_id), descending=q.descending,
                    filters=q.filters(), clock=Clock(ZoneInfo(self.tz)))
        self.scans.append(scan)
        return scan

    def open(self) -> Iterator[Record | Checkpoint]:
        """Open the host's sources (reading their first entry), then the stream."""
        q, plan = self.query, self.plan
        live: Iterator[Record | Checkpoint] = iter(())
        first_ms: int | None = None
        if plan.error is None and plan.log_file is not None:
            try:
                first_ms, live = self._open_live()
                self.sources.read = True
            except (AgentError, OSError, ValueError) as exc:
                self.sources.error = _reason(exc, plan.log_file)
        # Collected days serve what the host no longer holds: what lies before its first entry — and
        # that entry's millisecond too when they hold it, since the host's oldest file may begin in
        # the middle of a run of entries of one millisecond (a rename rotation inside a burst):
        # only the collected day has the whole run, and so the entries' places in it (their ids).
        collected: Iterator[Record | Checkpoint] = iter(())
        days = self._collected_segments() if plan.collected else {}
        segments = list(days.values())
        cutoff = q.end_ms if first_ms is None else min(q.end_ms, first_ms)
        if first_ms is not None:
            zone = ZoneInfo(self.tz)
            first_day = datetime.fromtimestamp(first_ms / 1000, UTC).astimezone(zone).date().isoformat()
            if first_day in days and _newest_ms([days[first_day]], self.tz) >= first_ms:
                cutoff = min(q.end_ms, first_ms + 1)
                live = _after_ms(live, first_ms)
        if segments and cutoff > q.start_ms:
            collected = scan_node(segments, self._scan(cutoff))
        if q.descending:
            return _chain(live, collected)
        return _chain(collected, live)

    def _open_live(self) -> tuple[int | None, Iterator[Record | Checkpoint]]:
        plan, q = self.plan, self.query
        assert plan.log_file is not None
        if plan.agent_url:
            assert plan.agent_key is not None
            first_ms, stream = stream_records(
                plan.agent_url, plan.agent_key, plan.log_file, tz=self.tz, start_ms=q.start_ms, end_ms=q.end_ms,
                after=q.after_for(self.replication_id), descending=q.descending, keyword=q.keyword,
                insensitive=q.insensitive, level=q.level, role=q.role, want_first=bool(plan.collected),
                on_scanned=self._count_remote)
            self.stack.callback(stream.close)
            return first_ms, stream
        in_journal = journal.parse(plan.log_file)
        if in_journal is not None:
            # Read from the journal at each request (``journal.scan_segments``).
            segments: list[Segment] = list(journal.scan_segments(
                in_journal, q.start_ms, q.end_ms, q.after_for(self.replication_id), q.descending, self.stack))
            first_ms = journal.first_ms(in_journal, Clock(ZoneInfo(self.tz))) if plan.collected else None
            return first_ms, scan_node(segments, self._scan(q.end_ms))
        segments = host_segments(plan.log_file, self.stack)
        # Only collected days need the host's first entry (it may sit in an old compressed copy).
        first_ms = first_time(segments, Clock(ZoneInfo(self.tz))) if plan.collected else None
        return first_ms, scan_node(segments, self._scan(q.end_ms))

    def _count_remote(self, n: int) -> None:
        self.remote_scanned += n

    def _collected_segments(self) -> dict[str, Segment]:
        """The collected days that could be opened, by day, oldest first."""
        segments: dict[str, Segment] = {}
        for day, key in self.plan.collected:
            try:
                segments[day] = self.store.open_segment(key, self.stack)
            except FileNotFoundError:
                if self.plan.raise_if_gone:
                    raise
                log.warning("collected file %s not found", key)
                continue
            except Exception as exc:  # noqa: BLE001 - a missing object costs its days, not the answer
                log.warning("collected file %s unreadable: %r", key, exc)
                continue
            self.sources.collected_days += 1
        return segments


def _newest_ms(segments: list[Segment], tz: str) -> int:
    """The time of the newest entry of ``segments`` (-1 when they hold none)."""
    for item in scan_node(segments, Scan(0, None, descending=True, clock=Clock(ZoneInfo(tz)))):
        if isinstance(item, Record):
            return item.time_ms
    return -1


def _after_ms(items: Iterator[Record | Checkpoint], ms: int) -> Iterator[Record | Checkpoint]:
    """``items`` without what lies at ``ms`` or before (the collected days serve those): records,
    and checkpoints too, whose keys count that millisecond's entries from another start."""
    for item in items:
        if (item.time_ms if isinstance(item, Record) else item.key[0]) > ms:
            yield item


def _chain(first: Iterator[Record | Checkpoint], second: Iterator[Record | Checkpoint]
           ) -> Iterator[Record | Checkpoint]:
    yield from first
    yield from second


def _reason(exc: BaseException, log_file: str | None) -> str:
    if isinstance(exc, (AgentError, journal.JournalError)):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"log file {log_file} (and rotated copies) not found on this machine"
    if isinstance(exc, PermissionError):
        return f"no permission to read log file {log_file}"
    if isinstance(exc, OSError):
        return f"cannot read log file {log_file}: {exc.strerror or exc}"
    return str(exc)


class Merge:
    """The records of several nodes in one order (time, node, place), stopping where told."""

    def __init__(self, plans: list[NodePlan], query: RecordQuery, store: ObjectStore, tz: str, stack: ExitStack):
        self.query = query
        self.streams = [_NodeStream(p, query, store, tz, stack) for p in plans]
        ranks = {rid: i for i, rid in enumerate(sorted(s.replication_id for s in self.streams))}
        sign = -1 if query.descending else 1
        self._heap: list[tuple[tuple[int, int, int], int, Record | Checkpoint]] = []
        self._iters: list[Iterator[Record | Checkpoint]] = []
        self._signs = sign, ranks
        for index, stream in enumerate(self.streams):
            self._iters.append(stream.open())
            self._push(index)
        self.last: Cursor | None = None  # the last entry examined

    def _push(self, index: int) -> None:
        item = next(self._iters[index], None)
        if item is None:
            return
        sign, ranks = self._signs
        t, seq = item.key if isinstance(item, Checkpoint) else (item.time_ms, item.seq)
        rank = ranks[self.streams[index].replication_id]
        heapq.heappush(self._heap, ((sign * t, sign * rank, sign * seq), index, item))

    @property
    def exhausted(self) -> bool:
        return not self._heap

    @property
    def scanned(self) -> int:
        return sum(s.scanned for s in self.streams)

    def __iter__(self) -> Iterator[tuple[Record | Checkpoint, _NodeStream]]:
        """Records and checkpoints in order; ``last`` is the last entry examined."""
        while self._heap:
            _, index, item = heapq.heappop(self._heap)
            stream = self.streams[index]
            t, seq = item.key if isinstance(item, Checkpoint) else (item.time_ms, item.seq)
            self.last = Cursor(t, seq, stream.replication_id)
            self._push(index)
            yield item, stream


def record_dict(record: Record, node: Replication, tz: ZoneInfo) -> dict[str, Any]:
    try:
        time = datetime.fromtimestamp(record.time_ms / 1000, UTC).astimezone(tz).isoformat(timespec="milliseconds")
    except (ValueError, OverflowError):  # an epoch-ms stamp past year 9999: time_ms says it all
        time = str(record.time_ms)
    return {"id": f"{record.time_ms}_{record.seq}_{node.id}", "time": time,
            "time_ms": record.time_ms, "replication_id": node.id, "replication_ip": node.host,
            "replication_port": node.port, "group_name": node.group_name, "role": record.role, "pid": record.pid,
            "level": record.level, "message": record.message.decode("utf-8", "replace"),
            "lines": [line.decode("utf-8", "replace") for line in record.lines], "format": record.format}


def read_page(plans: list[NodePlan], query: RecordQuery, store: ObjectStore, tz: str, limit: int,
              budget: int = PAGE_BUDGET) -> dict[str, Any]:
    """One page of records (blocking: run it in a thread). ``next_cursor`` is None once every
    node has been read to the end of the window."""
    zone = ZoneInfo(tz)
    records: list[dict[str, Any]] = []
    with ExitStack() as stack:
        merge = Merge(plans, query, store, tz, stack)
        for item, stream in merge:
            if isinstance(item, Record):
                records.append(record_dict(item, stream.plan.replication, zone))
            if len(records) >= limit or merge.scanned >= budget:
                break
        next_cursor = None if merge.exhausted else str(merge.last)
        return {"records": records, "next_cursor": next_cursor, "scanned_bytes": merge.scanned,
                "sources": [s.sources.as_dict() for s in merge.streams]}


def export(plans: list[NodePlan], query: RecordQuery, store: ObjectStore, tz: str, stack: ExitStack
           ) -> tuple[list[dict[str, Any]], Iterator[dict[str, Any]]]:
    """(the sources, every matching record as it is read): for an NDJSON export. Blocking."""
    zone = ZoneInfo(tz)
    merge = Merge(plans, query, store, tz, stack)
    records = (record_dict(item, stream.plan.replication, zone) for item, stream in merge
               if isinstance(item, Record))
    return [s.sources.as_dict() for s in merge.streams], records


#: A node's newest entry is sent once another entry follows it, or once it is this old: the
#: continuation lines Redis writes right after an entry (a crash report, the signal handler's line on a
#: shutdown) come with it. A busy log is not slowed: there, the next entry completes the last one at once.
FOLLOW_HOLD_MS = 2000


@dataclass
class Follower:
    """A live follow of the chosen nodes: each poll reads every node on from its own position (the
    key of the last entry examined there) up to a moment just behind the present. Positions are
    per node, so a node whose lines arrive late, or whose clock lags, loses nothing; the records of
    one poll go out merged in the usual order."""

    plans: list[NodePlan]
    query: RecordQuery
    store: ObjectStore
    tz: str
    per_node_limit: int = 1000  # records per node and poll: what one poll holds in memory
    behind: bool = False  # the last poll stopped at a node's limit: poll again without waiting
    positions: dict[str, Key] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ranks = {rid: i for i, rid in enumerate(sorted(p.replication.id for p in self.plans))}
        zone = ZoneInfo(self.tz)
        self._day_ends = {p.replication.id: [(_day_end_ms(day, zone), day, key) for day, key in p.collected]
                          for p in self.plans}
        if self.query.cursor is not None:
            self.positions = {p.replication.id: k for p in self.plans
                              if (k := self.query.after_for(p.replication.id)) is not None}

    def poll(self, now_ms: int, end_ms: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(the records written since the last poll, in order — up to ``end_ms``, excluded; every
        node's sources). A node's newest entry waits until another follows it or it is
        ``FOLLOW_HOLD_MS`` old (by ``now_ms``). Blocking: run it in a thread."""
        zone = ZoneInfo(self.tz)
        found: list[tuple[tuple[int, int, int], dict[str, Any]]] = []
        sources = []
        self.behind = False
        for plan in self.plans:
            rid = plan.replication.id
            position = self.positions.get(rid)
            # Collected days serve a follow that starts in the past, until its position passes them.
            days = [(day, key) for end, day, key in self._day_ends[rid] if position is None or end > position[0]]
            node_plan = NodePlan(plan.replication, plan.log_file, plan.agent_url, plan.agent_key, days, plan.error)
            q = self.query
            node_query = RecordQuery(q.start_ms, end_ms if end_ms is not None else MAX_MS, keyword=q.keyword,
                                     insensitive=q.insensitive, level=q.level, role=q.role,
                                     cursor=Cursor(position[0], position[1], rid) if position else None)
            records: list[Record] = []
            examined: list[Key] = []  # keys examined, in order (records and checkpoints)
            with ExitStack() as stack:
                merge = Merge([node_plan], node_query, self.store, self.tz, stack)
                for item, _stream in merge:
                    key = (item.time_ms, item.seq) if isinstance(item, Record) else item.key
                    examined.append(key)
                    if isinstance(item, Record):
                        records.append(item)
                        if len(records) >= self.per_node_limit:
                            self.behind = True  # more is waiting: the caller polls again at once
                            break
                exhausted = merge.exhausted
                sources.append(merge.streams[0].sources.as_dict())
            if exhausted and records and end_ms is None and records[-1].time_ms > now_ms - FOLLOW_HOLD_MS \
                    and self._is_newest(plan, records[-1]):
                held = records.pop().key
                earlier = [key for key in examined if key < held]
                examined = earlier or ([position] if position else [])
            if examined:
                self.positions[rid] = max(examined)
            found.extend(((r.time_ms, self.ranks[rid], r.seq), record_dict(r, plan.replication, zone))
                         for r in records)
        found.sort(key=lambda pair: pair[0])
        return [record for _, record in found], sources

    def _is_newest(self, plan: NodePlan, record: Record) -> bool:
        """Whether ``record`` is its node's newest entry, or only the newest the filters let through."""
        if self.query.filters_anything():
            probe = RecordQuery(record.time_ms, MAX_MS, cursor=Cursor(record.time_ms, record.seq, plan.replication.id))
            with ExitStack() as stack:
                node_plan = NodePlan(plan.replication, plan.log_file, plan.agent_url, plan.agent_key, [], plan.error)
                for item, _stream in Merge([node_plan], probe, self.store, self.tz, stack):
                    if isinstance(item, Record):
                        return False  # another entry follows it: it is complete
        return True


def _day_end_ms(day: str, zone: ZoneInfo) -> int:
    """The first millisecond after ``day`` in the instance's zone."""
    start = datetime.fromisoformat(day).replace(tzinfo=zone)
    return int((start + timedelta(days=1)).timestamp() * 1000)
