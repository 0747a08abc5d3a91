"""A real dcslog server for tests: the aiohttp app on a loopback port in a background thread
(``dcslog.testing.server.running_app``), plus the CLI (called in-process) and the official
huaweicloudsdkdcs client pointed at it."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkdcs.v2 import DcsClient

from dcslog import cli
from dcslog.config import Settings
from dcslog.db.session import create_engine, create_sessionmaker
from dcslog.keys import Keyring, load_server_key
from dcslog.services import auto_capture
from dcslog.services.slowlog_harvest import harvest_all
from dcslog.storage import open_object_store
from dcslog.testing.ports import free_port
from dcslog.testing.server import running_app


@dataclass
class DcslogServer:
    settings: Settings
    url: str
    monkeypatch: pytest.MonkeyPatch

    def cli(self, *args: str) -> dict | list:
        """Run ``dcslog ARGS --json`` in-process against this server's database; returns the parsed JSON."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main([*args, "--json"])
        assert code == 0, f"dcslog {' '.join(args)} failed"
        return json.loads(out.getvalue())

    def credentials(self, project_id: str = "proj-a", role: str = "admin") -> dict:
        return self.cli("credentials", "create", "--project-id", project_id, "--role", role)

    def sdk(self, project_id: str = "proj-a", role: str = "admin", credential: dict | None = None) -> DcsClient:
        credential = credential or self.credentials(project_id, role)
        config = HttpConfig.get_default_config()
        config.timeout = (5, 30)
        return (DcsClient.new_builder()
                .with_http_config(config)
                .with_credentials(BasicCredentials(credential["access_key"], credential["secret_key"],
                                                   credential["project_id"]))
                .with_endpoint(self.url)
                .build())

    def import_instance(self, redis_url: str, project_id: str = "proj-a", name: str = "cache", *extra: str) -> dict:
        return self.cli("instances", "import", "--project-id", project_id, "--name", name, "--redis", redis_url, *extra)

    def harvest(self) -> int:
        """One slow-log harvest of every node, now (the background one runs every DCSLOG_SLOWLOG_INTERVAL)."""
        async def run() -> int:
            engine = create_engine(self.settings.effective_database_url)
            try:
                return await harvest_all(create_sessionmaker(engine), Keyring(load_server_key(self.settings)),
                                         self.settings.redis_timeout, store=open_object_store(self.settings),
                                         capture=auto_capture.policy(self.settings))
            finally:
                await engine.dispose()
        return asyncio.run(run())


@pytest.fixture
def dcslog_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """DCSLOG_* variables for a server in tmp_path; tests may add their own before starting it."""
    env = {"DCSLOG_DATA_DIR": str(tmp_path / "dcslog-data"), "DCSLOG_HOST": "127.0.0.1",
           "DCSLOG_PORT": str(free_port()), "DCSLOG_WORKER_POLL_INTERVAL": "0.2",
           # Tests harvest the slow log when they choose (server.harvest()); one says otherwise.
           "DCSLOG_SLOWLOG_INTERVAL": "3600"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@contextlib.contextmanager
def started_server(monkeypatch: pytest.MonkeyPatch, run_worker: bool = True,
                   **overrides: str) -> Iterator[DcslogServer]:
    for key, value in overrides.items():
        monkeypatch.setenv(f"DCSLOG_{key.upper()}", value)
    settings = Settings()
    with running_app(settings, run_worker) as url:
        yield DcslogServer(settings, url, monkeypatch)


@pytest.fixture
def dcslog_server(dcslog_env, monkeypatch: pytest.MonkeyPatch) -> Iterator[DcslogServer]:
    """A running dcslog (API + worker) on the embedded default in a temporary data directory."""
    with started_server(monkeypatch) as server:
        yield server


@pytest.fixture
def dcslog_server_factory(dcslog_env, monkeypatch: pytest.MonkeyPatch):
    """``factory(run_worker=True, **settings)`` as a context manager: a server with extra DCSLOG_* settings."""
    return lambda run_worker=True, **overrides: started_server(monkeypatch, run_worker, **overrides)
