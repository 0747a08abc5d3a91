"""Free TCP ports on loopback addresses, for the servers tests and benchmarks start."""

from __future__ import annotations

import random
import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, as the kernel picks one (from its ephemeral range)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def bindable(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_redis_port(host: str) -> int:
    """A port free on ``host`` whose cluster-bus twin (port + 10000) is free too.

    Picked from 20000-39999 rather than the kernel's ephemeral range so that
    port + 10000 stays a valid port and is unlikely to be taken by outgoing
    connections.
    """
    for _ in range(200):
        port = random.randint(20000, 39999)
        if bindable(host, port) and bindable(host, port + 10000):
            return port
    raise RuntimeError(f"no free port found on {host}")
