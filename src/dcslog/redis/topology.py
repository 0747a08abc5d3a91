"""Topology discovery of a Redis deployment (standalone, primary/replica, cluster).

``discover(url)`` connects to a seed node and returns a :class:`Topology`:
the deployment mode, its shards ("groups") and, per node, role, reachability,
``run_id``, cluster node id and the absolute path of its run log.

Contract:

* Every node is reached through :class:`~dcslog.redis.connection.NodeConnector`,
  with the seed URL's credentials and TLS settings (only host and port
  change), on db 0, named ``dcslog``.
* The seed must be reachable and accept the credentials, else
  :class:`DiscoveryError` (message never contains the password).  Any other
  node that cannot be reached is reported with ``status="Inactive"``.
* Nodes are probed concurrently, with short timeouts, no retries, and every
  client is closed before ``discover`` returns.
* A replica is listed under the address its primary reports (``INFO
  replication``), which is the replica's ``replica-announce-ip`` or else the
  source address of its connection: behind NAT, on a host with several
  interfaces or addresses, that reaches nobody, or another node.  So the node
  found there must show it is a replica of this primary (the primary's
  replication id, or its address as ``master_host``); if it does not, or
  nothing answers, the node is ``Inactive`` with ``address_error`` saying
  what happened and how to fix it.  ``replica_addresses`` maps a reported
  address to the real one.
"""

from __future__ import annotations

import asyncio
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

from dcslog.redis.addresses import as_int, host_key, host_port, node_entry, split_address
from dcslog.redis.connection import DiscoveryError, NodeConnector, _ConfigError, _Probe

__all__ = ["NodeInfo", "GroupInfo", "Topology", "discover"]

ACTIVE = "Active"
INACTIVE = "Inactive"
# How far to follow master_host links from a replica (chained replication).
MAX_REPLICATION_HOPS = 5


@dataclass
class NodeInfo:
    host: str
    port: int
    role: str  # "master" | "slave"
    status: str  # "Active" if reachable now, else "Inactive"
    log_file: str | None  # absolute path of its run log, or None
    log_file_error: str | None  # why log_file is None; None when it is set
    run_id: str | None  # INFO server run_id; None if unreachable
    cluster_node_id: str | None = None  # cluster mode only
    # Why the node answering at this address is not known to be this replica; None when it is.
    address_error: str | None = None
    # The address the primary reports for this replica, when the node is listed under another one.
    reported_address: str | None = None
    # Another node answers at this address (so nothing known of it is this replica's).
    foreign: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class GroupInfo:
    shard_key: str  # cluster: lowest slot served, as str; "0" otherwise
    nodes: list[NodeInfo]  # master first, then replicas sorted by (host, port)

    @property
    def master(self) -> NodeInfo:
        return self.nodes[0]


@dataclass
class Topology:
    """What ``discover`` found.  When the primary of a replicated deployment is
    unreachable, memory and ``databases`` come from the replica that answered."""

    cache_mode: str  # "single" | "ha" | "cluster"
    engine_version: str  # major.minor, e.g. "7.0"
    max_memory_bytes: int  # CONFIG GET maxmemory on the primary; 0 = unlimited/unreadable
    used_memory_bytes: int  # INFO used_memory (sum over masters in cluster)
    db_number: int  # CONFIG GET databases; 1 for cluster
    primary_host: str
    primary_port: int
    groups: list[GroupInfo]

    @property
    def nodes(self) -> list[NodeInfo]:
        return [n for g in self.groups for n in g.nodes]


# ---------------------------------------------------------------------------
# Per-node result


def _log_file(probe: _Probe | None, host: str, port: int,
              overrides: dict[str, str]) -> tuple[str | None, str | None]:
    """(log_file, log_file_error) for one node; an override always wins."""
    path = node_entry(overrides, host, port)
    if path:
        return path, None
    if probe is None or not probe.ok:
        reason = probe.error if probe is not None else "not contacted"
        return None, f"node unreachable ({reason}): no log file known"
    logfile = probe.config.get("logfile")
    if isinstance(logfile, _ConfigError):
        return None, logfile.reason
    if logfile is None:
        return None, "logfile unknown"
    if logfile == "":
        return None, 'logfile is "" (stdout): no log file'
    # Redis only runs on POSIX systems: use POSIX path rules whatever we run on.
    if posixpath.isabs(logfile):
        return posixpath.normpath(logfile), None
    directory = probe.config.get("dir")
    if isinstance(directory, _ConfigError) or not directory:
        why = directory.reason if isinstance(directory, _ConfigError) else "dir unknown"
        return None, f"logfile {logfile!r} is relative and the node's dir is unknown: {why}"
    return posixpath.normpath(posixpath.join(directory, logfile)), None


def _node(probe: _Probe | None, host: str, port: int, role: str,
          overrides: dict[str, str], cluster_node_id: str | None = None,
          address_error: str | None = None, reported_address: str | None = None) -> NodeInfo:
    another_node = bool(address_error) and probe is not None and probe.ok
    if another_node:  # what answers there is not this replica: nothing it says is the replica's
        probe = None
    log_file, log_error = _log_file(probe, host, port, overrides)
    if another_node and log_error:
        log_error = "another node answers at this address (see address_error): no log file known"
    ok = probe is not None and probe.ok
    return NodeInfo(
        host=host,
        port=port,
        role=role,
        status=ACTIVE if ok else INACTIVE,
        log_file=log_file,
        log_file_error=log_error,
        run_id=(probe.info.get("run_id") or None) if probe is not None and probe.ok else None,
        cluster_node_id=cluster_node_id,
        address_error=address_error,
        reported_address=reported_address,
        foreign=another_node,
    )


def _engine_version(info: dict[str, str]) -> str:
    raw = info.get("redis_version", "")
    return ".".join(raw.split(".")[:2]) if raw else ""


def _config_int(probe: _Probe | None, name: str, default: int) -> int:
    if probe is None or not probe.ok:
        return default
    value = probe.config.get(name)
    if isinstance(value, _ConfigError) or value is None:
        return default
    return as_int(value, default)


async def _probe_all(conn: NodeConnector, addrs: Iterable[tuple[str, int]],
                     known: dict[tuple[str, int], _Probe]) -> dict[tuple[str, int], _Probe]:
    """Probe every address not already in ``known`` concurrently; returns all."""
    todo = [a for a in dict.fromkeys(addrs) if a not in known]
    results = await asyncio.gather(*(conn.probe(h, p) for h, p in todo))
    merged = dict(known)
    merged.update(zip(todo, results, strict=True))
    return merged


# ---------------------------------------------------------------------------
# Entry point


async def discover(url: str, log_file_overrides: dict[str, str] | None = None,
                   timeout: float = 5.0, replica_addresses: dict[str, str] | None = None) -> Topology:
    """Discover the deployment behind ``url`` (see the module docstring).

    ``replica_addresses`` maps ``host:port`` as a primary reports a replica to the
    ``host:port`` that reaches it (primary/replica deployments only)."""
    overrides = dict(log_file_overrides or {})
    conn = NodeConnector(url, timeout)
    seed = await conn.probe(conn.seed_host, conn.seed_port)
    if not seed.ok:
        verb = "authenticate to" if seed.auth_failed else "connect to"
        raise DiscoveryError(
            conn.scrub(f"cannot {verb} {conn.display(seed.host, seed.port)}: {seed.error}")
        )
    if seed.info.get("cluster_enabled") == "1":
        return await _discover_cluster(conn, seed, overrides)
    return await _discover_replication(conn, seed, overrides, replica_addresses or {})


# -- standalone / primary-replica -------------------------------------------


def _parse_kv(value: str) -> dict[str, str]:
    """``ip=1.2.3.4,port=6379,state=online`` → dict."""
    out = {}
    for part in value.split(","):
        k, sep, v = part.partition("=")
        if sep:
            out[k] = v
    return out


def _replicas_of(info: dict[str, str]) -> list[tuple[str, int]]:
    """``slaveN:ip=…,port=…`` entries of a primary's INFO replication."""
    out = []
    for key, value in info.items():
        if re.fullmatch(r"slave\d+", key):
            fields = _parse_kv(value)
            if fields.get("ip") and fields.get("port"):
                out.append((fields["ip"], as_int(fields["port"])))
    return out

def _not_this_replica(probe: _Probe, primary: _Probe) -> str | None:
    """Why the node ``probe`` reached is not a replica of ``primary``; None when it is one.

    A replica shares its primary's replication id once synced; before that (a full sync in
    progress) its ``master_host``/``master_port`` name the primary as we reached it."""
    if not probe.ok:
        return f"nothing answers ({probe.error}): the replica is down or unreachable from here, or listens elsewhere"
    info = probe.info
    if info.get("role") != "slave":
        return "the node that answers is a primary, not a replica of this primary"
    if info.get("master_replid") and info.get("master_replid") == primary.info.get("master_replid"):
        return None
    if (info.get("master_host"), as_int(info.get("master_port"))) == (primary.host, primary.port):
        return None
    return (f"the node that answers is not a replica of this primary (it replicates "
            f"{info.get('master_host')}:{info.get('master_port')})")


def _address_error(primary: _Probe, reported: tuple[str, int], used: tuple[str, int], problem: str) -> str:
    """What ``address_error`` says: what was found, and the two ways to fix it."""
    given = " (given for it with --replica-address)" if used != reported else ""
    return (f"The primary {host_port(primary.host, primary.port)} reports a replica at {host_port(*reported)}, but "
            f"at {host_port(*used)}{given} {problem}. A primary reports a replica under its replica-announce-ip, "
            "or else under the source address of its connection, which behind NAT or on a host with several "
            "addresses is not where it listens. Set replica-announce-ip (and replica-announce-port) on the "
            "replica, then run `dcslog instances refresh`; or give its address: "
            f"--replica-address {host_port(*reported)}=HOST:PORT.")


async def _discover_replication(conn: NodeConnector, seed: _Probe, overrides: dict[str, str],
                                replica_addresses: dict[str, str]) -> Topology:
    probes: dict[tuple[str, int], _Probe] = {(seed.host, seed.port): seed}
    # Follow master links from a replica up to the primary.
    last_reachable = seed
    primary_addr = (seed.host, seed.port)
    for _ in range(MAX_REPLICATION_HOPS):
        if last_reachable.info.get("role") != "slave":
            break
        primary_addr = (last_reachable.info.get("master_host", ""),
                        as_int(last_reachable.info.get("master_port")))
        if primary_addr in probes:  # a replication loop: stop
            break
        probe = await conn.probe(*primary_addr)
        probes[primary_addr] = probe
        if not probe.ok:
            break
        last_reachable = probe
    primary = probes[primary_addr]

    # Per replica address used: (the address the primary reported, why it is not confirmed or None).
    replicas: dict[tuple[str, int], tuple[tuple[str, int], str | None]] = {}
    if primary.ok:
        reported = _replicas_of(primary.info)
        used = {a: split_address(replica_addresses.get(host_port(*a), host_port(*a))) for a in reported}
        probes = await _probe_all(conn, used.values(), probes)
        problems = {a: _not_this_replica(probes[used[a]], primary) for a in reported}
        # A replica seed is known at its real address. If the primary reports it elsewhere (the
        # seed is none of the confirmed replicas), it is the one unconfirmed address with its port.
        seed_missing = seed is not primary and seed.info.get("run_id") not in {
            probes[used[a]].info.get("run_id") for a in reported if problems[a] is None}
        if seed_missing:
            unconfirmed = [a for a in reported if problems[a] is not None and a[1] == seed.port]
            if len(unconfirmed) == 1 and _not_this_replica(seed, primary) is None:
                used[unconfirmed[0]], problems[unconfirmed[0]] = (seed.host, seed.port), None
                seed_missing = False
        for a in reported:
            problem = problems[a]
            error = _address_error(primary, a, used[a], problem) if problem else None
            replicas.setdefault(used[a], (a, error))
        if seed_missing:  # e.g. a replica of a replica, which the primary does not list: keep it
            replicas.setdefault((seed.host, seed.port), ((seed.host, seed.port), None))
        source = primary
    else:
        # Primary unreachable: report what the replica we reached knows.
        # (the seed, and the replica highest up a replication chain).
        replicas = {(p.host, p.port): ((p.host, p.port), None) for p in (seed, last_reachable) if p is not primary}
        source = last_reachable

    nodes = [_node(primary, *primary_addr, "master", overrides)]
    for a in sorted(replicas, key=lambda a: host_key(*a)):
        reported_addr, error = replicas[a]
        nodes.append(_node(probes.get(a), *a, "slave", overrides, address_error=error,
                           reported_address=host_port(*reported_addr) if reported_addr != a else None))
    return Topology(
        cache_mode="ha" if replicas else "single",
        engine_version=_engine_version(source.info),
        max_memory_bytes=_config_int(source, "maxmemory", 0),
        used_memory_bytes=as_int(source.info.get("used_memory")),
        db_number=_config_int(source, "databases", 16),
        primary_host=primary_addr[0],
        primary_port=primary_addr[1],
        groups=[GroupInfo(shard_key="0", nodes=nodes)],
    )


# -- cluster ------------------------------------------------------------------


@dataclass
class _ClusterEntry:
    node_id: str
    host: str
    port: int
    flags: set[str]
    master_id: str | None
    slots: list[tuple[int, int]]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def is_replica(self) -> bool:
        return "slave" in self.flags


def _parse_cluster_nodes(text: str, seed_host: str) -> list[_ClusterEntry]:
    """Parse CLUSTER NODES (6.x ``ip:port@cport``, 7.x ``ip:port@cport,hostname``)."""
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        address = parts[1].split(",", 1)[0].split("@", 1)[0]
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        flags = set(parts[2].split(","))
        if not host and "myself" in flags:
            # A node that never learned its own IP reports ""; we reached it
            # at the seed address.
            host = seed_host
        slots = []
        for token in parts[8:]:
            if token.startswith("["):  # migrating/importing marker, not served
                continue
            lo, _, hi = token.partition("-")
            slots.append((int(lo), int(hi or lo)))
        entries.append(_ClusterEntry(
            node_id=parts[0], host=host, port=as_int(port), flags=flags,
            master_id=None if parts[3] == "-" else parts[3], slots=slots,
        ))
    return entries


def _cluster_shards(entries: list[_ClusterEntry]) -> list[tuple[_ClusterEntry, list[_ClusterEntry]]]:
    """(master, replicas) per shard, ordered by lowest slot; replicas by (host, port).

    Nodes without an address or still in handshake are not members yet.  A
    shard is a master serving slots: a master flagged ``fail`` that still owns
    slots is still its shard's master (it will show as Inactive), one without
    slots (e.g. replaced by a failover, or never assigned) is no shard.
    Replicas are listed whatever their flags (a failed one shows Inactive).
    """
    usable = [e for e in entries if e.host and e.port and not e.flags & {"noaddr", "handshake"}]
    masters = sorted((e for e in usable if e.is_master and e.slots),
                     key=lambda e: min(lo for lo, _ in e.slots))
    replicas: dict[str, list[_ClusterEntry]] = {m.node_id: [] for m in masters}
    for e in usable:
        if e.is_replica and e.master_id in replicas:
            replicas[e.master_id].append(e)
    return [(m, sorted(replicas[m.node_id], key=lambda e: host_key(e.host, e.port)))
            for m in masters]


async def _discover_cluster(conn: NodeConnector, seed: _Probe,
                            overrides: dict[str, str]) -> Topology:
    entries = _parse_cluster_nodes(seed.cluster_nodes or "", seed.host)
    shards = _cluster_shards(entries)
    if not shards:
        raise DiscoveryError(
            f"cluster node {conn.display(seed.host, seed.port)} knows no shard serving slots "
            "(cluster not created yet?)"
        )
    masters = [m for m, _ in shards]
    master_ids = {m.node_id for m in masters}

    known = {(seed.host, seed.port): seed}
    # The seed may appear under its cluster-announced address: reuse its probe.
    myself = next((e for e in entries if "myself" in e.flags), None)
    if myself is not None:
        known.setdefault((myself.host, myself.port), seed)
    members = [e for m, rs in shards for e in (m, *rs)]
    probes = await _probe_all(conn, [(e.host, e.port) for e in members], known)

    groups = []
    for m, reps in shards:
        nodes = [_node(probes.get((m.host, m.port)), m.host, m.port, "master", overrides, m.node_id)]
        nodes += [_node(probes.get((r.host, r.port)), r.host, r.port, "slave", overrides, r.node_id)
                  for r in reps]
        groups.append(GroupInfo(shard_key=str(min(lo for lo, _ in m.slots)), nodes=nodes))

    # The primary clients should use: the seed's master (or the seed itself).
    primary = None
    if myself is not None:
        if myself.node_id in master_ids:
            primary = myself
        elif myself.master_id in master_ids:
            primary = next(m for m in masters if m.node_id == myself.master_id)
    if primary is None:
        primary = masters[0]
    primary_probe = probes.get((primary.host, primary.port))

    used = sum(as_int(probes[(m.host, m.port)].info.get("used_memory"))
               for m in masters if probes.get((m.host, m.port)) and probes[(m.host, m.port)].ok)
    return Topology(
        cache_mode="cluster",
        engine_version=_engine_version(seed.info),
        max_memory_bytes=_config_int(primary_probe, "maxmemory", 0),
        used_memory_bytes=used,
        db_number=1,
        primary_host=primary.host,
        primary_port=primary.port,
        groups=groups,
    )
