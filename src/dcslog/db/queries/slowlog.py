"""The slow log: ListSlowlog's page, and what the harvester knows of each node."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, ColumnElement, ScalarSelect, Select, bindparam, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Session

from dcslog.db.inline import read
from dcslog.db.models import HOUR_MS, Replication, SlowlogCursor, SlowlogEntry, SlowlogHourCount
from dcslog.db.prebuilt import fetch_prebuilt

# Above this many entries in the window, the duration sort walks the duration index (see _page).
WIDE_WINDOW = 5_000
# Pages ending within this many rows of the start are read on the event loop (db/inline.py).
INLINE_MAX_ROWS = 1_000
# The columns of a page's rows, in this order (plain tuples: a page's item builder unpacks them by position).
PAGE_COLUMNS = (SlowlogEntry.id, SlowlogEntry.command, SlowlogEntry.start_time_ms, SlowlogEntry.duration_us,
                SlowlogEntry.shard_name, SlowlogEntry.node_role, SlowlogEntry.client_addr, SlowlogEntry.replication_id,
                SlowlogEntry.node_ip, SlowlogEntry.node_port, SlowlogEntry.client_name, SlowlogEntry.fingerprint)
SORT_COLUMNS = {"start_time": SlowlogEntry.start_time_ms, "duration": SlowlogEntry.duration_us}


class SlowlogPage(NamedTuple):
    total: int  # entries that match
    rows: Sequence[tuple[Any, ...]]  # one page of them, PAGE_COLUMNS each
    lost: int  # entries the instance's nodes lost before a harvest saw them, so far


# The statements of the short reads are built once: building and hashing a SQLAlchemy
# statement costs several times what SQLite takes to answer it (bench/slowlog.py).
_INSTANCE: BindParameter[str] = bindparam("instance_id")


def _entries_between(low: str, high: str) -> ScalarSelect[int]:
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


def _window_params(instance_id: str, start_ms: int, end_ms: int) -> dict[str, Any]:
    first_hour = start_ms + (-start_ms) % HOUR_MS  # first hour that starts inside the window
    end_hour = (end_ms + 1) - (end_ms + 1) % HOUR_MS  # whole hours end here
    if first_hour >= end_hour:  # no whole hour: one edge is the window, the other empty
        edges = (start_ms, end_ms, 1, 0)
    else:
        edges = (start_ms, first_hour - 1, end_hour, end_ms)
    return {"instance_id": instance_id, "first_hour": first_hour, "end_hour": end_hour,
            **dict(zip(("low_1", "high_1", "low_2", "high_2"), edges, strict=True))}


@functools.cache
def _page(sort_key: str, sort_dir: str, duration_index: bool) -> Select[*tuple[Any, ...]]:
    start: InstrumentedAttribute[int] | ColumnElement[int] = SlowlogEntry.start_time_ms
    if duration_index:
        # SQLite (no STAT4) guesses a two-sided time range is narrow, picks the time
        # index and sorts every row in it. For a wide window, walking the duration
        # index in order and filtering on time is what is cheap: "+ 0" takes the
        # time column out of index selection (bench/slowlog.py: 230 ms → <1 ms at 1 M rows).
        start = start + literal_column("0")
    column = SORT_COLUMNS[sort_key]
    order = (column.desc(), SlowlogEntry.id.desc()) if sort_dir == "desc" else (column.asc(), SlowlogEntry.id.asc())
    return (select(*PAGE_COLUMNS)
            .where(SlowlogEntry.instance_id == _INSTANCE, start.between(bindparam("start_ms"), bindparam("end_ms")))
            .order_by(*order).limit(bindparam("limit")).offset(bindparam("offset")))


async def slowlog_page(session: AsyncSession, instance_id: str, *, start_ms: int, end_ms: int, offset: int,
                       limit: int, sort_key: str, sort_dir: str, replication_id: str | None = None,
                       role: str | None = None, command_name: str | None = None,
                       min_duration_us: int | None = None) -> SlowlogPage:
    """The instance's entries that started between ``start_ms`` and ``end_ms`` (inclusive) and
    match the filters given: how many, one page sorted by ``sort_key`` (``start_time`` or
    ``duration``, ties by id) in ``sort_dir``, and the nodes' losses.

    Unfiltered, the total comes from the hourly counts, and a page within the first
    ``INLINE_MAX_ROWS`` rows is read inline with prebuilt statements on the driver's cursor
    (db/prebuilt.py): ≈2× the SQL floor (bench/slowlog.py). A filtered count, or a deep page,
    walks many rows: through the session, off the event loop."""
    filters = []
    if replication_id:
        filters.append(SlowlogEntry.replication_id == replication_id)
    if role:
        filters.append(SlowlogEntry.node_role == role)
    if command_name:
        filters.append(SlowlogEntry.command_name == command_name)
    if min_duration_us is not None:
        filters.append(SlowlogEntry.duration_us >= min_duration_us)

    def query(s: Session) -> SlowlogPage:
        connection = s.connection()
        if filters:
            total = connection.scalar(select(func.count()).select_from(SlowlogEntry).where(
                SlowlogEntry.instance_id == instance_id, SlowlogEntry.start_time_ms.between(start_ms, end_ms),
                *filters)) or 0
            lost = connection.scalar(_LOST, {"instance_id": instance_id}) or 0
        else:
            [(total, lost)] = fetch_prebuilt(connection, _WINDOW_TOTAL_AND_LOST,
                                             _window_params(instance_id, start_ms, end_ms))
        duration_index = sort_key == "duration" and total > WIDE_WINDOW and connection.dialect.name == "sqlite"
        page = _page(sort_key, sort_dir, duration_index)
        params = {"instance_id": instance_id, "start_ms": start_ms, "end_ms": end_ms, "limit": limit,
                  "offset": offset}
        rows = list(connection.execute(page.where(*filters), params).all()) if filters \
            else fetch_prebuilt(connection, page, params)
        return SlowlogPage(int(total), rows, int(lost))

    if not filters and offset + limit <= INLINE_MAX_ROWS:
        # Short: the total from the hourly counts, a page near the start of an index walk.
        return await read(session, query)
    return await session.run_sync(query)


async def harvest_status(session: AsyncSession, instance_id: str) -> list[tuple[Replication, SlowlogCursor | None]]:
    """The instance's nodes, group by group, master first, each with its harvest cursor (None: not
    harvested yet). Session."""
    cursors = {c.replication_id: c for c in await session.scalars(
        select(SlowlogCursor).where(SlowlogCursor.instance_id == instance_id))}
    nodes = await session.scalars(select(Replication).where(Replication.instance_id == instance_id)
                                  .order_by(Replication.group_index, Replication.position))
    return [(node, cursors.get(node.id)) for node in nodes]


async def is_node_of(session: AsyncSession, instance_id: str, replication_id: str) -> bool:
    """Whether the instance has a node of that replication id. Session."""
    return await session.scalar(select(Replication.id).where(
        Replication.id == replication_id, Replication.instance_id == instance_id)) is not None


async def harvestable_nodes(session: AsyncSession, instance_id: str) -> list[Replication]:
    """The instance's nodes whose address is confirmed (another node may answer at the others). Session:
    read in the transaction that then claims their rounds."""
    return list(await session.scalars(select(Replication).where(Replication.instance_id == instance_id,
                                                                Replication.address_error.is_(None))))


async def harvest_cursors(session: AsyncSession, replication_ids: set[str]) -> dict[str, SlowlogCursor]:
    """The harvest cursors of those nodes, by replication id. Session."""
    return {c.replication_id: c for c in await session.scalars(
        select(SlowlogCursor).where(SlowlogCursor.replication_id.in_(replication_ids)))}
