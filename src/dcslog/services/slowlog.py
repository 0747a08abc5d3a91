"""The slow log: harvesting every node into the database, and the DCS ListSlowlog query over it."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlalchemy import bindparam, delete, func, literal_column, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from dcslog.db.inline import read
from dcslog.db.models import Instance, Replication, SlowlogCursor, SlowlogEntry, SlowlogHourCount
from dcslog.keys import Keyring
from dcslog.redis.connection import CLIENT_NAME, DiscoveryError, NodeConnector
from dcslog.redis.slowlog import NodeSlowlog, command_name, command_text, fingerprint, read_slowlog
from dcslog.services.common import utcnow

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
# Above this many entries in the window, the duration sort walks the duration index (see list_slowlog).
WIDE_WINDOW = 5_000
# Pages ending within this many rows of the start are read on the event loop (db/inline.py).
INLINE_MAX_ROWS = 1_000
# What a SlowlogItem is made of (slowlog_item).
ITEM_COLUMNS = (SlowlogEntry.id, SlowlogEntry.command, SlowlogEntry.start_time_ms, SlowlogEntry.duration_us,
                SlowlogEntry.shard_name, SlowlogEntry.node_role, SlowlogEntry.client_addr, SlowlogEntry.replication_id,
                SlowlogEntry.node_ip, SlowlogEntry.node_port, SlowlogEntry.client_name, SlowlogEntry.fingerprint)
SORT_COLUMNS = {"start_time": SlowlogEntry.start_time_ms, "duration": SlowlogEntry.duration_us}


def _insert(session: AsyncSession, model):
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    module = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    return module.insert(model)


def _insert_ignoring_duplicates(session: AsyncSession, model, *key: str):
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
        nodes = list(await session.scalars(select(Replication).where(Replication.instance_id == instance.id,
                                                                     Replication.address_error.is_(None))))
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
        cursors = {c.replication_id: c for c in await session.scalars(
            select(SlowlogCursor).where(SlowlogCursor.replication_id.in_(claimed)))}
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
        try:
            result = await read_slowlog(connector, node.host, node.port, cursor.run_id, cursor.last_id)
        except Exception as exc:  # noqa: BLE001 - one dead node must not stop the others
            result = exc
        async with store_lock:
            return await _store(sessionmaker, instance, node, cursor, result, connector)

    stored = await asyncio.gather(*(harvest_node(node) for node in nodes))
    return {node.id: n for node, n in zip(nodes, stored)}


async def _store(sessionmaker, instance: Instance, node: Replication, cursor: SlowlogCursor,
                 result: NodeSlowlog | Exception, connector: NodeConnector) -> int:
    now = utcnow()
    async with sessionmaker() as session:
        if isinstance(result, Exception):
            reason = connector.scrub(str(result) or type(result).__name__)
            await session.execute(update(SlowlogCursor).where(SlowlogCursor.replication_id == node.id)
                                  .values(last_error=reason, updated_at=now))
            await session.commit()
            return 0
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
        counted_loss = moved.rowcount > 0
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
        instances = list(await session.scalars(select(Instance)))
    store_lock = asyncio.Lock()
    stored = await asyncio.gather(*(harvest_instance(sessionmaker, keyring, i, timeout, store_lock, min_interval)
                                    for i in instances))
    return sum(sum(per_node.values()) for per_node in stored)


async def sweep_slowlog(session: AsyncSession, retention_days: float) -> int:
    """Delete entries past retention, whole hours at a time (so the hourly counts stay exact):
    an entry goes between ``retention`` and ``retention + 1 h`` after its start."""
    cutoff_ms = int((datetime.now(timezone.utc) - timedelta(days=retention_days)).timestamp() * 1000)
    cutoff_ms -= cutoff_ms % HOUR_MS
    deleted = await session.execute(delete(SlowlogEntry).where(SlowlogEntry.start_time_ms < cutoff_ms))
    await session.execute(delete(SlowlogHourCount).where(SlowlogHourCount.hour_ms < cutoff_ms))
    await session.commit()
    return deleted.rowcount


# The statements of the short reads are built once: building and hashing a SQLAlchemy
# statement costs several times what SQLite takes to answer it (bench/slowlog.py).
_INSTANCE = bindparam("instance_id")


def _entries_between(low: str, high: str):
    return select(func.count()).select_from(SlowlogEntry).where(
        SlowlogEntry.instance_id == _INSTANCE,
        SlowlogEntry.start_time_ms.between(bindparam(low), bindparam(high))).scalar_subquery()


# Entries in a window: whole hours from the hourly counts, the partial hours at its two
# edges counted on the time index; and the nodes' losses, in the same statement.
_LOST = select(func.coalesce(func.sum(SlowlogCursor.lost_entries), 0)).where(SlowlogCursor.instance_id == _INSTANCE)
_WINDOW_TOTAL_AND_LOST = select(
    select(func.coalesce(func.sum(SlowlogHourCount.entries), 0)).where(
        SlowlogHourCount.instance_id == _INSTANCE, SlowlogHourCount.hour_ms >= bindparam("first_hour"),
        SlowlogHourCount.hour_ms < bindparam("end_hour")).scalar_subquery()
    + _entries_between("low_1", "high_1") + _entries_between("low_2", "high_2"),
    _LOST.scalar_subquery())


_COMPILED: dict[tuple[object, str], object] = {}  # (prebuilt statement, dialect name) -> compiled


def _fetch_prebuilt(connection, statement, params: dict) -> list[tuple]:
    """Rows of a prebuilt statement (plain columns, no type conversions), compiled once per
    dialect and run on the driver's cursor: SQLAlchemy's execution path costs more than
    SQLite's own answer to these short reads (bench/slowlog.py)."""
    key = (statement, connection.dialect.name)  # a Select hashes by identity; the key keeps it alive
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _COMPILED[key] = statement.compile(dialect=connection.dialect)
    values = compiled.construct_params(params)  # with the statement's own literals (coalesce's 0)
    if compiled.positional:
        values = [values[name] for name in compiled.positiontup]
    cursor = connection.connection.cursor()
    try:
        cursor.execute(compiled.string, values)
        return cursor.fetchall()
    except connection.dialect.loaded_dbapi.Error as exc:
        # As SQLAlchemy would raise it: a busy SQLite then sends an inline read back to the
        # session (db/inline.py), as for every other read.
        raise DBAPIError.instance(compiled.string, values, exc, connection.dialect.loaded_dbapi.Error) from exc
    finally:
        cursor.close()


def _window_params(instance_id: str, start_ms: int, end_ms: int) -> dict:
    first_hour = start_ms + (-start_ms) % HOUR_MS  # first hour that starts inside the window
    end_hour = (end_ms + 1) - (end_ms + 1) % HOUR_MS  # whole hours end here
    if first_hour >= end_hour:  # no whole hour: one edge is the window, the other empty
        edges = (start_ms, end_ms, 1, 0)
    else:
        edges = (start_ms, first_hour - 1, end_hour, end_ms)
    return {"instance_id": instance_id, "first_hour": first_hour, "end_hour": end_hour,
            **dict(zip(("low_1", "high_1", "low_2", "high_2"), edges))}


@functools.cache
def _page(sort_key: str, sort_dir: str, duration_index: bool):
    start = SlowlogEntry.start_time_ms
    if duration_index:
        # SQLite (no STAT4) guesses a two-sided time range is narrow, picks the time
        # index and sorts every row in it. For a wide window, walking the duration
        # index in order and filtering on time is what is cheap: "+ 0" takes the
        # time column out of index selection (bench/slowlog.py: 230 ms → <1 ms at 1 M rows).
        start = start + literal_column("0")
    column = SORT_COLUMNS[sort_key]
    order = (column.desc(), SlowlogEntry.id.desc()) if sort_dir == "desc" else (column.asc(), SlowlogEntry.id.asc())
    return (select(*ITEM_COLUMNS)
            .where(SlowlogEntry.instance_id == _INSTANCE, start.between(bindparam("start_ms"), bindparam("end_ms")))
            .order_by(*order).limit(bindparam("limit")).offset(bindparam("offset")))


def duration_ms(duration_us: int) -> str:
    """Milliseconds as DCS writes them: ``"12"``, ``"0.153"``, ``"1.5"``."""
    whole, micros = divmod(duration_us, 1000)
    return f"{whole}.{micros:03d}".rstrip("0").rstrip(".") if micros else str(whole)


def slowlog_item(row) -> dict:
    """A SlowlogItem from a row of ITEM_COLUMNS (unpacked by position: a page builds ten of these
    per request, and a Row's attribute look-ups cost more than the rest of it)."""
    (entry_id, command, start_time_ms, duration_us, shard_name, node_role, client_addr, replication_id,
     node_ip, node_port, client_name, fingerprint_) = row
    return {
        "id": entry_id,
        "command": command,
        "start_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_time_ms // 1000)),
        "duration": duration_ms(duration_us),
        "shard_name": shard_name or None,
        "database_id": None,
        "username": None,
        "node_role": node_role,
        "client_ip": client_addr.rsplit(":", 1)[0] if client_addr else None,
        # Extensions
        "replication_id": replication_id,
        "node_ip": node_ip,
        "node_port": node_port,
        "client_addr": client_addr or None,
        "client_name": client_name or None,
        "fingerprint": fingerprint_,
    }


async def list_slowlog(session: AsyncSession, instance: Instance, *, start_ms: int, end_ms: int, offset: int,
                       limit: int, sort_key: str, sort_dir: str, replication_id: str | None = None,
                       role: str | None = None, command: str | None = None,
                       min_duration_us: int | None = None) -> tuple[int, list[dict], int]:
    """(total, page, lost entries of the instance's nodes so far)."""
    filters = []
    if replication_id:
        filters.append(SlowlogEntry.replication_id == replication_id)
    if role:
        filters.append(SlowlogEntry.node_role == role)
    if command:
        filters.append(SlowlogEntry.command_name == command.upper())
    if min_duration_us is not None:
        filters.append(SlowlogEntry.duration_us >= min_duration_us)

    def query(s: Session) -> tuple[int, list[dict], int]:
        connection = s.connection()
        if filters:
            total = connection.scalar(select(func.count()).select_from(SlowlogEntry).where(
                SlowlogEntry.instance_id == instance.id, SlowlogEntry.start_time_ms.between(start_ms, end_ms),
                *filters))
            lost = connection.scalar(_LOST, {"instance_id": instance.id})
        else:
            [(total, lost)] = _fetch_prebuilt(connection, _WINDOW_TOTAL_AND_LOST,
                                              _window_params(instance.id, start_ms, end_ms))
        duration_index = sort_key == "duration" and total > WIDE_WINDOW and connection.dialect.name == "sqlite"
        page = _page(sort_key, sort_dir, duration_index)
        params = {"instance_id": instance.id, "start_ms": start_ms, "end_ms": end_ms, "limit": limit,
                  "offset": offset}
        rows = connection.execute(page.where(*filters), params) if filters else _fetch_prebuilt(connection, page, params)
        return int(total), [slowlog_item(r) for r in rows], int(lost)

    if not filters and offset + limit <= INLINE_MAX_ROWS:
        # Short: the total from the hourly counts, a page near the start of an index walk.
        return await read(session, query)
    # A filtered count or a deep page walks many rows: not on the event loop.
    return await session.run_sync(query)


async def harvest_status(session: AsyncSession, instance: Instance) -> list[dict]:
    """Per node: how far the harvester got, what it lost, why it last failed (extension endpoint)."""
    cursors = {c.replication_id: c for c in await session.scalars(
        select(SlowlogCursor).where(SlowlogCursor.instance_id == instance.id))}
    nodes = await session.scalars(select(Replication).where(Replication.instance_id == instance.id)
                                  .order_by(Replication.group_index, Replication.position))
    out = []
    for node in nodes:
        cursor = cursors.get(node.id)
        out.append({
            "replication_id": node.id, "replication_ip": node.host, "replication_port": node.port,
            "replication_role": node.role, "group_name": node.group_name,
            "run_id": cursor.run_id if cursor else None,
            "last_entry_id": cursor.last_id if cursor and cursor.last_id >= 0 else None,
            "harvested_entries": cursor.harvested_entries if cursor else 0,
            "lost_entries": cursor.lost_entries if cursor else 0,
            "last_harvest_at": cursor.last_harvest_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            if cursor and cursor.last_harvest_at else None,
            "last_error": cursor.last_error if cursor else None,
        })
    return out
