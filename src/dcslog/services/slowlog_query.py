"""The slow log's read path: DCS ListSlowlog over what the harvester stored (``services/slowlog_harvest.py``),
and the harvester's per-node status (an extension)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.db import queries
from dcslog.db.models import Instance


def duration_ms(duration_us: int) -> str:
    """Milliseconds as DCS writes them: ``"12"``, ``"0.153"``, ``"1.5"``."""
    whole, micros = divmod(duration_us, 1000)
    return f"{whole}.{micros:03d}".rstrip("0").rstrip(".") if micros else str(whole)


def slowlog_item(row: tuple[Any, ...]) -> dict[str, Any]:
    """A SlowlogItem from a row of ``queries.slowlog_page`` (its PAGE_COLUMNS, unpacked by position: a
    page builds ten of these per request, and a Row's attribute look-ups cost more than the rest of it)."""
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
                       min_duration_us: int | None = None) -> tuple[int, list[dict[str, Any]], int]:
    """(total, page, lost entries of the instance's nodes so far). ``command`` is a command name,
    in any case."""
    total, rows, lost = await queries.slowlog_page(
        session, instance.id, start_ms=start_ms, end_ms=end_ms, offset=offset, limit=limit, sort_key=sort_key,
        sort_dir=sort_dir, replication_id=replication_id, role=role,
        command_name=command.upper() if command else None, min_duration_us=min_duration_us)
    return total, [slowlog_item(row) for row in rows], lost


async def check_node(session: AsyncSession, instance: Instance, replication_id: str) -> None:
    """A ``replication_id`` filter must name a node of the instance (400 otherwise, saying where the ids are)."""
    if not await queries.is_node_of(session, instance.id, replication_id):
        raise errors.InvalidParameter("replication_id", "No node of this instance has that replication_id: "
                                      "ListGroupReplicationInfo (GET …/instance/{instance_id}/groups) lists them.")


async def harvest_status(session: AsyncSession, instance: Instance) -> list[dict[str, Any]]:
    """Per node: how far the harvester got, what it lost, why it last failed (extension endpoint)."""
    out = []
    for node, cursor in await queries.harvest_status(session, instance.id):
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
