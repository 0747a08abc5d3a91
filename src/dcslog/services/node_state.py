"""Live node state and the events derived from it (SPEC §7): every harvest round records what it saw
of each node, compares it with the round before, and records what changed as events; the groups'
and the instance's ``status`` follow the last round. The harvester (``services/slowlog_harvest.py``)
calls ``record`` for each node it read or failed to read, and ``settle_instance`` after its round.

Events (``Event.type``):

* ``node_down`` — two rounds in a row could not read a node that answered before, at the time of
  the first (a network blip shorter than a round fails one round's read at most: it records
  nothing, and the node stays ``Active``); nothing else is concluded from a node that does not
  answer: its role and run id stay as last seen;
* ``node_up`` — it answers again;
* ``restart`` — it answers with a new ``run_id``, at the time the new process started (INFO's
  ``uptime_in_seconds`` before the round, but after the round before);
* ``role_change`` — its role is not the one last seen;
* ``failover`` — a replica became a master: its group's master changed (once per promotion, on the
  promoted node; the demoted master has its own ``role_change``);
* ``crash``, ``sync`` — told by run-log entries (``services/runlog_events.py``), which the
  harvester reads each round too and records here (``record_told``).

A node's first observation records no event: what happened before dcslog looked is history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog.db import queries, upsert
from dcslog.db.models import Event, Instance, NodeState, Replication
from dcslog.redis.slowlog import NodeIdentity
from dcslog.redis.topology import ACTIVE, INACTIVE
from dcslog.services.common import derived_id, utcnow
from dcslog.services.records import Key
from dcslog.services.runlog_events import Told, position_text

EVENT_TYPES = ("restart", "role_change", "failover", "node_down", "node_up", "crash", "sync")
RUNNING, ERROR = "RUNNING", "ERROR"


@dataclass(frozen=True)
class Change:
    """One event a round derived: its type, when it happened (ms) and what to say about it."""

    type: str
    time_ms: int
    details: dict[str, str]


@dataclass(frozen=True)
class Recorded:
    """An event a round recorded, under its id."""

    id: str
    type: str
    time_ms: int
    details: dict[str, str]


def _ms(moment: datetime) -> int:
    """Naive UTC (as stored) → ms since the epoch."""
    return int((moment - datetime(1970, 1, 1)).total_seconds() * 1000)


def changes(before: NodeState, seen: NodeIdentity | None, error: str | None, now: datetime) -> list[Change]:
    """What changed between the state the round before left (``before``) and what this round saw:
    ``seen`` (None: the node could not be read, ``error`` says why), in the order they happened.
    Pure: no database."""
    at = _ms(now)
    if seen is None:
        if not before.reachable or before.failing_since is None:
            return []  # already down, or the first round that failed: perhaps a blip
        return [Change("node_down", _ms(before.failing_since),
                       {"message": f"not reachable: {error}", "error": error or ""})]
    out = []
    if before.run_id and seen.run_id != before.run_id:
        # When the new process started: uptime counts whole seconds, and the round before saw the
        # old process (or nothing), so the start is after that round.
        started = max(at - seen.uptime_s * 1000, _ms(before.observed_at) + 1)
        out.append(Change("restart", started, {
            "message": f"new process: run_id {seen.run_id[:8]}… (was {before.run_id[:8]}…)",
            "run_id": seen.run_id, "previous_run_id": before.run_id}))
    if not before.reachable:
        out.append(Change("node_up", at, {"message": "reachable again"}))
    if before.role and seen.role != before.role:
        out.append(Change("role_change", at, {"message": f"{before.role} → {seen.role}",
                                              "from": before.role, "to": seen.role}))
        if seen.role == "master":
            previous = before.master or "unknown"
            out.append(Change("failover", at, {"message": f"became the master (was {previous})",
                                               "previous_master": previous}))
    return out


def _insert_if_absent(session: AsyncSession, model: type[Event] | type[NodeState], key: str) -> Any:
    """INSERT … ON CONFLICT (key) DO NOTHING (SQLite and PostgreSQL spell it alike)."""
    return upsert.insert(session, model).on_conflict_do_nothing(index_elements=[key])


def event_id(instance_id: str, replication_id: str, change: str, type_: str) -> str:
    """The stable id of an event: the same change of the same node always gets the same id."""
    return derived_id(instance_id, "event", replication_id, change, type_)


async def record(session: AsyncSession, instance: Instance, node: Replication, seen: NodeIdentity | None,
                 error: str | None, now: datetime) -> list[Recorded]:
    """Record this round's view of ``node`` (``seen``, or None and why not) in ``session`` (the
    caller commits), with the events of what changed since the last round and the node's
    ``status``. Returns the events recorded: none when another harvester recorded this change
    first (the state's version moved since it was read here)."""
    before = await queries.node_state(session, node.id)
    # A node that answered until now and fails this round's read is still taken as up, with the
    # time of this first failure kept: only the next round's failure makes it down.
    first_failure = seen is None and before is not None and before.reachable and before.failing_since is None
    reachable = seen is not None or first_failure
    observed: dict[str, Any] = {"reachable": reachable, "observed_at": now,
                                "error": None if seen is not None else error,
                                "failing_since": now if first_failure else None}
    if seen is not None:
        observed.update(run_id=seen.run_id, role=seen.role, master=seen.master, last_seen_at=now)
    elif before is not None and not first_failure and before.failing_since is not None:
        observed["failing_since"] = before.failing_since
    status = ACTIVE if reachable else INACTIVE
    # Its status, and its role as it answered (a failover shows in ListGroupReplicationInfo at
    # once): written only when one changes.
    shown, changed = {"status": status}, Replication.status != status
    if seen is not None:
        shown["role"], changed = seen.role, changed | (Replication.role != seen.role)
    await session.execute(update(Replication).where(Replication.id == node.id, changed).values(**shown))
    if before is None:
        await session.execute(_insert_if_absent(session, NodeState, "replication_id").values(
            replication_id=node.id, instance_id=instance.id, version=0, **observed))
        return []
    found = changes(before, seen, error, now)
    version = before.version + (1 if found else 0)
    moved = await session.execute(update(NodeState).where(
        NodeState.replication_id == node.id, NodeState.version == before.version).values(version=version, **observed))
    if cast(CursorResult[Any], moved).rowcount == 0 or not found:
        return []
    recorded = [Recorded(event_id(instance.id, node.id, str(version), change.type), change.type, change.time_ms,
                         change.details) for change in found]
    await session.execute(_insert_if_absent(session, Event, "id").values([{
        "id": event.id, "instance_id": instance.id, "replication_id": node.id, "type": event.type,
        "time_ms": event.time_ms, "seq": seq, "replication_ip": node.host, "replication_port": node.port,
        "group_name": node.group_name, "details": json.dumps(event.details),
    } for seq, event in enumerate(recorded)]))
    return recorded


async def record_told(session: AsyncSession, instance: Instance, node: Replication, told: list[Told],
                      position: Key) -> list[Recorded]:
    """Record the events ``node``'s run log told (once each: their ids come from the records that
    tell them) and where its next read starts, in ``session`` (the caller commits; ``record``
    has created the node's state). Returns the events recorded here, not before (RETURNING
    names the rows this insert really added)."""
    inserted: set[str] = set()
    if told:
        inserted = set((await session.execute(_insert_if_absent(session, Event, "id").values([{
            "id": event_id(instance.id, node.id, t.record_id, t.type), "instance_id": instance.id,
            "replication_id": node.id, "type": t.type, "time_ms": t.time_ms, "seq": t.seq,
            "replication_ip": node.host, "replication_port": node.port, "group_name": node.group_name,
            "details": json.dumps(t.details),
        } for t in told]).returning(Event.id))).scalars())
    await session.execute(update(NodeState).where(NodeState.replication_id == node.id)
                          .values(runlog_position=position_text(position)))
    return [Recorded(event_id(instance.id, node.id, t.record_id, t.type), t.type, t.time_ms, t.details)
            for t in told if event_id(instance.id, node.id, t.record_id, t.type) in inserted]


async def settle_instance(session: AsyncSession, instance_id: str) -> None:
    """The instance's ``status`` from its nodes' last rounds: ``RUNNING`` while every group has a
    master that answered, else ``ERROR`` with ``error_msg`` naming the groups without one (a
    replica that does not answer leaves the instance running: its group shows it ``Inactive``).
    A group with a node no round has read yet is not judged (another worker may be reading it);
    an instance with no group judged is left as it is. Commits when it changes."""
    groups: dict[int, tuple[str, bool]] = {}
    unjudged: set[int] = set()
    reasons: dict[int, list[str]] = {}
    for group, address, index, state in await queries.group_masters(session, instance_id):
        if state is None:
            unjudged.add(index)
            continue
        name, has_master = groups.get(index, (group, False))
        groups[index] = (name, has_master or (state.reachable and state.role == "master"))
        if not state.reachable:
            reasons.setdefault(index, []).append(f"{address}: {state.error}")
    for index in unjudged:
        groups.pop(index, None)
    if not groups:
        return
    missing = [index for index, (_, has_master) in sorted(groups.items()) if not has_master]
    status = ERROR if missing else RUNNING
    message = "; ".join(
        f"{groups[i][0]} has no master that answers ({', '.join(reasons.get(i, [])) or 'no node is a master'})"
        for i in missing) or None
    changed = await session.execute(update(Instance).where(
        Instance.id == instance_id, (Instance.status != status) | (Instance.last_error.is_distinct_from(message)))
        .values(status=status, last_error=message))
    if cast(CursorResult[Any], changed).rowcount:
        await session.commit()


async def sweep_events(session: AsyncSession, retention_days: float) -> int:
    """Delete events older than ``retention_days`` (the slow log's retention: they tell the same
    story, and a timeline needs both). Returns how many went."""
    cutoff_ms = _ms(utcnow() - timedelta(days=retention_days))
    deleted = await session.execute(delete(Event).where(Event.time_ms < cutoff_ms))
    await session.commit()
    return cast(CursorResult[Any], deleted).rowcount
