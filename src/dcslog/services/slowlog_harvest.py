"""The slow log's write path: harvesting every node's SLOWLOG into the database (the worker runs it), and
dropping entries past retention. ListSlowlog reads what it stores (``services/slowlog_query.py``)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dcslog.db import queries
from dcslog.db.models import HOUR_MS, Base, Instance, Replication, SlowlogCursor, SlowlogEntry, SlowlogHourCount
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
from dcslog.services import node_state
from dcslog.services.common import utcnow

log = logging.getLogger(__name__)


def _insert(session: AsyncSession, model: type[Base]) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(model)


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


async def harvest_instance(sessionmaker: async_sessionmaker[AsyncSession], keyring: Keyring, instance: Instance,
                           timeout: float, store_lock: asyncio.Lock | None = None,
                           min_interval: float = 0.0) -> dict[str, int]:
    """Read every node of the instance concurrently, each node's entries stored as soon as its
    own read returns, so a node that hangs until the timeout delays nobody else's. Returns
    {replication_id: stored}. A node that cannot be read keeps its cursor and records why.
    Each node's state (reachable, role, run id, master) and the events of what changed are
    recorded with its entries, and the instance's status follows the round
    (``services/node_state.py``).

    A harvester first claims each node's round (a conditional UPDATE of its cursor): a node
    claimed less than ``min_interval`` seconds ago is left to whoever claimed it, so several
    workers harvest each node about once per interval between them, not once each.

    Stores take ``store_lock`` one at a time (one per harvest unless given): SQLite has one
    writer, and writers that collide wait out its busy handler's sleeps.

    A node whose address is not confirmed (``address_error``: another node may answer there)
    is not read until a refresh confirms it. Entries of dcslog's own connections are not stored.
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
        async with store_lock:
            return await _store(sessionmaker, instance, node, cursor, result, connector)

    stored = await asyncio.gather(*(harvest_node(node) for node in nodes))
    async with store_lock, sessionmaker() as session:
        await node_state.settle_instance(session, instance.id)
    return {node.id: n for node, n in zip(nodes, stored, strict=True)}


async def _store(sessionmaker: async_sessionmaker[AsyncSession], instance: Instance, node: Replication,
                 cursor: SlowlogCursor,
                 result: NodeSlowlog | Exception, connector: NodeConnector) -> int:
    now = utcnow()
    async with sessionmaker() as session:
        if isinstance(result, Exception):
            reason = connector.scrub(str(result) or type(result).__name__)
            # A node that answered INFO but not SLOWLOG is up: only its slow log failed.
            seen = result.identity if isinstance(result, SlowlogUnreadable) else None
            await node_state.record(session, instance, node, seen, reason, now)
            await session.execute(update(SlowlogCursor).where(SlowlogCursor.replication_id == node.id)
                                  .values(last_error=reason, updated_at=now))
            await session.commit()
            return 0
        await node_state.record(session, instance, node, result.identity, None, now)
        shard_name = node.group_name if instance.cache_mode == "cluster" else ""
        # dcslog's own commands (this harvest's, discovery's) are not the user's slow commands;
        # the cursor still moves past them.
        entries = [e for e in result.entries if e.client_name != CLIENT_NAME]
        stored: list[int] = []
        if entries:
            # RETURNING names the rows really inserted: a racing harvester's duplicates are not counted.
            stored = list((await session.execute(_insert_ignoring_duplicates(
                session, SlowlogEntry, "replication_id", "run_id", "redis_id").returning(SlowlogEntry.start_time_ms), [{
                "instance_id": instance.id, "replication_id": node.id, "run_id": result.run_id,
                "redis_id": e.redis_id, "start_time_ms": e.start_time * 1000, "duration_us": e.duration_us,
                "command": command_text(e.args), "command_name": command_name(e.args)[:64],
                "fingerprint": fingerprint(e.args), "shard_name": shard_name, "node_ip": node.host,
                "node_port": node.port, "node_role": result.role, "client_addr": e.client_addr[:255],
                "client_name": e.client_name[:255],
            } for e in entries])).scalars())
            await _count_by_hour(session, instance.id, stored)
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
    return len(stored)


async def harvest_all(sessionmaker: async_sessionmaker[AsyncSession], keyring: Keyring, timeout: float,
                      min_interval: float = 0.0) -> int:
    """One harvest of every node of every instance; nodes claimed less than ``min_interval``
    seconds ago (by another worker) are skipped. Returns the entries stored."""
    async with sessionmaker() as session:
        instances = await queries.instances(session)
    store_lock = asyncio.Lock()
    stored = await asyncio.gather(*(harvest_instance(sessionmaker, keyring, i, timeout, store_lock, min_interval)
                                    for i in instances))
    return sum(sum(per_node.values()) for per_node in stored)


async def sweep_slowlog(session: AsyncSession, retention_days: float) -> int:
    """Delete entries past retention, whole hours at a time (so the hourly counts stay exact):
    an entry goes between ``retention`` and ``retention + 1 h`` after its start."""
    cutoff_ms = int((datetime.now(UTC) - timedelta(days=retention_days)).timestamp() * 1000)
    cutoff_ms -= cutoff_ms % HOUR_MS
    deleted = await session.execute(delete(SlowlogEntry).where(SlowlogEntry.start_time_ms < cutoff_ms))
    await session.execute(delete(SlowlogHourCount).where(SlowlogHourCount.hour_ms < cutoff_ms))
    await session.commit()
    return cast(CursorResult[Any], deleted).rowcount
