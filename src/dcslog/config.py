"""Settings: every knob dcslog has, read from ``DCSLOG_*`` environment variables.

An optional TOML file named by ``DCSLOG_CONFIG_FILE`` supplies defaults with
the same names in lower case (``data_dir = "/var/lib/dcslog"``); environment
variables win over it. Every field here is documented in docs/configuration.md
(a test checks that).
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from dcslog import errors


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DCSLOG_", extra="ignore")

    data_dir: Path = Field(Path("./data"), description=(
        "Directory for the SQLite database, the server key and local files."))
    database_url: str | None = Field(None, description=(
        "SQLAlchemy async URL; default sqlite+aiosqlite:///<data_dir>/dcslog.db."))
    object_store: str | None = Field(None, description=(
        "Where collected files go: file:///path or s3://bucket?endpoint=URL&region=R; default "
        "file://<data_dir>/files."))
    public_url: str | None = Field(None, description=(
        "Base URL of download links; default the scheme of the connection and the Host of the request "
        "that asks for the link, if it is a valid host[:port]."))
    host: str = Field("127.0.0.1", description="Address `dcslog serve` listens on.")
    port: int = Field(8080, description="Port `dcslog serve` listens on.")
    link_ttl: int = Field(86400, gt=0, description=(
        "Seconds a download link stays valid (never past the file's retention)."))
    retention_days: float = Field(7, gt=0, description="Days a collected file (and its task) is kept after collection.")
    token_ttl: int = Field(86400, gt=0, description="Seconds an X-Auth-Token from `dcslog token create` stays valid.")
    clock_skew: int = Field(900, ge=0, description=(
        "Largest accepted difference, in seconds, between X-Sdk-Date and the server clock."))
    s3_access_key_id: str | None = Field(None, description=(
        "Access key for an s3:// object store; default boto3's chain (AWS_ACCESS_KEY_ID, …)."))
    s3_secret_access_key: str | None = Field(None, description=(
        "Secret key for an s3:// object store; default boto3's chain."))
    server_key: str | None = Field(None, description=(
        "Fernet key (urlsafe base64, 32 bytes) that encrypts secrets at rest; default generated once into "
        "<data_dir>/server.key."))
    worker_poll_interval: float = Field(1.0, gt=0, description="Seconds between two looks for queued collection jobs.")
    worker_concurrency: int = Field(2, gt=0, description="Collection jobs one worker runs at once.")
    job_lease: int = Field(30, gt=0, description=(
        "Seconds a worker holds a collection job without renewing it (every third of that) before another "
        "may take it over."))
    audit_retention_days: float = Field(90, gt=0, description=(
        "Days an audit record (who did what: `GET /v2/{project_id}/audit`, `dcslog audit list`) is kept."))
    downloads_per_minute: int = Field(600, ge=0, description=(
        "Downloads through links each project may make per minute on each API process (a burst of that many, "
        "then that rate), beyond which a download answers 429 APIGW.0308 with Retry-After; 0: no limit. What bounds "
        "the audit trail's disk under a flood of downloads (docs/design.md, \"Audit trail\")."))
    sweep_interval: int = Field(300, gt=0, description="Seconds between two retention sweeps.")
    redis_timeout: float = Field(5.0, gt=0, description="Seconds to wait on a Redis node during discovery.")
    slowlog_interval: float = Field(60, gt=0, description="Seconds between two slow-log harvests of every node.")
    slowlog_retention_days: float = Field(7, gt=0, description=(
        "Days a harvested slow-log entry is kept (by its start time)."))
    slowlog_fingerprints_only: bool = Field(False, description=(
        "Store slow-log entries without their arguments: the command's fingerprint (`SET ? ?`) is stored "
        "and shown as its `command`, so keys and values never reach the database."))
    auto_collect: bool = Field(True, description=(
        "After a node's restart, crash, role change or failover, collect the affected nodes' run log for "
        "the event's day by itself (a background task `AutoCollectRunLog` by user `dcslog`)."))
    auto_collect_quiet_seconds: float = Field(600, ge=0, description=(
        "A node's day collected automatically this many seconds ago or less is not collected again "
        "automatically: a flapping node makes one collection per period, not one per event."))
    log_level: str = Field("INFO", description="Python logging level of the service's own log.")
    access_log: bool = Field(True, description=(
        "Log one line per HTTP request (method, path, status, time, request id)."))
    log_format: Literal["text", "json"] = Field("text", description=(
        "Log lines as text, or one JSON object per line (time, level, logger, message, request_id)."))
    metrics_token: SecretStr | None = Field(None, description=(
        "Bearer token /metrics requires (Authorization: Bearer …); unset, /metrics on the API port shows "
        "totals only, no instance or replica ids."))
    metrics_host: str = Field("127.0.0.1", description=(
        "Address of the metrics-only listener of `dcslog serve` (with DCSLOG_METRICS_PORT)."))
    metrics_port: int | None = Field(None, gt=0, lt=65536, description=(
        "Port on which `dcslog serve` also answers /metrics, with every series, and nothing else; default "
        "none."))
    config_file: Path | None = Field(None, description="Optional TOML file with defaults for the settings above.")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
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

    def prepare_data_dir(self, create: bool = True) -> None:
        """The data directory owner-only: created 0700 when missing (if ``create``); an existing
        one open to other users gets a warning (``filemodes.warn_if_shared``)."""
        from dcslog.filemodes import make_private_dir, warn_if_shared

        if not (create and make_private_dir(self.data_dir)):
            warn_if_shared(self.data_dir)

    def link_base(self, scheme: str = "http", host: str | None = None) -> str:
        """Base URL of download links: DCSLOG_PUBLIC_URL, else ``scheme`` (the connection's:
        never a header's, such as X-Forwarded-Proto) and the request's ``Host``, which the client
        evidently reaches (``--host 0.0.0.0`` is no address to hand out). The Host is the
        client's to choose, and a link goes where it says with its bearer token in it: only a
        valid ``host[:port]`` is used; anything else (or none) is refused with the way out."""
        if self.public_url:
            return self.public_url.rstrip("/")
        if host is None or not is_valid_host(host):
            raise errors.DcsError(
                "Invalid Host in the request.", "DCS.4800",
                error_ext_msg="A download link is built from DCSLOG_PUBLIC_URL, or, when it is unset, from the "
                              "request's Host header, which must then be a host name, an IPv4 address or a "
                              "[bracketed] IPv6 address, with an optional :port. Set DCSLOG_PUBLIC_URL to the "
                              "address clients reach the service at (see docs/configuration.md).")
        return f"{scheme}://{host}"


# RFC 3986 host[:port], narrowed to what a client reaching dcslog sends: a reg-name of unreserved
# characters (letters, digits, - . _ ~: no percent-escapes, no sub-delims such as ; , ' which
# no real host name has), an IPv4 address (matched by the reg-name), or an IPv6 literal in
# brackets (checked with ipaddress below); the port 0-65535 in digits.
_HOST = re.compile(r"(?:(?P<name>[A-Za-z0-9._~-]+)|\[(?P<ipv6>[0-9A-Fa-f:.]+)\])(?::(?P<port>[0-9]{1,5}))?")


def is_valid_host(host: str) -> bool:
    """Whether ``host`` (a Host header) is a syntactically valid ``host[:port]``."""
    match = _HOST.fullmatch(host)
    if match is None or (match["port"] is not None and int(match["port"]) > 65535):
        return False
    if match["ipv6"] is not None:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            return False
    return True
