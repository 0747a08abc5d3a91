"""The slow log's write path: harvesting every node's SLOWLOG into the database (the worker runs it), and
dropping entries past retention. ListSlowlog reads what it stores (``services/slowlog_query.py``)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, case, delete, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dcslog.db import queries, upsert
from dcslog.db.models import (
    HOUR_MS,
    Base,
    Instance,
    Replication,
    SlowlogCursor,
    SlowlogEntry,
    SlowlogHourCount,
    SlowlogHourGroup,
)
from dcslog.keys import Keyring
from dcslog.redis.connection import CLIENT_NAME, DiscoveryError, NodeConnector
from dcslog.redis.slowlog import (
    NodeSlowlog,
    SlowlogUnreadable,
    command_name,
    command_text,
    fingerprint,
    read_slowlog,
)
from dcslog.services import auto_capture, node_state, records, runlog_events
from dcslog.services.common import utcnow
from dcslog.storage import ObjectStore

log = logging.getLogger(__name__)


def _insert(session: AsyncSession, model: type[Base]) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    return upsert.insert(session, model)


def _insert_ignoring_duplicates(session: AsyncSession, model: type[Base], *key: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING: two harvesters racing each other store a row once."""
    return _insert(session, model).on_conflict_do_nothing(index_elements=list(key))


async def _count_by_hour(session: AsyncSession, instance_id: str, start_times_ms: list[int]) -> None:
    """Add newly stored entries to the hourly counts (same transaction as the entries)."""
    per_hour = Counter(ms - ms % HOUR_MS for ms in start_times_ms)
    if not per_hour:
        return
    statement = _insert(session, SlowlogHourCount).values(
        [{"instance_id": instance_id, "hour_ms": hour, "entries": n} for hour, n in per_hour.items()])
    await session.execute(statement.on_conflict_do_update(
        index_elements=["instance_id", "hour_ms"],
        set_={"entries": SlowlogHourCount.entries + statement.excluded.entries}))


@functools.cache
def _roll_up_statement(dialect: str) -> Any:
    """The rollups' upsert, built once per dialect and run as an executemany (a VALUES list of
    each round's own length would be compiled anew every time)."""
    table = SlowlogHourGroup
    statement = upsert.insert_for(dialect, table)
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["instance_id", "hour_ms", "replication_id", "command_name", "fingerprint"],
        set_={"entries": table.entries + new.entries, "total_us": table.total_us + new.total_us,
              "max_us": case((new.max_us > table.max_us, new.max_us), else_=table.max_us),
              "first_ms": case((new.first_ms < table.first_ms, new.first_ms), else_=table.first_ms),
              "last_ms": case((new.last_ms > table.last_ms, new.last_ms), else_=table.last_ms)})


async def _roll_up(session: AsyncSession, instance_id: str, replication_id: str,
                   stored: list[tuple[int, int, str, str]]) -> None:
    """Add newly stored entries (start_time_ms, duration_us, command_name, fingerprint) to the
    hourly rollups of slow-log top (same transaction as the entries), one row per key: PostgreSQL
    may send several rows in one statement, and its ON CONFLICT may not touch a row twice."""
    rollups: dict[tuple[int, str, str], list[int]] = {}
    for start_ms, duration_us, name, shape in stored:
        key = (start_ms - start_ms % HOUR_MS, name, shape)
        row = rollups.get(key)
        if row is None:
            rollups[key] = [1, duration_us, duration_us, start_ms, start_ms]
        else:
            row[0] += 1
            row[1] += duration_us
            row[2] = max(row[2], duration_us)
            row[3] = min(row[3], start_ms)
            row[4] = max(row[4], start_ms)
    if rollups:
        await session.execute(_roll_up_statement(session.get_bind().dialect.name), [
            {"instance_id": instance_id, "hour_ms": hour, "replication_id": replication_id, "command_name": name,
             "fingerprint": shape, "entries": n, "total_us": total, "max_us": top, "first_ms": first,
             "last_ms": last} for (hour, name, shape), (n, total, top, first, last) in rollups.items()])


async def harvest_instance(sessionmaker: async_sessionmaker[AsyncSession], keyring: Keyring, instance: Instance,
                           timeout: float, store_lock: asyncio.Lock | None = None,
                           min_interval: float = 0.0, fingerprints_only: bool = False,
                           store: ObjectStore | None = None,
                           capture: auto_capture.Policy | None = None) -> dict[str, int]:
    """Read every node of the instance concurrently, each node's entries stored as soon as its
    own read returns, so a node that hangs until the timeout delays nobody else's. Returns
    {replication_id: stored}. A node that cannot be read keeps its cursor and records why.
    Each node's state (reachable, role, run id, master) and the events of what changed are
    recorded with its entries, and the instance's status follows the round
    (``services/node_state.py``). Given the object ``store``, each node's run log is read on too,
    for the events it tells (``services/runlog_events.py``: crash, sync). Given a ``capture``
    policy, the events that call for it start an automatic collection (``services/auto_capture.py``).

    A harvester first claims each node's round (a conditional UPDATE of its cursor): a node
    claimed less than ``min_interval`` seconds ago is left to whoever claimed it, so several
    workers harvest each node about once per interval between them, not once each.

    Stores take ``store_lock`` one at a time (one per harvest unless given): SQLite has one
    writer, and writers that collide wait out its busy handler's sleeps.

    A node whose address is not confirmed (``address_error``: another node may answer there)
    is not read until a refresh confirms it. Entries of dcslog's own connections are not stored.
    With ``fingerprints_only`` (DCSLOG_SLOWLOG_FINGERPRINTS_ONLY) an entry's arguments are never
    stored: its ``command`` is its fingerprint (``SET ? ?``).
    """
    store_lock = store_lock or asyncio.Lock()
    now = utcnow()
    async with store_lock, sessionmaker() as session:  # a write, as the stores below
        nodes = await queries.harvestable_nodes(session, instance.id)
        if nodes:  # every node has its cursor row before anyone reads it: the row is what is claimed
            await session.execute(_insert_ignoring_duplicates(session, SlowlogCursor, "replication_id").values([{
                "replication_id": n.id, "instance_id": instance.id, "run_id": None, "last_id": -1, "lost_entries": 0,
                "harvested_entries": 0, "updated_at": now} for n in nodes]))
        claimed = set((await session.execute(update(SlowlogCursor).where(
            SlowlogCursor.instance_id == instance.id,
            or_(SlowlogCursor.harvest_claimed_at.is_(None),
                SlowlogCursor.harvest_claimed_at <= now - timedelta(seconds=min_interval)),
        ).values(harvest_claimed_at=now).returning(SlowlogCursor.replication_id))).scalars())
        await session.commit()
        cursors = await queries.harvest_cursors(session, claimed)
    nodes = [n for n in nodes if n.id in claimed]
    if not nodes:
        return {}
    runlogs = await _runlog_plans(sessionmaker, keyring, instance, nodes, now) if store is not None else {}
    try:
        connector = NodeConnector(keyring.decrypt(instance.redis_url_encrypted), timeout)
    except DiscoveryError as exc:  # the stored URL no longer parses: every claimed node says why
        log.warning("slow log of instance %s: %s", instance.id, exc)
        async with store_lock, sessionmaker() as session:
            await session.execute(update(SlowlogCursor).where(SlowlogCursor.replication_id.in_(claimed))
                                  .values(last_error=str(exc), updated_at=now))
            await session.commit()
        return {}

    async def harvest_node(node: Replication) -> int:
        cursor = cursors[node.id]
        result: NodeSlowlog | Exception
        try:
            result = await read_slowlog(connector, node.host, node.port, cursor.run_id, cursor.last_id)
        except Exception as exc:  # noqa: BLE001 - one dead node must not stop the others
            result = exc
        told = await _read_runlog(runlogs.get(node.id), instance, now, store)
        async with store_lock:
            stored, events = await _store(sessionmaker, instance, node, cursor, result, connector,
                                          fingerprints_only, told)
            if capture is not None and events:
                await auto_capture.capture(sessionmaker, instance, node, events, capture)
            return stored

    stored = await asyncio.gather(*(harvest_node(node) for node in nodes))
    async with store_lock, sessionmaker() as session:
        await node_state.settle_instance(session, instance.id)
    return {node.id: n for node, n in zip(nodes, stored, strict=True)}


async def _runlog_plans(sessionmaker: async_sessionmaker[AsyncSession], keyring: Keyring, instance: Instance,
                        nodes: list[Replication], now: datetime
                        ) -> dict[str, tuple[records.NodePlan, records.Key | None]]:
    """{replication id: (where its run log is, where this round reads on from; None: never read)}
    of the nodes whose run log can be read."""
    now_ms = int(now.replace(tzinfo=UTC).timestamp() * 1000)
    async with sessionmaker() as session:
        stored = await queries.runlog_positions(session, [n.id for n in nodes])
        positions = {rid: runlog_events.parse_position(text) for rid, text in stored.items() if text}
        # The plans' window (for the collected days they include): from the oldest position on.
        window = records.RecordQuery(min((p[0] for p in positions.values()), default=now_ms), now_ms)
        plans = await records.plan_nodes(session, instance, keyring, [n.id for n in nodes], window)
    return {plan.replication.id: (plan, positions.get(plan.replication.id)) for plan in plans if plan.error is None}


async def _read_runlog(runlog: tuple[records.NodePlan, records.Key | None] | None, instance: Instance,
                       now: datetime, store: ObjectStore | None
                       ) -> tuple[list[runlog_events.Told], records.Key] | None:
    """The events the node's run log tells since the last round, and where the next one starts
    (None: not read; its position stays). A node read for the first time starts now: what it
    wrote before dcslog looked is history, as for the events of its state."""
    if runlog is None or store is None:
        return None
    plan, position = runlog
    now_ms = int(now.replace(tzinfo=UTC).timestamp() * 1000)
    if position is None:
        return [], runlog_events.start_position(now_ms)
    try:
        return await asyncio.to_thread(runlog_events.read_told, plan, position, now_ms, store, instance.timezone)
    except Exception as exc:  # noqa: BLE001 - the slow log and the node's state are stored all the same
        log.warning("run log of %s:%s not read for events: %r", plan.replication.host, plan.replication.port, exc)
        return None


async def _store(sessionmaker: async_sessionmaker[AsyncSession], instance: Instance, node: Replication,
                 cursor: SlowlogCursor,
                 result: NodeSlowlog | Exception, connector: NodeConnector, fingerprints_only: bool = False,
                 told: tuple[list[runlog_events.Told], records.Key] | None = None
                 ) -> tuple[int, list[node_state.Recorded]]:
    """Store what the node's round read; returns (slow-log entries stored, events recorded)."""
    now = utcnow()
    async with sessionmaker() as session:
        if isinstance(result, Exception):
            reason = connector.scrub(str(result) or type(result).__name__)
            # A node that answered INFO but not SLOWLOG is up: only its slow log failed.
            seen = result.identity if isinstance(result, SlowlogUnreadable) else None
            events = await node_state.record(session, instance, node, seen, reason, now)
            if told is not None:  # a crashed node's run log tells why it does not answer
                events += await node_state.record_told(session, instance, node, *told)
            await session.execute(update(SlowlogCursor).where(SlowlogCursor.replication_id == node.id)
                                  .values(last_error=reason, updated_at=now))
            await session.commit()
            return 0, events
        events = await node_state.record(session, instance, node, result.identity, None, now)
        if told is not None:
            events += await node_state.record_told(session, instance, node, *told)
        shard_name = node.group_name if instance.cache_mode == "cluster" else ""
        # dcslog's own commands (this harvest's, discovery's) are not the user's slow commands;
        # the cursor still moves past them.
        entries = [e for e in result.entries if e.client_name != CLIENT_NAME]
        stored: list[tuple[int, int, str, str]] = []
        if entries:
            # RETURNING names the rows really inserted: a racing harvester's duplicates are not counted.
            stored = [tuple(row) for row in (await session.execute(_insert_ignoring_duplicates(
                session, SlowlogEntry, "replication_id", "run_id", "redis_id").returning(
                SlowlogEntry.start_time_ms, SlowlogEntry.duration_us, SlowlogEntry.command_name,
                SlowlogEntry.fingerprint), [{
                "instance_id": instance.id, "replication_id": node.id, "run_id": result.run_id,
                "redis_id": e.redis_id, "start_time_ms": e.start_time * 1000, "duration_us": e.duration_us,
                "command": fingerprint(e.args) if fingerprints_only else command_text(e.args),
                "command_name": command_name(e.args)[:64],
                "fingerprint": fingerprint(e.args), "shard_name": shard_name, "node_ip": node.host,
                "node_port": node.port, "node_role": result.role, "client_addr": e.client_addr[:255],
                "client_name": e.client_name[:255],
            } for e in entries]))]
            await _count_by_hour(session, instance.id, [start_ms for start_ms, *_ in stored])
            await _roll_up(session, instance.id, node.id, stored)
        last_id = result.entries[-1].redis_id if result.entries else (
            cursor.last_id if cursor.run_id == result.run_id else -1)
        # RETURNING named the rows this harvester really inserted (none twice): count them whatever happens next.
        counted = {"harvested_entries": SlowlogCursor.harvested_entries + len(stored), "last_harvest_at": now,
                   "last_error": None, "updated_at": now}
        # Advance only from the cursor we read: if another harvester moved it
        # meanwhile, its update counted the loss and ours must not count it again.
        moved = await session.execute(update(SlowlogCursor).where(
            SlowlogCursor.replication_id == node.id,
            SlowlogCursor.run_id.is_(None) if cursor.run_id is None else SlowlogCursor.run_id == cursor.run_id,
            SlowlogCursor.last_id == cursor.last_id,
        ).values(run_id=result.run_id, last_id=last_id, lost_entries=SlowlogCursor.lost_entries + result.lost,
                 **counted))
        counted_loss = cast(CursorResult[Any], moved).rowcount > 0
        if not counted_loss:
            await session.execute(update(SlowlogCursor).where(SlowlogCursor.replication_id == node.id)
                                  .values(**counted))
        await session.commit()
    if result.lost and counted_loss:
        log.warning("slow log of %s:%s overflowed: %d entries lost since the last harvest",
                    node.host, node.port, result.lost)
    return len(stored), events


async def harvest_all(sessionmaker: async_sessionmaker[AsyncSession], keyring: Keyring, timeout: float,
                      min_interval: float = 0.0, fingerprints_only: bool = False,
                      store: ObjectStore | None = None, capture: auto_capture.Policy | None = None) -> int:
    """One harvest of every node of every instance; nodes claimed less than ``min_interval``
    seconds ago (by another worker) are skipped. Returns the entries stored."""
    async with sessionmaker() as session:
        instances = await queries.instances(session)
    store_lock = asyncio.Lock()
    stored = await asyncio.gather(*(harvest_instance(sessionmaker, keyring, i, timeout, store_lock, min_interval,
                                                     fingerprints_only, store, capture) for i in instances))
    return sum(sum(per_node.values()) for per_node in stored)


async def sweep_slowlog(session: AsyncSession, retention_days: float) -> int:
    """Delete entries past retention, whole hours at a time (so the hourly counts and rollups stay exact):
    an entry goes between ``retention`` and ``retention + 1 h`` after its start."""
    cutoff_ms = int((datetime.now(UTC) - timedelta(days=retention_days)).timestamp() * 1000)
    cutoff_ms -= cutoff_ms % HOUR_MS
    deleted = await session.execute(delete(SlowlogEntry).where(SlowlogEntry.start_time_ms < cutoff_ms))
    await session.execute(delete(SlowlogHourCount).where(SlowlogHourCount.hour_ms < cutoff_ms))
    await session.execute(delete(SlowlogHourGroup).where(SlowlogHourGroup.hour_ms < cutoff_ms))
    await session.commit()
    return cast(CursorResult[Any], deleted).rowcount
