"""Streaming records as NDJSON (the records export and ``format=ndjson`` links): the reading and
encoding run in a thread of their own, the loop writes what it hands over.

One thread per stream, not the loop's shared executor: a scan's 1 MiB reads freed on whichever
pool thread ran each batch would be kept by several malloc arenas at once (issue #14's RSS target:
+7 MB over a 1 GiB export against +3 MB on one thread).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

from dcslog.httpserver import give_back_freed_memory

NDJSON = "application/x-ndjson"
#: Records sent per hop from the reading thread to the response.
BATCH = 256

T = TypeVar("T")


class NdjsonStream:
    """``async with NdjsonStream() as stream``: ``await stream.call(f, …)`` runs ``f`` on the
    stream's thread; ``await stream.send(response, items)`` writes every item, a line each."""

    async def __aenter__(self) -> NdjsonStream:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ndjson")
        return self

    async def __aexit__(self, *exc: object) -> None:
        # A client that left: the batch in hand finishes, then the thread ends; nothing waits for it.
        self._thread.shutdown(wait=False, cancel_futures=True)
        give_back_freed_memory()  # the scan's blocks, freed once it ended (docs/design.md, "Memory")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def send(self, response: web.StreamResponse, items: Iterator[dict[str, Any]]) -> None:
        while chunk := await self.call(_batch, items):
            await response.write(chunk)


def _batch(items: Iterator[dict[str, Any]]) -> bytes:
    """Up to BATCH items as NDJSON lines; b"" once there are no more. Blocking."""
    lines = []
    for item in items:
        lines.append(json.dumps(item, separators=(",", ":")).encode())
        if len(lines) >= BATCH:
            break
    return b"\n".join(lines) + b"\n" if lines else b""
