"""Topology discovery of a Redis deployment (standalone, primary/replica, cluster).

``discover(url)`` connects to a seed node and returns a :class:`Topology`:
the deployment mode, its shards ("groups") and, per node, role, reachability,
``run_id``, cluster node id and the absolute path of its run log.

Contract:

* Every node is contacted with the seed URL's credentials and TLS settings
  (only host and port change); discovery always talks to db 0, because it
  only reads INFO/CONFIG and cluster nodes refuse ``SELECT n``.
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
* Every connection names itself ``dcslog`` (``CLIENT_NAME``) in the command
  that authenticates it, so that SLOWLOG and CLIENT LIST tell dcslog's own
  commands apart.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import urlparse

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    NoPermissionError,
    RedisError,
    ResponseError,
)

__all__ = ["DiscoveryError", "NodeConnector", "NodeInfo", "GroupInfo", "Topology", "discover"]

ACTIVE = "Active"
INACTIVE = "Inactive"
# The name every dcslog connection gives itself (CLIENT SETNAME): the harvester drops
# slow-log entries of this name, and operators see who is connected in CLIENT LIST.
CLIENT_NAME = "dcslog"
# How far to follow master_host links from a replica (chained replication).
MAX_REPLICATION_HOPS = 5


class DiscoveryError(Exception):
    """The deployment cannot be discovered (seed unreachable, auth failed, bad URL)."""


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
# Probing one node


@dataclass
class _ConfigError:
    """A CONFIG GET that failed (renamed command, ACL, ...), with the reason."""

    reason: str


@dataclass
class _Probe:
    host: str
    port: int
    error: str | None = None  # None when the node answered
    auth_failed: bool = False
    info: dict[str, str] = field(default_factory=dict)
    config: dict[str, str | _ConfigError] = field(default_factory=dict)
    cluster_nodes: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# redis-py: "Error 111 connecting to host:port. Connection refused."
_CONNECT_ERR = re.compile(r"Error (-?\d+) connecting to \S+\.\s+(.*)$", re.S)


def _parse_info(text: str) -> dict[str, str]:
    """INFO text → flat {key: raw string}; we parse values ourselves.

    (redis-py's own parser turns "7.0" into a float and slaveN into dicts.)
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def _parse_kv(value: str) -> dict[str, str]:
    """``ip=1.2.3.4,port=6379,state=online`` → dict."""
    out = {}
    for part in value.split(","):
        k, sep, v = part.partition("=")
        if sep:
            out[k] = v
    return out


def _as_int(value: Any, default: int = 0) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


# Skip CLIENT SETINFO on connect: extra round trips that servers < 7.2 reject.
# redis-py >= 7 spells that ``driver_info=None`` (lib_name is deprecated).
_NO_SETINFO: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(AbstractConnection.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)


class NodeConnector:
    """Builds clients for any node with the seed URL's credentials and TLS (also used by the slow-log harvester)."""

    def __init__(self, url: str, timeout: float) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss"):
            raise DiscoveryError(
                f"unsupported Redis URL scheme {parsed.scheme!r}: use redis:// or rediss://"
            )
        try:
            kwargs: dict[str, Any] = dict(parse_url(url))
        except ValueError as exc:  # redis-py's messages never echo the URL
            raise DiscoveryError(f"invalid Redis URL: {exc}") from None
        self.scheme = parsed.scheme
        # Not given to redis-py: _handshake authenticates (and names the connection) itself.
        self.username: str | None = kwargs.pop("username", None)
        self.password: str | None = kwargs.pop("password", None)
        self.seed_host: str = kwargs.pop("host", None) or "localhost"
        self.seed_port: int = kwargs.pop("port", None) or 6379
        kwargs.pop("db", None)
        kwargs.setdefault("socket_connect_timeout", timeout)
        kwargs.setdefault("socket_timeout", timeout)
        kwargs.update(
            decode_responses=True,
            encoding_errors="replace",
            # One attempt: an unreachable node must cost one timeout, not
            # several with exponential backoff.
            retry=Retry(NoBackoff(), 0),
            # RESP2, whatever the URL asks: dcslog only reads INFO, CONFIG and SLOWLOG, and
            # redis-py would otherwise start a RESP3 connection with a HELLO of its own.
            protocol=2,
            redis_connect_func=self._handshake,
        )
        kwargs.pop("client_name", None)
        kwargs.update(_NO_SETINFO)
        self.kwargs = kwargs
        self.timeout = timeout

    def display(self, host: str, port: int) -> str:
        """The node's address as a URL without the password."""
        user = f"{self.username}@" if self.username else ""
        h = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{user}{h}:{port}"

    def scrub(self, text: str) -> str:
        if self.password:
            text = text.replace(self.password, "***")
        return text

    def client(self, host: str, port: int) -> Redis:
        return Redis.from_pool(ConnectionPool(host=host, port=port, **self.kwargs))

    async def _handshake(self, connection: AbstractConnection) -> None:
        """Authenticate and name a new connection in one command, ``HELLO 2 [AUTH u p] SETNAME dcslog``.

        Redis logs a command in SLOWLOG under the name the client has once the command has run:
        redis-py's own AUTH (or HELLO) before its CLIENT SETNAME would be logged nameless, and
        harvested as if a user had sent it.  Redis < 6 has no HELLO: AUTH, then CLIENT SETNAME.
        """
        await connection.on_connect()  # no credentials, RESP2, no name: sends nothing, readies the parser
        auth = [self.username or "default", self.password] if self.password is not None else []
        await connection.send_command("HELLO", 2, *(["AUTH", *auth] if auth else []), "SETNAME", CLIENT_NAME,
                                      check_health=False)
        try:
            await connection.read_response()
        except ResponseError as exc:
            if "unknown command" not in str(exc).lower():
                raise
            if auth:
                await connection.send_command("AUTH", *(auth if self.username else auth[1:]), check_health=False)
                await connection.read_response()
            await connection.send_command("CLIENT", "SETNAME", CLIENT_NAME, check_health=False)
            await connection.read_response()

    async def probe(self, host: str, port: int) -> _Probe:
        """INFO, CONFIG GET (logfile, dir, maxmemory, databases) and, in cluster
        mode, CLUSTER NODES of one node.  Never raises."""
        result = _Probe(host, port)
        client = self.client(host, port)
        # We parse INFO ourselves (redis-py's parser turns "7.0" into a float).
        client.set_response_callback("INFO", lambda response, **options: response)
        try:
            # Bound the whole exchange, not just each socket operation.
            async with asyncio.timeout(self.timeout * 2):
                result.info = _parse_info(await client.execute_command("INFO"))
                for name in ("logfile", "dir", "maxmemory", "databases"):
                    result.config[name] = await self._config_get(client, name)
                if result.info.get("cluster_enabled") == "1":
                    result.cluster_nodes = await client.execute_command("CLUSTER", "NODES")
        except AuthenticationError as exc:
            result.error, result.auth_failed = self._reason(exc), True
        except ResponseError as exc:
            # NOAUTH / WRONGPASS can also arrive as plain error replies.
            result.error = self._reason(exc)
            result.auth_failed = str(exc).startswith(("NOAUTH", "WRONGPASS"))
        except (RedisError, OSError, TimeoutError) as exc:
            result.error = self._reason(exc)
        finally:
            try:
                await client.aclose()
            except Exception:  # closing a broken connection must not mask the result
                pass
        return result

    @staticmethod
    async def _config_get(client: Redis, name: str) -> str | _ConfigError:
        try:
            reply = await client.execute_command("CONFIG", "GET", name)
        except NoPermissionError as exc:
            return _ConfigError(f"CONFIG GET not permitted: {exc}")
        except ResponseError as exc:
            msg = str(exc)
            if "unknown command" in msg.lower():
                return _ConfigError(f"CONFIG GET not available (renamed or disabled): {msg}")
            return _ConfigError(f"CONFIG GET {name} failed: {msg}")
        # RESP2: [name, value]; RESP3: {name: value}
        if isinstance(reply, dict):
            value = reply.get(name)
        else:
            pairs = dict(zip(reply[0::2], reply[1::2])) if reply else {}
            value = pairs.get(name)
        if value is None:
            return _ConfigError(f"CONFIG GET {name} returned nothing")
        return str(value)

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) and not str(exc):
            return "timed out"
        msg = str(exc)
        m = _CONNECT_ERR.match(msg)
        if m:
            errno, rest = int(m.group(1)), m.group(2).strip().rstrip(".")
            if errno > 0:
                try:
                    return os.strerror(errno)
                except ValueError:
                    pass
            return rest or msg
        if "Timeout" in msg or "timed out" in msg:
            return "timed out"
        return self.scrub(msg or type(exc).__name__)


# ---------------------------------------------------------------------------
# Per-node result


def node_entry(per_node: dict[str, str], host: str, port: int) -> str | None:
    """A per-node setting (``--log-file``, ``--agent``) of ``host:port``, keyed ``host:port`` or,
    as older imports kept an IPv6 address, ``[host]:port``."""
    for key in (f"{host}:{port}", f"[{host}]:{port}"):
        if per_node.get(key):
            return per_node[key]
    return None


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
        run_id=(probe.info.get("run_id") or None) if ok else None,
        cluster_node_id=cluster_node_id,
        address_error=address_error,
        reported_address=reported_address,
        foreign=another_node,
    )


def _host_key(host: str, port: int) -> tuple:
    # Numeric IP order (127.0.0.10 after 127.0.0.9), hostnames after IPs.
    try:
        ip = ipaddress.ip_address(host)
        return (0, ip.version, int(ip), "", port)
    except ValueError:
        return (1, 0, 0, host, port)


def _engine_version(info: dict[str, str]) -> str:
    raw = info.get("redis_version", "")
    return ".".join(raw.split(".")[:2]) if raw else ""


def _config_int(probe: _Probe | None, name: str, default: int) -> int:
    if probe is None or not probe.ok:
        return default
    value = probe.config.get(name)
    if isinstance(value, _ConfigError) or value is None:
        return default
    return _as_int(value, default)


async def _probe_all(conn: NodeConnector, addrs: Iterable[tuple[str, int]],
                     known: dict[tuple[str, int], _Probe]) -> dict[tuple[str, int], _Probe]:
    """Probe every address not already in ``known`` concurrently; returns all."""
    todo = [a for a in dict.fromkeys(addrs) if a not in known]
    results = await asyncio.gather(*(conn.probe(h, p) for h, p in todo))
    merged = dict(known)
    merged.update(zip(todo, results))
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


def _replicas_of(info: dict[str, str]) -> list[tuple[str, int]]:
    """``slaveN:ip=…,port=…`` entries of a primary's INFO replication."""
    out = []
    for key, value in info.items():
        if re.fullmatch(r"slave\d+", key):
            fields = _parse_kv(value)
            if fields.get("ip") and fields.get("port"):
                out.append((fields["ip"], _as_int(fields["port"])))
    return out


def _split_address(address: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) → (host, port); port 0 when it is not a number."""
    host, _, port = address.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), _as_int(port)


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
    if (info.get("master_host"), _as_int(info.get("master_port"))) == (primary.host, primary.port):
        return None
    return (f"the node that answers is not a replica of this primary (it replicates "
            f"{info.get('master_host')}:{info.get('master_port')})")


def _address_error(primary: _Probe, reported: tuple[str, int], used: tuple[str, int], problem: str) -> str:
    """What ``address_error`` says: what was found, and the two ways to fix it."""
    given = " (given for it with --replica-address)" if used != reported else ""
    return (f"The primary {_address(primary.host, primary.port)} reports a replica at {_address(*reported)}, but "
            f"at {_address(*used)}{given} {problem}. A primary reports a replica under its replica-announce-ip, "
            "or else under the source address of its connection, which behind NAT or on a host with several "
            "addresses is not where it listens. Set replica-announce-ip (and replica-announce-port) on the "
            "replica, then run `dcslog instances refresh`; or give its address: "
            f"--replica-address {_address(*reported)}=HOST:PORT.")


def _address(host: str, port: int) -> str:
    return f"{host}:{port}"


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
                        _as_int(last_reachable.info.get("master_port")))
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
        used = {a: _split_address(replica_addresses.get(_address(*a), _address(*a))) for a in reported}
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
            error = problems[a] and _address_error(primary, a, used[a], problems[a])
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
    for a in sorted(replicas, key=lambda a: _host_key(*a)):
        reported_addr, error = replicas[a]
        nodes.append(_node(probes.get(a), *a, "slave", overrides, address_error=error,
                           reported_address=_address(*reported_addr) if reported_addr != a else None))
    return Topology(
        cache_mode="ha" if replicas else "single",
        engine_version=_engine_version(source.info),
        max_memory_bytes=_config_int(source, "maxmemory", 0),
        used_memory_bytes=_as_int(source.info.get("used_memory")),
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
            node_id=parts[0], host=host, port=_as_int(port), flags=flags,
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
    return [(m, sorted(replicas[m.node_id], key=lambda e: _host_key(e.host, e.port)))
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

    used = sum(_as_int(probes[(m.host, m.port)].info.get("used_memory"))
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
