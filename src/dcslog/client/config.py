"""Where the client commands find their endpoint and credentials: a profile file, then ``DCSLOG_*`` variables.

The profile file is TOML, one table per profile::

    [default]
    endpoint = "http://127.0.0.1:8080"
    project_id = "demo"
    ak = "…"
    sk = "…"

It is ``$DCSLOG_PROFILE_FILE``, else ``$XDG_CONFIG_HOME/dcslog/config.toml``
(``~/.config/dcslog/config.toml``). ``--profile NAME`` (or ``DCSLOG_PROFILE``)
picks a table, ``default`` otherwise. ``DCSLOG_ENDPOINT``,
``DCSLOG_PROJECT_ID``, ``DCSLOG_AK``, ``DCSLOG_SK`` and ``DCSLOG_TOKEN`` win
over the file, key by key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dcslog.command import EXIT_USAGE, CommandFailed

KEYS = ("endpoint", "project_id", "ak", "sk", "token")
DEFAULT_PROFILE = "default"


class ConfigError(CommandFailed):
    """The client is not (correctly) configured: exit status 2."""

    exit_status = EXIT_USAGE


@dataclass(frozen=True)
class ClientConfig:
    endpoint: str
    project_id: str
    ak: str | None = None
    sk: str | None = None
    token: str | None = None
    profile: str = DEFAULT_PROFILE
    source: str = ""  # where the values came from, for messages

    def __repr__(self) -> str:  # never show the secret key or the token, not even in a traceback
        return (f"ClientConfig(endpoint={self.endpoint!r}, project_id={self.project_id!r}, ak={self.ak!r}, "
                f"sk={'***' if self.sk else None}, token={'***' if self.token else None}, profile={self.profile!r})")


def profile_file(env: Mapping[str, str]) -> Path:
    if env.get("DCSLOG_PROFILE_FILE"):
        return Path(env["DCSLOG_PROFILE_FILE"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "dcslog" / "config.toml"


def _read_profile(path: Path, name: str, explicit: bool) -> dict[str, str]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"profile {name!r} was asked for but {path} does not exist") from None
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the profile file {path}: {exc}") from None
    section = data.get(name)
    if section is None:
        if explicit:
            known = ", ".join(k for k, v in data.items() if isinstance(v, dict)) or "none"
            raise ConfigError(f"no profile [{name}] in {path} (profiles: {known})")
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"[{name}] in {path} must be a table")
    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}] of {path}: {', '.join(unknown)} (known: {', '.join(KEYS)})")
    return {k: str(v) for k, v in section.items() if v not in (None, "")}


def load_config(profile: str | None = None, env: Mapping[str, str] | None = None) -> ClientConfig:
    env = os.environ if env is None else env
    name = profile or env.get("DCSLOG_PROFILE") or DEFAULT_PROFILE
    path = profile_file(env)
    from_file = _read_profile(path, name, explicit=name != DEFAULT_PROFILE)
    from_env = {k: env[f"DCSLOG_{k.upper()}"] for k in KEYS if env.get(f"DCSLOG_{k.upper()}")}

    # A credential is taken whole from one place: the environment's beats the file's, and
    # within one place AK/SK beats a token, so an AK from the file never pairs with an SK from the env.
    def credential(values: dict[str, str]) -> tuple[str | None, str | None, str | None] | None:
        if values.get("ak") or values.get("sk"):
            if not (values.get("ak") and values.get("sk")):
                return None
            return values["ak"], values["sk"], None
        if values.get("token"):
            return None, None, values["token"]
        return None

    for values, where in ((from_env, "DCSLOG_AK/DCSLOG_SK"), (from_file, str(path))):
        if (values.get("ak") or values.get("sk")) and not (values.get("ak") and values.get("sk")):
            raise ConfigError(f"an access key needs its secret key and the other way round ({where})")
    ak, sk, token = credential(from_env) or credential(from_file) or (None, None, None)
    merged = {**from_file, **from_env}
    endpoint, project_id = merged.get("endpoint"), merged.get("project_id")
    missing = [f"DCSLOG_{k.upper()} (or `{k}` in the profile)" for k, v in
               (("endpoint", endpoint), ("project_id", project_id)) if not v]
    if not (ak or token):
        missing.append("DCSLOG_AK and DCSLOG_SK, or DCSLOG_TOKEN (or `ak`/`sk`/`token` in the profile)")
    if missing or not endpoint or not project_id:
        raise ConfigError(f"not configured: set {'; '.join(missing)}. Profile file: {path} [{name}]")
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"the endpoint must be an http:// or https:// URL, not {endpoint!r}")
    return ClientConfig(endpoint=endpoint.rstrip("/"), project_id=project_id, ak=ak, sk=sk, token=token,
                        profile=name, source=str(path))
