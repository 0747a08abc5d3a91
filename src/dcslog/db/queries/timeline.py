"""The timeline's reads of the stored kinds: slow-log entries and events in the timeline's order, from a
position on (keyset paging: a page costs its rows, however deep it is)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dcslog.db.inline import read
from dcslog.db.models import Event, SlowlogEntry
from dcslog.db.queries.slowlog import PAGE_COLUMNS


def _bytewise(column: Any, dialect: str) -> Any:
    """Ids compared byte by byte, as Python compares the run-log records' node ids: PostgreSQL's
    default collation follows the locale, which need not."""
    return column.collate("C") if dialect == "postgresql" else column


async def timeline_slowlog(session: AsyncSession, instance_id: str, *, start_ms: int, end_ms: int,
                           after: tuple[int, str, int] | None, replication_ids: Sequence[str] | None,
                           limit: int) -> list[tuple[Any, ...]]:
    """Up to ``limit`` of the instance's slow-log entries with ``start_ms <= start time < end_ms``,
    strictly after ``after`` = (start time, replication id, id) when given, in that order; rows of
    ``PAGE_COLUMNS``. Inline without a node filter (the time index bounds it, limit ≤ 1000), else
    session (the filter may walk many rows of the index)."""
    def page(s: Session) -> list[tuple[Any, ...]]:
        replication_id = _bytewise(SlowlogEntry.replication_id, s.get_bind().dialect.name)
        filters: list[ColumnElement[bool]] = [SlowlogEntry.instance_id == instance_id,
                                              SlowlogEntry.start_time_ms >= start_ms,
                                              SlowlogEntry.start_time_ms < end_ms]
        if after is not None:
            filters.append(tuple_(SlowlogEntry.start_time_ms, replication_id, SlowlogEntry.id) > tuple_(*after))
        if replication_ids:
            filters.append(SlowlogEntry.replication_id.in_(replication_ids))
        statement = (select(*PAGE_COLUMNS).where(*filters)
                     .order_by(SlowlogEntry.start_time_ms, replication_id, SlowlogEntry.id).limit(limit))
        return [tuple(row) for row in s.execute(statement)]
    if replication_ids:
        return await session.run_sync(page)
    return await read(session, page)


async def timeline_events(session: AsyncSession, instance_id: str, *, start_ms: int, end_ms: int,
                          after: tuple[int, str, int, str] | None, replication_ids: Sequence[str] | None,
                          limit: int) -> list[Event]:
    """Up to ``limit`` of the instance's events with ``start_ms <= time < end_ms``, strictly after
    ``after`` = (time, replication id, seq, id) when given, in that order. Inline: the time index
    bounds it, and events are few."""
    def page(s: Session) -> list[Event]:
        dialect = s.get_bind().dialect.name
        replication_id, event_id = _bytewise(Event.replication_id, dialect), _bytewise(Event.id, dialect)
        filters: list[ColumnElement[bool]] = [Event.instance_id == instance_id, Event.time_ms >= start_ms,
                                              Event.time_ms < end_ms]
        if after is not None:
            filters.append(tuple_(Event.time_ms, replication_id, Event.seq, event_id) > tuple_(*after))
        if replication_ids:
            filters.append(Event.replication_id.in_(replication_ids))
        return list(s.scalars(select(Event).where(*filters)
                              .order_by(Event.time_ms, replication_id, Event.seq, event_id).limit(limit)))
    return await read(session, page)
