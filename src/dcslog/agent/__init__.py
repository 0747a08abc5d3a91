"""``dcslog agent``: its HTTP server (``server.py``), which runs beside redis-server on a Redis
host and serves day slices of its run logs, and the service's client of it (``client.py``).

``run_agent`` (what the ``dcslog agent`` command runs) is imported from ``server.py`` only when
it is asked for: the service's workers import ``client.py``, and need not load the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dcslog.agent.server import run_agent

__all__ = ["run_agent"]


def __getattr__(name: str):
    if name == "run_agent":
        from dcslog.agent.server import run_agent

        return run_agent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
