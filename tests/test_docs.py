"""The docs keep up with the code: every setting, every CLI command, every route is documented."""

from __future__ import annotations

import re
from pathlib import Path

from dcslog.api.operations import registered
from dcslog.cli import build_parser
from dcslog.command import EXIT_STATUSES
from dcslog.config import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented():
    text = (DOCS / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"`DCSLOG_{name.upper()}`" in text, f"DCSLOG_{name.upper()} is not in docs/configuration.md"


def _commands(parser, prefix=()):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))
            return
    yield " ".join(prefix)


def test_every_cli_command_is_documented():
    text = (DOCS / "cli.md").read_text()
    for command in _commands(build_parser()):
        assert f"dcslog {command}" in text, f"`dcslog {command}` is not in docs/cli.md"


def test_every_exit_status_is_documented():
    """docs/cli.md's table is the one exit-status table of every command: no more, no fewer rows."""
    text = (DOCS / "cli.md").read_text()
    table = text[text.index("### Exit statuses"):]
    documented = {int(n) for n in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert documented == set(EXIT_STATUSES)


def test_every_route_is_documented():
    text = (DOCS / "api.md").read_text()
    for op in registered():
        assert op.path in text, f"{op.method} {op.path} is not in docs/api.md"
        if op.role is not None:  # a DCS operation: named as the SDK names it
            assert f"`{op.name}`" in text, f"{op.name} is not named in docs/api.md"


def test_config_file_is_read(tmp_path, monkeypatch):
    config = tmp_path / "dcslog.toml"
    config.write_text('port = 9123\nretention_days = 3\n')
    monkeypatch.setenv("DCSLOG_CONFIG_FILE", str(config))
    monkeypatch.setenv("DCSLOG_RETENTION_DAYS", "5")
    settings = Settings()
    assert settings.port == 9123 and settings.retention_days == 5  # the environment wins over the file
