"""Connecting to one Redis node: dcslog's handshake, and what a node says about itself.

:class:`NodeConnector` builds clients for any node of a deployment from its seed URL, and
:meth:`NodeConnector.probe` reads one node (INFO, CONFIG GET, CLUSTER NODES). Topology
discovery (``redis/topology.py``) and the slow-log harvester (``redis/slowlog.py``) both
connect through it.

Contract:

* Every node is contacted with the seed URL's credentials and TLS settings
  (only host and port change), always on db 0: dcslog only reads INFO, CONFIG,
  CLUSTER NODES and SLOWLOG, and cluster nodes refuse ``SELECT n``.
* One attempt, short timeouts: an unreachable node costs one timeout.
* A bad URL is a :class:`DiscoveryError`; neither it nor a probe's ``error``
  contains the password.
* Every connection names itself ``dcslog`` (``CLIENT_NAME``) in the command
  that authenticates it, so that SLOWLOG and CLIENT LIST tell dcslog's own
  commands apart.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
from dataclasses import dataclass, field
from typing import Any
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

__all__ = ["CLIENT_NAME", "DiscoveryError", "NodeConnector"]

# The name every dcslog connection gives itself (CLIENT SETNAME): the harvester drops
# slow-log entries of this name, and operators see who is connected in CLIENT LIST.
CLIENT_NAME = "dcslog"


class DiscoveryError(Exception):
    """The deployment cannot be discovered (seed unreachable, auth failed, bad URL)."""


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
            pairs = dict(zip(reply[0::2], reply[1::2], strict=False)) if reply else {}
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
