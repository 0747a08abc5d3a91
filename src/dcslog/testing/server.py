"""A dcslog app served in a thread of this process: the tests' ``dcslog_server`` fixture and the
benchmarks' in-process server (``bench/slowlog.py``) both run one this way."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from aiohttp import web

from dcslog.app import create_app
from dcslog.config import Settings
from dcslog.httpserver import RUNNER_OPTIONS, DcsRunner


@contextlib.contextmanager
def running_app(settings: Settings, run_worker: bool = True) -> Iterator[str]:
    """Serve ``create_app(settings)`` on ``settings.host:settings.port`` in a thread until the
    block ends; yields its base URL. The same runner options as ``dcslog serve`` (its access
    log, keep-alive and parser limits), so what is measured or tested is what runs."""
    loop = asyncio.new_event_loop()
    runner = DcsRunner(create_app(settings, run_worker=run_worker), **RUNNER_OPTIONS)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, settings.host, settings.port).start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError("dcslog did not start")
    try:
        yield f"http://{settings.host}:{settings.port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
