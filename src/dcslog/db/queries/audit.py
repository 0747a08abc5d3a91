"""Reads of the audit trail (``services/audit.py``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog.db.models import AuditRecord


async def audit_page(session: AsyncSession, project_id: str, *, offset: int, limit: int,
                     start: datetime | None = None, end: datetime | None = None, action: str | None = None,
                     instance_id: str | None = None, actor: str | None = None) -> tuple[int, list[AuditRecord]]:
    """The project's records matching the filters (each optional; times inclusive): how many, and
    one page, newest first. Session (an admin's occasional read, open-ended)."""
    where = [AuditRecord.project_id == project_id]
    if start is not None:
        where.append(AuditRecord.time >= start)
    if end is not None:
        where.append(AuditRecord.time <= end)
    if action is not None:
        where.append(AuditRecord.action == action)
    if instance_id is not None:
        where.append(AuditRecord.instance_id == instance_id)
    if actor is not None:
        where.append(AuditRecord.actor == actor)
    total = await session.scalar(select(func.count()).select_from(AuditRecord).where(*where)) or 0
    rows = await session.scalars(select(AuditRecord).where(*where)
                                 .order_by(AuditRecord.time.desc(), AuditRecord.id.desc())
                                 .offset(offset).limit(limit))
    return total, list(rows)


async def link_makers(session: AsyncSession, project_id: str, targets: set[str]) -> dict[str, tuple[str, str]]:
    """``{target: (actor, actor_type)}`` of the project's ``link.create`` records of ``targets``. Session."""
    if not targets:
        return {}
    rows = await session.execute(select(AuditRecord.target, AuditRecord.actor, AuditRecord.actor_type).where(
        AuditRecord.project_id == project_id, AuditRecord.action == "link.create", AuditRecord.target.in_(targets)))
    return {target: (actor, actor_type) for target, actor, actor_type in rows if target is not None}
