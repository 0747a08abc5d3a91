"""Registering Redis deployments and describing them the way DCS does (ShowInstance, ListGroupReplicationInfo)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.db import queries
from dcslog.db.models import Instance, LogFile, NodeState, Replication, SlowlogCursor, Task
from dcslog.keys import Keyring
from dcslog.redis.addresses import node_entry
from dcslog.redis.connection import DiscoveryError
from dcslog.redis.topology import Topology, discover
from dcslog.runlog import journal
from dcslog.services import audit
from dcslog.services.audit import Actor
from dcslog.services.common import dcs_time, derived_id, get_instance, new_id, utcnow
from dcslog.storage import ObjectStore

MB = 1024 * 1024
GB = 1024 * MB


class ImportFailed(errors.DcsError):
    """The deployment could not be imported (bad URL, unreachable, bad time zone)."""


class AlreadyImported(ImportFailed):
    """The deployment is already an instance of the project (a second import needs ``force``)."""

    status = 409


def _check_redis_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ImportFailed("The Redis URL must look like redis://[user:pass@]host:port or rediss://…")


def _check_timezone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImportFailed(f"Unknown time zone {name!r}: use an IANA name such as UTC or Europe/Berlin.") from None


def _node_key(address: str) -> str:
    """``HOST:PORT`` as dcslog keys nodes: ``[::1]:6379`` → ``::1:6379`` (as ``f"{host}:{port}"``)."""
    host, _, port = address.rpartition(":")
    return f"{host.removeprefix('[').removesuffix(']')}:{port}"


def _journal_sources(overrides: dict[str, str], journals: dict[str, str],
                     journal_path: str | None) -> dict[str, str]:
    """``--journal`` as log sources, refusing a node given a --log-file too."""
    if journal_path and not journals:
        raise ImportFailed("--journal-path names the journal of the nodes given with --journal: give those.")
    if journal_path and not journal_path.startswith("/"):
        raise ImportFailed(f"--journal-path {journal_path!r} must be an absolute path (on the node's host).")
    sources = {}
    for address, unit in journals.items():
        key = _node_key(address)
        if key in overrides:
            raise ImportFailed(f"{address} is given both --log-file and --journal: its log is in one of them.")
        try:
            sources[key] = journal.render(unit, journal_path)
        except ValueError as exc:
            raise ImportFailed(f"--journal {address}={unit}: {exc}.") from None
    return sources


def _check_node_addresses(topology, per_node: dict[str, str], option: str) -> None:
    """A per-node option for a node discovery did not find would be kept and silently never used."""
    known = {f"{n.host}:{n.port}" for n in topology.nodes}
    unknown = sorted(set(per_node) - known)
    if unknown:
        raise ImportFailed(f"{option} names {', '.join(unknown)}, which is not a node of this deployment "
                           f"(nodes: {', '.join(sorted(f'{n.host}:{n.port}' for n in topology.nodes))}).")


def _replica_addresses(given: dict[str, str] | None) -> dict[str, str]:
    """``--replica-address`` values, keyed and valued ``host:port`` as dcslog keys nodes."""
    out = {}
    for reported, real in (given or {}).items():
        host, _, port = real.rpartition(":")
        if not host or not port.isdigit():
            raise ImportFailed(f"--replica-address {reported}={real}: the real address must be HOST:PORT.")
        out[_node_key(reported)] = _node_key(real)
    return out


def _check_reported_replicas(topology: Topology, given: dict[str, str]) -> None:
    """A ``--replica-address`` for an address no primary reports would be kept and never used."""
    reported = {n.reported_address or n.address for n in topology.nodes if n.role == "slave"}
    unknown = sorted(set(given) - reported)
    if unknown:
        raise ImportFailed(f"--replica-address names {', '.join(unknown)}, which the primary does not report for "
                           f"a replica (it reports: {', '.join(sorted(reported)) or 'none'}). It is for a "
                           "primary/replica deployment whose primary lists a replica under an address that does "
                           "not reach it.")


async def _check_not_imported(session: AsyncSession, project_id: str, topology: Topology) -> None:
    """Refuse a deployment already imported in the project: one with a node at an address of this one
    (a confirmed address: what a primary reports for a replica may be any node's)."""
    addresses = {n.address for n in topology.nodes if not n.address_error}
    rows = await queries.nodes_at_hosts(session, project_id, {address.rpartition(":")[0] for address in addresses})
    shared: dict[tuple[str, str], list[str]] = {}
    for instance_id, name, host, port in rows:
        if f"{host}:{port}" in addresses:
            shared.setdefault((instance_id, name), []).append(f"{host}:{port}")
    if shared:
        (instance_id, name), nodes = next(iter(shared.items()))
        others = f" (and {len(shared) - 1} more)" if len(shared) > 1 else ""
        raise AlreadyImported(
            f"This deployment is already imported in project {project_id}: instance {instance_id} ({name!r}){others} "
            f"has {'its nodes' if len(nodes) > 1 else 'its node'} {', '.join(sorted(nodes))}. Run `dcslog instances "
            f"refresh {instance_id}` to re-discover it, or import it again with --force to make another instance.")


async def import_instance(session: AsyncSession, keyring: Keyring, actor: Actor, *, project_id: str, name: str,
                          redis_url: str,
                          log_file_overrides: dict[str, str] | None = None, timezone: str = "UTC",
                          description: str = "", redis_timeout: float = 5.0, agents: dict[str, str] | None = None,
                          agent_key: str | None = None, replica_addresses: dict[str, str] | None = None,
                          force: bool = False, journals: dict[str, str] | None = None,
                          journal_path: str | None = None) -> Instance:
    """Connect, discover the topology and register it. Fails (nothing stored) if Redis cannot be reached,
    or if a node of it belongs to an instance of the project already (unless ``force``).

    ``journals`` maps a node to the systemd unit whose journal holds its log (``--journal``), read
    from the journal at ``journal_path`` (a directory or file) instead of the host's when given;
    it is stored as the node's log source, ``journal:UNIT`` (``runlog.journal``)."""
    if not name.strip():
        raise ImportFailed("The instance name must not be empty.")
    _check_redis_url(redis_url)
    _check_timezone(timezone)
    overrides = {_node_key(address): path for address, path in (log_file_overrides or {}).items()}
    overrides.update(_journal_sources(overrides, journals or {}, journal_path))
    agents = {_node_key(address): url for address, url in (agents or {}).items()}
    if agents and not agent_key:
        raise ImportFailed("--agent needs --agent-key: the key the agents were started with.")
    for address, agent_url in agents.items():
        if urlsplit(agent_url).scheme not in ("http", "https"):
            raise ImportFailed(f"Agent URL for {address} must be http:// or https://.")
    replica_addresses = _replica_addresses(replica_addresses)
    try:
        topology = await discover(redis_url, overrides, timeout=redis_timeout, replica_addresses=replica_addresses)
    except DiscoveryError as exc:
        raise ImportFailed(f"Cannot import: {exc}") from None
    _check_reported_replicas(topology, replica_addresses)
    _check_node_addresses(topology, agents, "--agent")
    _check_node_addresses(topology, {k: v for k, v in overrides.items() if journal.parse(v) is None}, "--log-file")
    _check_node_addresses(topology, {k: v for k, v in overrides.items() if journal.parse(v)}, "--journal")
    if not force:
        await _check_not_imported(session, project_id, topology)
    parts = urlsplit(redis_url)
    now = utcnow()
    instance = Instance(
        id=new_id(), project_id=project_id, name=name, description=description,
        redis_url_encrypted=keyring.encrypt(redis_url), log_file_overrides=json.dumps(overrides),
        agents=json.dumps(agents), agent_key_encrypted=keyring.encrypt(agent_key) if agent_key else None,
        replica_addresses=json.dumps(replica_addresses),
        timezone=timezone, access_user=parts.username or "", no_password_access=parts.password is None,
        enable_ssl=parts.scheme == "rediss", created_at=now, updated_at=now,
    )
    _apply_topology(instance, topology)
    session.add(instance)
    await session.flush()
    await _store_replications(session, instance, topology)
    audit.record(session, actor, "instance.import", project_id=project_id, instance_id=instance.id, target=name)
    await session.commit()
    return instance


async def refresh_instance(session: AsyncSession, keyring: Keyring, actor: Actor, instance: Instance,
                           redis_timeout: float = 5.0, prune: bool = False, timezone: str | None = None,
                           replica_addresses: dict[str, str] | None = None) -> Instance:
    """Re-discover. Ids of nodes already known stay the same; an unreachable deployment is marked ERROR.

    Nodes the discovery no longer finds stay listed as Inactive, unless ``prune``
    (the operator says they are gone for good: moved, or decommissioned), or they were
    listed only under an address where this replica never answered, with no log file known
    (nothing of them to keep: typically the address a primary reported before the replica
    got its replica-announce-ip). ``timezone`` changes the instance's zone: files already
    collected keep their day. ``replica_addresses`` are added to those given at import."""
    if timezone is not None:
        _check_timezone(timezone)
        instance.timezone = timezone
    given = _replica_addresses(replica_addresses)
    addresses = {**json.loads(instance.replica_addresses), **given}
    try:
        topology = await discover(keyring.decrypt(instance.redis_url_encrypted),
                                  json.loads(instance.log_file_overrides), timeout=redis_timeout,
                                  replica_addresses=addresses)
    except DiscoveryError as exc:
        instance.status, instance.last_error = "ERROR", str(exc)
        for replication in await queries.replications_for_update(session, instance.id):
            replication.status = "Inactive"
        outcome = audit.FAILED  # it ran, and changed the instance's state: to ERROR
    else:
        outcome = audit.SUCCEEDED
        _check_reported_replicas(topology, given)
        instance.replica_addresses = json.dumps(addresses)
        _apply_topology(instance, topology)
        await _store_replications(session, instance, topology, prune)
    instance.updated_at = utcnow()
    audit.record(session, actor, "instance.refresh", project_id=instance.project_id, instance_id=instance.id,
                 target=instance.name, outcome=outcome)
    await session.commit()
    return instance


async def remove_instance(session: AsyncSession, store: ObjectStore, actor: Actor, instance: Instance) -> int:
    """Delete the instance's files, then the instance and all its records; returns the files deleted.
    Bytes first: should a delete fail, the records stay and the removal can be run again (the
    retention sweep would never find bytes of an instance the database no longer knows)."""
    keys = await queries.object_keys(session, instance.id)
    for key in keys:
        await asyncio.to_thread(store.delete, key)
    for model in (LogFile, Task, Replication):
        await session.execute(delete(model).where(model.instance_id == instance.id))
    await session.delete(instance)
    audit.record(session, actor, "instance.remove", project_id=instance.project_id, instance_id=instance.id,
                 target=instance.name)
    await session.commit()
    return len(keys)


def _apply_topology(instance: Instance, topology: Topology) -> None:
    instance.status = "RUNNING"
    instance.last_error = None
    instance.cache_mode = topology.cache_mode
    instance.engine_version = topology.engine_version
    instance.ip, instance.port = topology.primary_host, topology.primary_port
    instance.max_memory_bytes = topology.max_memory_bytes
    instance.used_memory_bytes = topology.used_memory_bytes
    instance.db_number = topology.db_number


async def _store_replications(session: AsyncSession, instance: Instance, topology: Topology,
                              prune: bool = False) -> None:
    existing = {r.id: r for r in await queries.replications_for_update(session, instance.id)}
    seen = set()
    for group_index, group in enumerate(topology.groups):
        group_id = derived_id(instance.id, "group", group.shard_key)
        for position, node in enumerate(group.nodes):
            address = f"{node.host}:{node.port}"
            replication_id = derived_id(instance.id, "replication", address)
            row = existing.get(replication_id)
            # A node known here before that answers nothing now is down, not misaddressed: it keeps
            # its confirmed address (the harvester goes on trying it) and its log file (a crashed
            # node's log is the one people want).
            silent = row is not None and node.status == "Inactive" and not node.foreign
            if row is None:
                row = Replication(id=replication_id, instance_id=instance.id, host=node.host, port=node.port,
                                  node_id=derived_id(instance.id, "node", address).replace("-", ""))
                session.add(row)
            row.group_id, row.group_name, row.group_index = group_id, f"group-{group_index}", group_index
            row.position, row.role, row.status = position, node.role, node.status
            if not (silent and node.log_file is None and row.log_file):
                row.log_file, row.log_file_error = node.log_file, node.log_file_error
            if not (silent and row.address_error is None):
                row.address_error = node.address_error
            seen.add(replication_id)
    # A primary forgets a replica the moment its connection drops, so a node
    # missing from a new discovery is most often a dead one: keep it, Inactive,
    # so its run log (the interesting one) can still be collected. One only ever
    # listed at an address that did not reach it, with no log file known, leaves
    # nothing to collect: it was a wrong address, now corrected.
    for replication_id, row in existing.items():
        if replication_id not in seen:
            if prune or (row.address_error is not None and row.log_file is None):
                await session.delete(row)
                # Its slow-log cursor and live state too, so the metrics stop reporting a node that is
                # gone (entries and events stay).
                for model in (SlowlogCursor, NodeState):
                    await session.execute(delete(model).where(model.replication_id == replication_id))
            else:
                row.status = "Inactive"
    await session.flush()


async def list_instances(session: AsyncSession, project_id: str, *, offset: int = 0, limit: int = 10,
                         name: str | None = None, status: str | None = None) -> tuple[int, list[dict]]:
    """(how many match, the ShowInstance objects of one page), newest first."""
    total, rows, sizes = await queries.instances_page(session, project_id, offset=offset, limit=limit, name=name,
                                                      status=status)
    return total, [_view(row, sizes.get(row.id, {})) for row in rows]


async def describe_instances(session: AsyncSession, project_id: str | None = None) -> list[dict]:
    """Every instance (of one project, else of all), oldest first, as ShowInstance objects: `dcslog
    instances list`."""
    rows = await queries.instances(session, project_id)
    sizes = await queries.group_sizes(session, [row.id for row in rows])
    return [_view(row, sizes.get(row.id, {})) for row in rows]


async def find_instance(session: AsyncSession, instance_id: str, project_id: str | None = None) -> Instance:
    """The instance, within the project if one is given (another project's is not found), else in any."""
    if project_id:
        return await get_instance(session, project_id, instance_id)
    instance = await queries.instance_by_id(session, instance_id)
    if instance is None:
        raise errors.InstanceNotFound()
    return instance


async def instance_view(session: AsyncSession, instance: Instance) -> dict:
    """The DCS ShowInstance object (the subset in SPEC §2), plus documented extensions."""
    sizes = await queries.group_sizes(session, [instance.id])
    return _view(instance, sizes.get(instance.id, {}))


def _view(instance: Instance, group_sizes: dict[int, int]) -> dict:
    per_group = max(group_sizes.values(), default=1)
    return {
        "instance_id": instance.id,
        "name": instance.name,
        "engine": "Redis",
        "engine_version": instance.engine_version,
        "status": instance.status,
        "ip": instance.ip,
        "port": instance.port,
        "domain_name": instance.ip,
        "cache_mode": instance.cache_mode,
        "max_memory": instance.max_memory_bytes // MB,
        "used_memory": instance.used_memory_bytes // MB,
        "capacity": instance.max_memory_bytes // GB,
        "capacity_minor": f"{instance.max_memory_bytes / GB:.2f}".rstrip("0").rstrip("."),
        "replica_count": per_group,
        "sharding_count": len(group_sizes),
        "description": instance.description,
        "created_at": dcs_time(instance.created_at),
        "updated_at": dcs_time(instance.updated_at),
        "project_id": instance.project_id,
        "access_user": instance.access_user,
        "no_password_access": "true" if instance.no_password_access else "false",
        "enable_ssl": instance.enable_ssl,
        "support_slow_log_flag": "true",
        "db_number": instance.db_number,
        # Extensions
        "timezone": instance.timezone,
        "error_msg": instance.last_error,
    }


async def group_list(session: AsyncSession, instance: Instance) -> list[dict]:
    """DCS ListGroupReplicationInfo ``group_list``: shards in a stable order, master first."""
    groups: dict[int, dict] = {}
    for r in await queries.replications(session, instance.id):
        group = groups.setdefault(r.group_index, {
            "group_id": r.group_id, "group_name": r.group_name, "replication_list": []})
        group["replication_list"].append({
            "replication_id": r.id,
            "replication_role": r.role,
            "replication_ip": r.host,
            "is_replication": False,
            "node_id": r.node_id,
            "status": r.status,
            "az_code": "local",
            "dimensions": [
                {"name": "dcs_instance_id", "value": instance.id},
                {"name": "dcs_cluster_redis_node", "value": r.node_id},
            ],
            # Extensions
            "replication_port": r.port,
            "agent": node_entry(json.loads(instance.agents), r.host, r.port),
            "log_file": r.log_file,
            "log_file_error": r.log_file_error,
            "address_error": r.address_error,
        })
    return [groups[index] for index in sorted(groups)]


async def show_instance(session: AsyncSession, project_id: str, instance_id: str) -> dict:
    return await instance_view(session, await get_instance(session, project_id, instance_id))
