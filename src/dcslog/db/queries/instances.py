"""Instances and their nodes (replications)."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dcslog.db.inline import read
from dcslog.db.models import Instance, Replication
from dcslog.db.readcache import cached

GroupSizes = dict[str, dict[int, int]]  # per instance id: {group index: nodes in the group}


class InstancesPage(NamedTuple):
    total: int  # instances that match
    instances: list[Instance]  # one page of them, newest first
    group_sizes: GroupSizes  # of the page's instances


async def instance_in_project(session: AsyncSession, project_id: str, instance_id: str) -> Instance | None:
    """The instance, if it is the project's (another project's is None, as a missing one). Cached, inline."""
    return await cached(session, ("instance", project_id, instance_id), lambda: read(session, lambda s: s.scalar(
        select(Instance).where(Instance.id == instance_id, Instance.project_id == project_id))))


async def instance_by_id(session: AsyncSession, instance_id: str) -> Instance | None:
    """The instance, whatever its project. Session: the CLI changes what it loads."""
    return await session.get(Instance, instance_id)


async def instances(session: AsyncSession, project_id: str | None = None) -> list[Instance]:
    """Every instance (of one project), oldest first. Session: for the CLI, and the harvester."""
    query = select(Instance).order_by(Instance.created_at)
    if project_id:
        query = query.where(Instance.project_id == project_id)
    return list(await session.scalars(query))


async def instances_page(session: AsyncSession, project_id: str, *, offset: int, limit: int,
                         name: str | None = None, status: str | None = None) -> InstancesPage:
    """The project's instances whose name contains ``name`` and whose status is ``status`` (when
    given): how many, one page newest first, and the group sizes of those. One read of three
    statements, inline."""
    query = select(Instance).where(Instance.project_id == project_id)
    if name:
        query = query.where(Instance.name.contains(name, autoescape=True))
    if status:
        query = query.where(Instance.status == status)

    def page(s: Session) -> InstancesPage:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = list(s.scalars(query.order_by(Instance.created_at.desc(), Instance.id).offset(offset).limit(limit)))
        return InstancesPage(total, rows, _group_sizes(s, [row.id for row in rows]))
    return await read(session, page)


async def group_sizes(session: AsyncSession, instance_ids: list[str]) -> GroupSizes:
    """Per instance, the number of nodes in each of its groups (shards). Inline."""
    return await read(session, lambda s: _group_sizes(s, instance_ids))


def _group_sizes(s: Session, instance_ids: list[str]) -> GroupSizes:
    sizes: GroupSizes = {}
    if instance_ids:
        for instance_id, group_index, nodes in s.execute(
                select(Replication.instance_id, Replication.group_index, func.count())
                .where(Replication.instance_id.in_(instance_ids))
                .group_by(Replication.instance_id, Replication.group_index)):
            sizes.setdefault(instance_id, {})[group_index] = nodes
    return sizes


_NODES_IN_ORDER = (Replication.group_index, Replication.position)  # shards in order, master first


async def replications(session: AsyncSession, instance_id: str) -> list[Replication]:
    """The instance's nodes, group by group, master first, to read (detached when read inline). Inline."""
    return await read(session, lambda s: list(s.scalars(
        select(Replication).where(Replication.instance_id == instance_id).order_by(*_NODES_IN_ORDER))))


async def replications_for_update(session: AsyncSession, instance_id: str) -> list[Replication]:
    """The instance's nodes in the same order, loaded into ``session`` to be changed. Session."""
    return list(await session.scalars(
        select(Replication).where(Replication.instance_id == instance_id).order_by(*_NODES_IN_ORDER)))


async def nodes_at_hosts(session: AsyncSession, project_id: str,
                         hosts: set[str]) -> list[tuple[str, str, str, int]]:
    """(instance id, instance name, host, port) of the project's nodes on ``hosts`` whose address
    is confirmed, oldest instance first. Session."""
    rows = await session.execute(
        select(Instance.id, Instance.name, Replication.host, Replication.port)
        .join(Replication, Replication.instance_id == Instance.id)
        .where(Instance.project_id == project_id, Replication.address_error.is_(None), Replication.host.in_(hosts))
        .order_by(Instance.created_at, Instance.id))
    return [(instance_id, name, host, port) for instance_id, name, host, port in rows]
