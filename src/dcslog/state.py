"""Typed keys of what the application holds for its lifetime (aiohttp ``AppKey``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dcslog.config import Settings
from dcslog.keys import Keyring
from dcslog.storage import ObjectStore

if TYPE_CHECKING:
    from dcslog.worker import Worker

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONMAKER = web.AppKey("sessionmaker", async_sessionmaker[AsyncSession])
KEYRING = web.AppKey("keyring", Keyring)
STORE = web.AppKey("store", ObjectStore)
WORKER = web.AppKey("worker", "Worker")
