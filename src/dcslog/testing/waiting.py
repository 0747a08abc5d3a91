"""Waiting for a condition, a listening port, or a dcslog process that answers."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 30, interval: float = 0.1, what: str = "condition",
             ignore: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something true, and return
    that; ``TimeoutError`` naming ``what`` after ``timeout`` seconds. Exceptions of the types in
    ``ignore`` count as "not yet" (a server still starting refuses connections)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
            if result:
                return result
        except ignore:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30, interval: float = 0.1,
              host: str = "127.0.0.1") -> None:
    """Wait until ``proc`` listens on ``host:port``; fails at once when it exits first."""
    def listening() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            return s.connect_ex((host, port)) == 0
    try:
        wait_for(listening, timeout, interval, f"{what} to listen on {port}")
    except TimeoutError:
        raise RuntimeError(f"{what} did not listen on {port}") from None


def answers(base_url: str) -> bool:
    """Whether a dcslog process at ``base_url`` is up (GET /livez)."""
    import httpx  # only when asked: the ports and waits above need no HTTP client

    try:
        return httpx.get(base_url + "/livez").status_code == 200
    except httpx.TransportError:
        return False
