"""Slow-log top: the instance's slow entries in a window, grouped by fingerprint, command or node.

Whole hours of the window come from the hourly rollups (``SlowlogHourGroup``: count, total, max,
first and last start per hour, node and command shape); the partial hours at its two edges are
aggregated from the entries themselves, so every count, total, max, first and last is exact for
any window. The p99 and the sample of each group returned are read from the entries too, on
the group's own index (``ix_slowlog_entries_{fingerprint,command,node}_duration``), slowest
first, with the window checked inside the index.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    bindparam,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Session

from dcslog.db.models import HOUR_MS, SlowlogEntry, SlowlogHourGroup
from dcslog.db.prebuilt import fetch_prebuilt

GROUP_BY = ("fingerprint", "command", "node")
SORT_KEYS = ("total", "count", "max")
_ENTRY_KEYS: dict[str, InstrumentedAttribute[str]] = {
    "fingerprint": SlowlogEntry.fingerprint, "command": SlowlogEntry.command_name, "node": SlowlogEntry.replication_id}
_ROLLUP_KEYS: dict[str, InstrumentedAttribute[str]] = {
    "fingerprint": SlowlogHourGroup.fingerprint, "command": SlowlogHourGroup.command_name,
    "node": SlowlogHourGroup.replication_id}
_INSTANCE: BindParameter[str] = bindparam("instance_id")


class TopGroup(NamedTuple):
    key: str
    entries: int
    total_us: int
    max_us: int
    first_ms: int
    last_ms: int
    p99_us: int  # nearest rank: the smallest duration at least 99 % of the group's entries do not exceed
    sample_id: int  # the group's slowest entry in the window (ties: the highest id)


class TopPage(NamedTuple):
    total: int  # groups in the window
    groups: Sequence[TopGroup]


def p99_offset(count: int) -> int:
    """How many of ``count`` durations, slowest first, come before the nearest-rank p99: it is the
    ceil(0.99 × count)-th smallest, in integers (no float rounding)."""
    return count - (99 * count + 99) // 100


def _edge(key: InstrumentedAttribute[str], low: str, high: str) -> Select[*tuple[Any, ...]]:
    entry = SlowlogEntry
    return (select(key.label("key"), func.count().label("n"), func.sum(entry.duration_us).label("total"),
                   func.max(entry.duration_us).label("top"), func.min(entry.start_time_ms).label("first"),
                   func.max(entry.start_time_ms).label("last"))
            .where(entry.instance_id == _INSTANCE, entry.start_time_ms.between(bindparam(low), bindparam(high)))
            .group_by(key))


@functools.cache
def _groups(group_by: str, sort_key: str) -> Select[*tuple[Any, ...]]:
    """One page of groups, each with the number of groups in the window (a window count over the groups)."""
    rollup = SlowlogHourGroup
    hours = (select(_ROLLUP_KEYS[group_by].label("key"), rollup.entries.label("n"), rollup.total_us.label("total"),
                    rollup.max_us.label("top"), rollup.first_ms.label("first"), rollup.last_ms.label("last"))
             .where(rollup.instance_id == _INSTANCE, rollup.hour_ms >= bindparam("first_hour"),
                    rollup.hour_ms < bindparam("end_hour")))
    key = _ENTRY_KEYS[group_by]
    parts = union_all(hours, _edge(key, "low_1", "high_1"), _edge(key, "low_2", "high_2")).subquery()
    n, total, top = func.sum(parts.c.n), func.sum(parts.c.total), func.max(parts.c.top)
    order: ColumnElement[Any] = {"count": n, "total": total, "max": top}[sort_key]
    return (select(parts.c.key, n, total, top, func.min(parts.c.first), func.max(parts.c.last),
                   func.count().over())
            .group_by(parts.c.key).order_by(order.desc(), parts.c.key).limit(bindparam("limit")))


@functools.cache
def _tail(group_by: str) -> Select[*tuple[Any, ...]]:
    """The group's slowest entry in the window and the duration ``offset`` places below the slowest.
    ``start_time_ms + 0``: the time column out of index selection, so that both walk the group's
    duration index (the window checked in it) rather than sort the window's rows."""
    entry, key = SlowlogEntry, _ENTRY_KEYS[group_by]
    where = (entry.instance_id == _INSTANCE, key == bindparam("key"),
             (entry.start_time_ms + literal_column("0")).between(bindparam("start_ms"), bindparam("end_ms")))
    slowest = select(entry.id).where(*where).order_by(entry.duration_us.desc(), entry.id.desc()).limit(1)
    at_rank = (select(entry.duration_us).where(*where).order_by(entry.duration_us.desc())
               .limit(1).offset(bindparam("offset")))
    return select(slowest.scalar_subquery(), at_rank.scalar_subquery())


def window_params(start_ms: int, end_ms: int) -> dict[str, int]:
    """The window [start_ms, end_ms] (both included) as whole hours [first_hour, end_hour) and the
    two partial edges [low_1, high_1] and [low_2, high_2] (an edge may be empty: low > high)."""
    first_hour = start_ms + (-start_ms) % HOUR_MS  # the first hour that starts inside the window
    end_hour = (end_ms + 1) - (end_ms + 1) % HOUR_MS  # whole hours end here
    if first_hour >= end_hour:  # no whole hour: one edge is the window, the other empty
        return {"first_hour": 0, "end_hour": 0, "low_1": start_ms, "high_1": end_ms, "low_2": 1, "high_2": 0}
    return {"first_hour": first_hour, "end_hour": end_hour, "low_1": start_ms, "high_1": first_hour - 1,
            "low_2": end_hour, "high_2": end_ms}


async def slowlog_top(session: AsyncSession, instance_id: str, *, start_ms: int, end_ms: int, group_by: str,
                      sort_key: str, limit: int) -> TopPage:
    """The instance's entries that started between ``start_ms`` and ``end_ms`` (inclusive),
    grouped by ``group_by``: how many groups, and the first ``limit`` by ``sort_key`` (largest
    first, ties by key). Session (off the event loop): it aggregates up to a row per hour, node
    and command shape of the window, and walks each returned group's slowest 1 %."""
    def query(s: Session) -> TopPage:
        connection = s.connection()
        params: dict[str, Any] = {"instance_id": instance_id, "limit": limit, **window_params(start_ms, end_ms)}
        rows = fetch_prebuilt(connection, _groups(group_by, sort_key), params)
        tail = _tail(group_by)
        groups = []
        for key, n, total, top, first, last, _ in rows:
            entries = int(n)
            [(sample_id, p99)] = fetch_prebuilt(connection, tail, {
                "instance_id": instance_id, "key": key, "start_ms": start_ms, "end_ms": end_ms,
                "offset": p99_offset(entries)})
            if sample_id is None or p99 is None:  # the retention sweep took entries between the two reads
                continue
            groups.append(TopGroup(key, entries, int(total), int(top), int(first), int(last), int(p99), int(sample_id)))
        return TopPage(int(rows[0][-1]) if rows else 0, groups)
    return await session.run_sync(query)
