"""Node state and events: what the harvester compares a round with, and the events endpoint's page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dcslog.db.inline import read
from dcslog.db.models import Event, NodeState, Replication


class EventsPage(NamedTuple):
    total: int  # events that match
    events: Sequence[Event]  # one page of them, newest first


async def node_state(session: AsyncSession, replication_id: str) -> NodeState | None:
    """The node's state as the last round left it (None: never observed). Session: read in the
    transaction that then records the next one."""
    return await session.get(NodeState, replication_id, populate_existing=True)


async def group_masters(session: AsyncSession, instance_id: str) -> list[tuple[str, str, int, NodeState | None]]:
    """(group name, address, group index, state) of every harvested node of the instance, to
    judge its status from. Session."""
    rows = await session.execute(
        select(Replication.group_name, Replication.host, Replication.port, Replication.group_index, NodeState)
        .outerjoin(NodeState, NodeState.replication_id == Replication.id)
        .where(Replication.instance_id == instance_id, Replication.address_error.is_(None))
        .order_by(Replication.group_index, Replication.position))
    return [(group, f"{host}:{port}", index, state) for group, host, port, index, state in rows]


async def events_page(session: AsyncSession, instance_id: str, *, start_ms: int, end_ms: int | None,
                      types: Sequence[str] | None, offset: int, limit: int) -> EventsPage:
    """The instance's events from ``start_ms`` (inclusive) to ``end_ms`` (excluded; None: no end)
    of ``types`` (None: all): how many, and one page newest first (ties: by node, then the order
    in which one change's events happened, both reversed). Inline: the time
    index bounds it, and events are few (a handful per node and incident)."""
    filters = [Event.instance_id == instance_id, Event.time_ms >= start_ms]
    if end_ms is not None:
        filters.append(Event.time_ms < end_ms)
    if types:
        filters.append(Event.type.in_(types))

    def page(s: Session) -> EventsPage:
        total = s.scalar(select(func.count()).select_from(Event).where(*filters)) or 0
        rows = list(s.scalars(select(Event).where(*filters).order_by(Event.time_ms.desc(), Event.replication_id.desc(),
                                                                    Event.seq.desc())
                              .offset(offset).limit(limit)))
        return EventsPage(int(total), rows)
    return await read(session, page)


async def runlog_positions(session: AsyncSession, replication_ids: list[str]) -> dict[str, str | None]:
    """{replication id: where its run log is read on for events} of the nodes observed before."""
    rows = await session.execute(select(NodeState.replication_id, NodeState.runlog_position)
                                 .where(NodeState.replication_id.in_(replication_ids)))
    return {rid: position for rid, position in rows}
