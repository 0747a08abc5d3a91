"""Slow-log top (SPEC §7, a dcslog extension): the slow log of a window grouped by fingerprint,
command or node, with count, total, max, average and p99 (``db/queries/slowlog_top.py``)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dcslog.db import queries
from dcslog.db.models import Instance

DEFAULT_WINDOW_MS = 3_600_000  # without start_time: the hour before end_time (as the records' default)


def milliseconds(micros: float) -> float:
    """Microseconds as milliseconds, to the microsecond (``12.345``)."""
    return round(micros / 1000, 3)


def utc_seconds(time_ms: int) -> str:
    """As ListSlowlog's ``start_time``: ``2020-06-19T07:06:07Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time_ms // 1000))


def top_item(group: queries.TopGroup) -> dict[str, Any]:
    return {
        "key": group.key,
        "count": group.entries,
        "total_ms": milliseconds(group.total_us),
        "max_ms": milliseconds(group.max_us),
        "avg_ms": milliseconds(group.total_us / group.entries),
        "p99_ms": milliseconds(group.p99_us),
        "first_time": utc_seconds(group.first_ms),
        "last_time": utc_seconds(group.last_ms),
        "sample_id": group.sample_id,
    }


def window(start_ms: int | None, end_ms: int | None, now_ms: int) -> tuple[int, int]:
    """The window a request means: ``end_ms`` defaults to now (or to ``start_ms``, if that is later),
    ``start_ms`` to ``DEFAULT_WINDOW_MS`` before the end."""
    if end_ms is None:
        end_ms = max(now_ms, start_ms or 0)
    return (end_ms - DEFAULT_WINDOW_MS if start_ms is None else start_ms), end_ms


async def slowlog_top(session: AsyncSession, instance: Instance, *, start_ms: int | None, end_ms: int | None,
                      group_by: str, sort_key: str, limit: int) -> dict[str, Any]:
    """The answer: how many groups the window has (``total_num``), the first ``limit`` of them by
    ``sort_key``, largest first (``groups``), and the window read (``start_time``, ``end_time``)."""
    start_ms, end_ms = window(start_ms, end_ms, int(time.time() * 1000))
    start_ms = max(start_ms, 0)
    page = await queries.slowlog_top(session, instance.id, start_ms=start_ms, end_ms=end_ms,
                                     group_by=group_by, sort_key=sort_key, limit=limit)
    return {"total_num": page.total, "groups": [top_item(group) for group in page.groups],
            "start_time": start_ms, "end_time": end_ms}
