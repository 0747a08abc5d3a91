"""Settings: every knob dcslog has, read from ``DCSLOG_*`` environment variables.

An optional TOML file named by ``DCSLOG_CONFIG_FILE`` supplies defaults with
the same names in lower case (``data_dir = "/var/lib/dcslog"``); environment
variables win over it. Every field here is documented in docs/configuration.md
(a test checks that).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DCSLOG_", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Directory for the SQLite database, the server key and local files.")
    database_url: str | None = Field(None, description="SQLAlchemy async URL; default sqlite+aiosqlite:///<data_dir>/dcslog.db.")
    object_store: str | None = Field(None, description="Where collected files go: file:///path or s3://bucket?endpoint=URL&region=R; default file://<data_dir>/files.")
    public_url: str | None = Field(None, description="Base URL of download links; default the scheme and Host of the request that asks for the link.")
    host: str = Field("127.0.0.1", description="Address `dcslog serve` listens on.")
    port: int = Field(8080, description="Port `dcslog serve` listens on.")
    link_ttl: int = Field(86400, gt=0, description="Seconds a download link stays valid (never past the file's retention).")
    retention_days: float = Field(7, gt=0, description="Days a collected file (and its task) is kept after collection.")
    token_ttl: int = Field(86400, gt=0, description="Seconds an X-Auth-Token from `dcslog token create` stays valid.")
    clock_skew: int = Field(900, ge=0, description="Largest accepted difference, in seconds, between X-Sdk-Date and the server clock.")
    s3_access_key_id: str | None = Field(None, description="Access key for an s3:// object store; default boto3's chain (AWS_ACCESS_KEY_ID, …).")
    s3_secret_access_key: str | None = Field(None, description="Secret key for an s3:// object store; default boto3's chain.")
    server_key: str | None = Field(None, description="Fernet key (urlsafe base64, 32 bytes) that encrypts secrets at rest; default generated once into <data_dir>/server.key.")
    worker_poll_interval: float = Field(1.0, gt=0, description="Seconds between two looks for queued collection jobs.")
    worker_concurrency: int = Field(2, gt=0, description="Collection jobs one worker runs at once.")
    job_lease: int = Field(300, gt=0, description="Seconds a worker holds a collection job before another may take it over.")
    sweep_interval: int = Field(300, gt=0, description="Seconds between two retention sweeps.")
    redis_timeout: float = Field(5.0, gt=0, description="Seconds to wait on a Redis node during discovery.")
    slowlog_interval: float = Field(60, gt=0, description="Seconds between two slow-log harvests of every node.")
    slowlog_retention_days: float = Field(7, gt=0, description="Days a harvested slow-log entry is kept (by its start time).")
    log_level: str = Field("INFO", description="Python logging level of the service's own log.")
    access_log: bool = Field(True, description="Log one line per HTTP request (method, path, status, time, request id).")
    log_format: Literal["text", "json"] = Field("text", description="Log lines as text, or one JSON object per line (time, level, logger, message, request_id).")
    config_file: Path | None = Field(None, description="Optional TOML file with defaults for the settings above.")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("DCSLOG_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'dcslog.db'}"

    @property
    def effective_object_store(self) -> str:
        return self.object_store or f"file://{self.data_dir.resolve() / 'files'}"

    def link_base(self, request_origin: str) -> str:
        """Base URL of download links: DCSLOG_PUBLIC_URL, else the scheme and ``Host`` the link
        request came with, which the client evidently reaches (``--host 0.0.0.0`` is no address
        to hand out; behind a proxy that rewrites Host, set DCSLOG_PUBLIC_URL)."""
        return (self.public_url or request_origin).rstrip("/")
