"""Typed keys of what the application holds for its lifetime (aiohttp ``AppKey``).

(The embedded worker is not among them: it is started and stopped by the app's lifespan,
``app.py``, and woken by the jobs its process queues, ``services.jobs.on_queued``.)"""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dcslog.config import Settings
from dcslog.keys import Keyring
from dcslog.services.audit import DownloadBudget, Journal
from dcslog.storage import ObjectStore

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONMAKER = web.AppKey("sessionmaker", async_sessionmaker[AsyncSession])
KEYRING = web.AppKey("keyring", Keyring)
JOURNAL = web.AppKey("journal", Journal)  # the audit records of links made and downloads
DOWNLOAD_BUDGET = web.AppKey("download_budget", DownloadBudget)  # downloads per project per minute
STORE: web.AppKey[ObjectStore] = web.AppKey("store")
# Set when the server begins to stop: open follows end at once (their clients reconnect elsewhere
# with Last-Event-ID) rather than hold the process for aiohttp's 60 s shutdown timeout.
STOPPING = web.AppKey("stopping", asyncio.Event)
