"""The events endpoint's read path: what ``services/node_state.py`` recorded, as the API shows it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from dcslog.db import queries
from dcslog.db.models import Event, Instance


def local_time(time_ms: int, zone: ZoneInfo) -> str:
    """ISO 8601 in the instance's time zone, milliseconds: ``2026-12-06T08:01:02.345+01:00`` (as records)."""
    moment = datetime.fromtimestamp(time_ms // 1000, UTC).replace(microsecond=time_ms % 1000 * 1000)
    return moment.astimezone(zone).isoformat(timespec="milliseconds")


def event_item(event: Event, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "time": local_time(event.time_ms, zone),
        "replication_id": event.replication_id,
        "replication_ip": event.replication_ip,
        "group_name": event.group_name,
        "details": json.loads(event.details),
        # Extensions
        "time_ms": event.time_ms,
        "replication_port": event.replication_port,
    }


async def list_events(session: AsyncSession, instance: Instance, *, start_ms: int, end_ms: int | None,
                      types: Sequence[str] | None, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """(how many events match, one page of them newest first)."""
    total, rows = await queries.events_page(session, instance.id, start_ms=start_ms, end_ms=end_ms, types=types,
                                            offset=offset, limit=limit)
    zone = ZoneInfo(instance.timezone)
    return total, [event_item(row, zone) for row in rows]
