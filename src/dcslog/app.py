"""create_app(settings): the service's aiohttp application, its routes, and its lifetime
(the database, object store and worker, opened at start-up and closed at shut-down).

It runs on the HTTP plumbing in ``httpserver.py`` (error envelope, request ids, limits,
access log, runner), which ``dcslog agent`` uses without this module.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from dcslog.config import Settings
from dcslog.httpserver import MAX_BODY, dcs_envelope


def create_app(settings: Settings | None = None, *, run_worker: bool = True) -> web.Application:
    """The application; opening the database, object store and worker happens at start-up, not at import.
    (The service's modules, too, are imported when an app is made, not with this module.)"""
    from dcslog.api.routes import add_routes
    from dcslog.console import add_console_routes
    from dcslog.state import SETTINGS, STOPPING

    settings = settings or Settings()
    app = web.Application(middlewares=[dcs_envelope], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[STOPPING] = asyncio.Event()

    async def stopping(app: web.Application) -> None:  # before aiohttp waits for the requests in flight
        app[STOPPING].set()
    app.on_shutdown.append(stopping)
    add_routes(app)
    add_console_routes(app)
    app.cleanup_ctx.append(_resources(run_worker))
    return app


def _resources(run_worker: bool):
    async def resources(app: web.Application):
        from dcslog.db.inline import InlineReads
        from dcslog.db.readcache import ReadCache
        from dcslog.db.session import create_engine, create_sessionmaker, upgrade
        from dcslog.keys import Keyring, load_server_key
        from dcslog.pacing import watch_loop
        from dcslog.services.audit import DownloadBudget, Journal
        from dcslog.state import DOWNLOAD_BUDGET, ENGINE, JOURNAL, KEYRING, SESSIONMAKER, SETTINGS, STORE
        from dcslog.storage import open_object_store

        settings = app[SETTINGS]
        url = settings.effective_database_url
        await asyncio.to_thread(settings.prepare_data_dir)
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        read_cache = ReadCache(url)
        inline_reads = InlineReads(url)
        app[ENGINE] = engine
        app[SESSIONMAKER] = create_sessionmaker(engine, read_cache, inline_reads)
        # SQLite: the journal's file of its own (services/audit.Journal).
        app[JOURNAL] = await Journal.open(url, app[SESSIONMAKER])
        app[DOWNLOAD_BUDGET] = DownloadBudget(settings.downloads_per_minute)
        app[KEYRING] = Keyring(load_server_key(settings))
        app[STORE] = await asyncio.to_thread(open_object_store, settings)
        metrics_listener = None
        if settings.metrics_port:
            from dcslog.api.metrics import start_listener

            metrics_listener = await start_listener(app)
        worker, worker_task = None, None
        if run_worker:
            from dcslog.worker import Worker

            # The worker changes what it loads: its sessions share nothing with the API's. The
            # collections this process queues wake it when they commit (services.jobs.on_queued).
            worker = Worker(settings, create_sessionmaker(engine), app[STORE], app[KEYRING])
            worker_task = asyncio.create_task(worker.run())
        watcher = asyncio.create_task(watch_loop())  # run-log scans give way while requests wait
        yield
        watcher.cancel()
        if worker is not None and worker_task is not None:
            # Like `dcslog worker` on SIGTERM: no new jobs, running ones finish or are handed back.
            worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
        if metrics_listener is not None:
            await metrics_listener.cleanup()
        read_cache.close()
        inline_reads.close()
        await app[JOURNAL].close()
        await engine.dispose()
    return resources
