"""Events the run log tells (SPEC §7): ``crash`` (the node wrote a bug report) and ``sync`` (a
replica's full resynchronisation started, or finished).

Every harvest round reads each node's run log on from where the round before stopped
(``NodeState.runlog_position``, a record key) to a moment ``HOLD_MS`` behind the present, through
the records' own sources (the file on this machine or the node's agent, and collected days for what
the host has rotated away), so every log format and host the records API reads works here too.
The log is asked only for the entries that may tell an event (keyword scans: grep's speed here, and
the agent sends only those), so a round costs little even on a node that logs thousands of lines
a second.

* **crash**: Redis and Valkey start a bug report with a raw line, ``=== REDIS BUG REPORT START: …``
  (``VALKEY`` for Valkey), which the grammar keeps as a continuation line of the entry before it;
  the report's first own entry is the crash, and its time is the event's. The event says why it
  crashed from the report's entries: ``… crashed by signal: 11`` (a signal), ``==> file:line '…' is
  not true`` (an assertion), ``Guru Meditation: …`` (a panic). The marker lands on the entry that
  was the newest when the process died, which an earlier round has read already: so each round
  reads again the newest entry the round before read (with whatever lines it has gained since).
* **sync**: on the replica, ``Full resync from master|primary: <replid>:<offset>`` (started) and
  ``MASTER|PRIMARY <-> REPLICA sync: Finished with success`` (finished): the full ones only (a
  partial resynchronisation copies no data set); the master's side of it stays a run-log record.

An event's id derives from the record that tells it, so whichever round or worker reads it again
records it once.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from dataclasses import dataclass

from dcslog.runlog.records import Record
from dcslog.services.records import FOLLOW_HOLD_MS, SEQ_MAX, Cursor, Key, Merge, NodePlan, RecordQuery
from dcslog.storage import ObjectStore

#: Entries this recent wait for the next round (a line written just after its time stamp is not missed).
HOLD_MS = FOLLOW_HOLD_MS
#: Bytes one node's read may take in one round; a longer backlog is read on over the next rounds.
BUDGET = 32 << 20
#: A bug report not ended (by its END line or a new process) this long after it began is taken as
#: cut short: the crash is recorded with what it says.
REPORT_WAIT_MS = 60_000
#: Entries a report may hold before it is taken as ended (Redis 7's hold about 40).
REPORT_ENTRIES = 2000

#: What the log is asked for: a replica's two sync lines hold the first two (rare words, unlike "sync",
#: which a master's log holds on most lines while replicas come and go), a report's START line the last.
SYNC_KEYWORDS = ("Full resync from ", "sync: Finished with success")
REPORT_KEYWORD = "BUG REPORT START"
#: Matching entries one scan keeps per round (a log full of them is read on over the next rounds).
MATCHES = 10_000

REPORT_START = re.compile(rb"=== [A-Z]+ BUG REPORT START")
REPORT_END = re.compile(rb"=== [A-Z]+ BUG REPORT END")
CRASH_REASON = re.compile(rb"crashed by signal: \d+|^==> |^Guru Meditation: ")
SYNC_STARTED = re.compile(rb"Full resync from (?:master|primary): ")
SYNC_FINISHED = re.compile(rb"(?:MASTER|PRIMARY) <-> (?:REPLICA|SLAVE) sync: Finished with success")


@dataclass(frozen=True)
class Told:
    """An event a run-log entry tells; ``record_id`` (the entry's) names it."""

    type: str
    time_ms: int
    seq: int
    record_id: str
    details: dict[str, str]


@dataclass
class _Report:
    """A bug report being read: from the entry whose lines hold its START line."""

    marker_id: str
    marker: Key  # the entry whose lines hold the START line
    time_ms: int | None = None  # its first own entry's: the crash
    seq: int = 0
    pid: int | None = None
    first_id: str | None = None
    reason: str | None = None
    entries: int = 0

    def told(self) -> Told:
        assert self.time_ms is not None
        message = f"crashed: {self.reason}" if self.reason else "crashed: wrote a bug report"
        return Told("crash", self.time_ms, self.seq, self.marker_id,
                    {"message": message, "reason": self.reason or "", "record_id": self.first_id or ""})


def position_text(key: Key) -> str:
    return f"{key[0]}_{key[1]}"


def parse_position(text: str) -> Key:
    time_ms, seq = text.split("_")
    return int(time_ms), int(seq)


def start_position(now_ms: int) -> Key:
    """Where a node seen for the first time starts: after what it wrote before dcslog looked
    (history, as for the events of its state)."""
    return now_ms, SEQ_MAX


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip()


def read_told(plan: NodePlan, position: Key, now_ms: int, store: ObjectStore, tz: str,
              budget: int = BUDGET) -> tuple[list[Told], Key]:
    """(the events the node's run log tells after ``position``, where the next round goes on).
    Blocking: run it in a thread.

    The log is asked for the entries holding a sync line's words and those holding a bug
    report's START line — keyword scans, at grep's speed, and on an agent's host only those
    entries cross the network — and each report found is then read entry by entry. The newest
    entry at or before ``position`` is read again: a report's START line joins it after it was
    read."""
    rid = plan.replication.id
    end_ms = now_ms - HOLD_MS
    if end_ms <= position[0]:
        return [], position
    newest = _newest_at(plan, position, store, tz)
    start = (newest[0], newest[1] - 1) if newest else position  # just before it: it is read again
    told: list[Told] = []
    reports, last = _matching(plan, start, end_ms, REPORT_KEYWORD, store, tz, budget)
    for keyword in SYNC_KEYWORDS:
        syncs, read_to = _matching(plan, start, end_ms, keyword, store, tz, budget)
        last = min(last, read_to)
        told.extend(t for record in syncs if record.key > position  # an entry read before told its sync then
                    for t in _sync(record, f"{record.time_ms}_{record.seq}_{rid}"))
    for record in reports:
        if not any(REPORT_START.match(line) for line in record.lines):
            continue  # the words, not a report's START line
        crash = _read_report(plan, record, end_ms, now_ms, store, tz)
        if crash is None:
            last = min(last, record.key)  # still being written: read it again, whole, next round
        else:
            told.append(crash)
    return told, last


def _matching(plan: NodePlan, start: Key, end_ms: int, keyword: str, store: ObjectStore, tz: str,
              budget: int) -> tuple[list[Record], Key]:
    """(the node's entries after ``start`` and before ``end_ms`` holding ``keyword``, the key up to
    which every entry was examined: the whole window's, unless ``budget`` bytes ran out first)."""
    rid = plan.replication.id
    query = RecordQuery(start[0], end_ms, keyword=keyword, cursor=Cursor(start[0], start[1], rid))
    found: list[Record] = []
    with ExitStack() as stack:
        merge = Merge([plan], query, store, tz, stack)
        for item, _stream in merge:
            if isinstance(item, Record):
                found.append(item)
            if merge.scanned >= budget or len(found) >= MATCHES:
                break
        if merge.exhausted:
            return found, (end_ms - 1, SEQ_MAX)
        assert merge.last is not None
        return found, (merge.last.time_ms, merge.last.seq)


def _read_report(plan: NodePlan, marker: Record, end_ms: int, now_ms: int, store: ObjectStore,
                 tz: str) -> Told | None:
    """The crash of the report whose START line ``marker`` holds, read entry by entry up to its END
    line or a new process; None while it is still being written."""
    rid = plan.replication.id
    report = _Report(f"{marker.time_ms}_{marker.seq}_{rid}", marker.key)
    query = RecordQuery(marker.time_ms, end_ms, cursor=Cursor(marker.time_ms, marker.seq, rid))
    with ExitStack() as stack:
        for item, _stream in Merge([plan], query, store, tz, stack):
            if not isinstance(item, Record):
                continue
            if report.pid is not None and item.pid != report.pid:
                return report.told()  # a new process: the report ended with the old one
            _absorb(report, item, f"{item.time_ms}_{item.seq}_{rid}")
            if report.entries >= REPORT_ENTRIES or any(REPORT_END.match(line) for line in item.lines):
                return report.told()
    if report.time_ms is not None and report.time_ms < now_ms - REPORT_WAIT_MS:
        return report.told()  # cut short (the disk filled, the host died): what it says
    return None


def _newest_at(plan: NodePlan, position: Key, store: ObjectStore, tz: str) -> Key | None:
    """The key of the node's newest entry at or before ``position`` (None: it has none)."""
    rid = plan.replication.id
    probe = RecordQuery(0, position[0] + 1, descending=True, cursor=Cursor(position[0], position[1] + 1, rid))
    with ExitStack() as stack:
        for item, _stream in Merge([plan], probe, store, tz, stack):
            if isinstance(item, Record):
                return item.time_ms, item.seq
    return None


def _absorb(report: _Report, record: Record, record_id: str) -> None:
    if report.time_ms is None:
        report.time_ms, report.seq, report.pid, report.first_id = record.time_ms, record.seq, record.pid, record_id
    report.entries += 1
    if report.reason is None and CRASH_REASON.search(record.message):
        report.reason = _text(record.message)


def _sync(record: Record, record_id: str) -> list[Told]:
    for pattern, phase in ((SYNC_STARTED, "started"), (SYNC_FINISHED, "finished")):
        if pattern.match(record.message):
            message = f"full resynchronisation {phase}: {_text(record.message)}"
            return [Told("sync", record.time_ms, record.seq, record_id, {"message": message, "phase": phase})]
    return []
