"""Reading one node's SLOWLOG incrementally, and naming commands without their values.

Redis keeps the newest ``slowlog-max-len`` entries in a ring, numbers them
per process (the numbering survives ``SLOWLOG RESET`` and restarts at 0 with
the process) and returns them newest first. ``read_slowlog`` asks for a small
batch first and widens it only while everything in it is new, so beyond its
fixed part (INFO server, INFO replication, one SLOWLOG GET of FIRST_BATCH) a
read costs in proportion to what is new, not to the ring's size.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis

from dcslog.redis.connection import NodeConnector

FIRST_BATCH = 128
# Commands whose first argument is a subcommand worth keeping in a fingerprint.
CONTAINER_COMMANDS = frozenset({
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "LATENCY", "MEMORY", "MODULE",
    "OBJECT", "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
})


@dataclass
class SlowEntry:
    redis_id: int
    start_time: int  # unix seconds
    duration_us: int
    args: list[str]
    client_addr: str
    client_name: str


@dataclass
class NodeIdentity:
    """Who answered: INFO server and INFO replication, read first in every round."""

    run_id: str
    role: str  # master | slave
    master: str | None  # a replica's master_host:master_port
    uptime_s: int  # seconds since the process started


@dataclass
class NodeSlowlog:
    """What one read of a node returned."""

    identity: NodeIdentity
    entries: list[SlowEntry]  # newer than the cursor, oldest first (dcslog's own too: they move the cursor)
    lost: int  # entries the ring dropped (or a RESET cleared) since the cursor, as far as the ids tell

    @property
    def run_id(self) -> str:
        return self.identity.run_id

    @property
    def role(self) -> str:  # master | slave
        return self.identity.role


class SlowlogUnreadable(Exception):
    """The node answered INFO (it is up: ``identity``) but its SLOWLOG could not be read (an ACL, a
    renamed command, a timeout on a huge ring)."""

    def __init__(self, identity: NodeIdentity, cause: BaseException) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.identity = identity


def _parse_entry(raw: list) -> SlowEntry:
    # [id, time, duration, [args], client address, client name]; the last two since Redis 4.
    args = [str(a) for a in raw[3]]
    return SlowEntry(int(raw[0]), int(raw[1]), int(raw[2]), args,
                     str(raw[4]) if len(raw) > 4 else "", str(raw[5]) if len(raw) > 5 else "")


async def _identity(client: Redis) -> NodeIdentity:
    server = await client.execute_command("INFO", "server")
    replication = await client.execute_command("INFO", "replication")
    fields = {}
    for text in (server, replication):
        for line in str(text).splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
    role = "slave" if fields.get("role") == "slave" else "master"
    master = f"{fields.get('master_host', '')}:{fields.get('master_port', '')}" if role == "slave" else None
    uptime = fields.get("uptime_in_seconds", "")
    return NodeIdentity(fields.get("run_id", ""), role, master, int(uptime) if uptime.isdigit() else 0)


async def read_slowlog(connector: NodeConnector, host: str, port: int, run_id: str | None, last_id: int) -> NodeSlowlog:
    """The entries of ``host:port`` newer than ``last_id`` of ``run_id`` (the cursor).

    A different ``run_id`` means the node restarted: its whole ring is new,
    numbered from 0. ``lost`` counts the ids between the cursor and the oldest
    entry still in the ring when the ring no longer reaches back to the cursor.
    On a node never read before (``run_id`` None) nothing counts as lost:
    what came before dcslog is history, not loss. A node that answers INFO but
    not SLOWLOG raises ``SlowlogUnreadable``, which says who answered.
    """
    client = connector.client(host, port)
    # SLOWLOG GET replies are lists; keep redis-py from reshaping them.
    client.set_response_callback("SLOWLOG GET", lambda response, **options: response)
    client.set_response_callback("INFO", lambda response, **options: response)
    identity: NodeIdentity | None = None
    try:
        async with asyncio.timeout(connector.timeout * 2):
            identity = await _identity(client)
            same_run = run_id is not None and run_id == identity.run_id
            since = last_id if same_run else -1
            batch = FIRST_BATCH
            while True:
                raw = await client.execute_command("SLOWLOG", "GET", batch)
                whole_ring = len(raw) < batch
                if whole_ring or int(raw[-1][0]) <= since + 1:
                    break
                batch *= 8
    except Exception as exc:
        if identity is not None:
            raise SlowlogUnreadable(identity, exc) from exc
        raise
    finally:
        await client.aclose()
    entries = [_parse_entry(r) for r in raw if int(r[0]) > since]
    entries.reverse()
    lost = 0
    if run_id is not None and entries and entries[0].redis_id > since + 1:
        lost = entries[0].redis_id - since - 1
    return NodeSlowlog(identity, entries, lost)


def command_text(args: list[str]) -> str:
    """The command and its arguments as Redis reports them (long ones already truncated by Redis), space-joined."""
    return " ".join(args)


def command_name(args: list[str]) -> str:
    return args[0].upper() if args else ""


def fingerprint(args: list[str]) -> str:
    """The command's shape without its values: ``SET ? ?``, ``CONFIG GET ?``, ``MGET ? ? …``.

    Every argument becomes ``?``; a subcommand of a container command
    (CONFIG, CLIENT, …) is kept; more than three placeholders collapse to
    ``? ? ? …`` so the same command with more keys groups together.
    """
    if not args:
        return ""
    words = [args[0].upper()]
    rest = args[1:]
    if words[0] in CONTAINER_COMMANDS and rest:
        words.append(rest[0].upper())
        rest = rest[1:]
    # Redis's own marker for arguments it dropped: "... (N more arguments)".
    truncated = bool(rest) and rest[-1].startswith("... (") and rest[-1].endswith("more arguments)")
    if truncated:
        rest = rest[:-1]
    placeholders = ["?"] * min(len(rest), 3)
    if len(rest) > 3 or truncated:
        placeholders.append("…")
    return " ".join(words + placeholders)
