"""Node addresses: ``host:port`` written and read back, ordered, and per-node settings keyed by them."""

from __future__ import annotations

import ipaddress
from typing import Any

__all__ = ["as_int", "host_key", "host_port", "node_entry", "split_address"]


def node_entry(per_node: dict[str, str], host: str, port: int) -> str | None:
    """A per-node setting (``--log-file``, ``--agent``) of ``host:port``, keyed ``host:port`` or,
    as older imports kept an IPv6 address, ``[host]:port``."""
    for key in (f"{host}:{port}", f"[{host}]:{port}"):
        if per_node.get(key):
            return per_node[key]
    return None


def host_port(host: str, port: int) -> str:
    return f"{host}:{port}"


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) → (host, port); port 0 when it is not a number."""
    host, _, port = address.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), as_int(port)


def host_key(host: str, port: int) -> tuple:
    # Numeric IP order (127.0.0.10 after 127.0.0.9), hostnames after IPs.
    try:
        ip = ipaddress.ip_address(host)
        return (0, ip.version, int(ip), "", port)
    except ValueError:
        return (1, 0, 0, host, port)


def as_int(value: Any, default: int = 0) -> int:
    """A number as Redis writes one (a port, an INFO or CONFIG value); ``default`` when it is none."""
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default
