"""The ``dcslog`` command: the server, the worker, the agent, the admin commands (``admin``,
against the configured database) and the client commands (``client``, against any DCS endpoint).

Every command is declared with :func:`dcslog.command.add_command` and run by
:func:`dcslog.command.run`: one exit-status table for all of them (docs/cli.md), errors on
stderr and, with ``--json``, one JSON error object on stdout. Admin commands print JSON on
stdout with ``--json`` (the contract scripts rely on) and a human table otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import datetime
from typing import Any

from dcslog import errors
from dcslog.command import (
    EXIT_OK,
    NODE_COLUMNS,
    Column,
    CommandParser,
    Runner,
    add_command,
    add_group,
    err,
    node_rows,
    print_json,
    print_table,
    run,
)
from dcslog.config import Settings
from dcslog.observability import configure_logging
from dcslog.roles import ROLES


def _settings() -> Settings:
    """The server settings (DCSLOG_*), with logging configured as they say."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _upgrade(settings: Settings) -> None:
    """The service creates its database (owner-only) when there is none, and migrates it. Alembic
    runs in a child process: its modules (~10 MB) would otherwise stay in a long-running server's
    memory. The URL, which may hold a password, goes through a pipe, never the command line."""
    import subprocess

    from dcslog.db.session import head_revision, schema_revision

    url = settings.effective_database_url
    if schema_revision(url) == head_revision():
        return
    code = "import sys; from dcslog.db.session import upgrade; upgrade(sys.stdin.read())"
    if subprocess.run([sys.executable, "-c", code], input=url, text=True).returncode != 0:
        raise errors.DcsError("the database's schema could not be brought up to date (the migration's error is above)")


def _print_result(result: Any, as_json: bool, columns: list[Column] | None = None) -> None:
    """An admin command's result: JSON, or a table (columns given, or the first row's scalar
    fields) and, after an instance, its nodes as ``dcslog groups`` shows them."""
    if as_json:
        print_json(result)
        return
    if isinstance(result, dict) and "records" in result:  # a page: {total_num, records}
        result = result["records"]
    rows = result if isinstance(result, list) else [result]
    if columns is None:
        columns = [k for k in rows[0] if not isinstance(rows[0][k], (list, dict))] if rows else []
    print_table(rows, columns)
    if isinstance(result, dict) and result.get("group_list"):
        print()
        print_table(node_rows(result["group_list"]), NODE_COLUMNS)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    _upgrade(settings)
    from dcslog.app import create_app
    from dcslog.db.session import describe_database
    from dcslog.httpserver import run_app

    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    if args.metrics_port:
        settings.metrics_port = args.metrics_port
    if args.metrics_host:
        settings.metrics_host = args.metrics_host
    # The standard asyncio loop, not uvloop: uvloop has no loop.sendfile(), so aiohttp's
    # FileResponse would fall back to read()/write() in a thread (bench/http_speed.py: 0.73x
    # nginx on a 1 GiB link instead of sendfile's ~0.97x).
    if not settings.access_log:  # the access logger still counts requests for /metrics
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    run_app(create_app(settings, run_worker=not args.no_worker), host=settings.host, port=settings.port,
            ready=lambda: logging.getLogger("dcslog").info(
                "dcslog serving on http://%s:%s (data in %s; %s)", settings.host, settings.port,
                settings.data_dir.resolve(), describe_database(settings.effective_database_url)))
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings()
    settings.prepare_data_dir()  # serve's start-up (create_app) checks the data directory itself
    _upgrade(settings)
    from dcslog.worker import run_worker

    if args.metrics_port:
        from prometheus_client import start_http_server

        from dcslog.observability import REGISTRY
        start_http_server(args.metrics_port, addr=args.metrics_host, registry=REGISTRY)
    try:
        asyncio.run(run_worker(settings))
    except (KeyboardInterrupt, asyncio.CancelledError):  # a second signal: stopped without the wait
        pass
    return EXIT_OK


def cmd_agent(args: argparse.Namespace) -> int:
    _settings()  # for the logging configuration: the agent opens no database
    from dcslog.agent import run_agent

    key = args.key or os.environ.get("DCSLOG_AGENT_KEY")
    if not key:
        raise errors.DcsError("the agent needs a key: --key SECRET or DCSLOG_AGENT_KEY")
    run_agent(args.host, args.port, key, args.allow_dir or ["/var/log/redis"], args.tls_cert, args.tls_key,
              args.allow_unit)
    return EXIT_OK


def _admin(name: str, columns: list[Column] | None = None, *, creates_database: bool = False) -> Runner:
    """The admin command ``name`` of ``dcslog.admin``, imported when it runs: it loads SQLAlchemy,
    Alembic and the services (a third of a second, tens of MB) that ``dcslog agent`` and the
    client commands do without. It prints its result with ``_print_result``."""
    def run_admin(args: argparse.Namespace) -> int:
        settings = _settings()
        from dcslog import admin

        if not creates_database:
            # Never on a new empty database (keys made in one fail against the service's with
            # "Invalid signature"), and it says which one it uses.
            database = admin.open_database(settings)["database"]
            if not args.json:  # with --json, a script gets the JSON and no chatter
                err(f"dcslog: using {database}")
        _print_result(getattr(admin, name)(args, settings), args.json, columns)
        return EXIT_OK
    run_admin.__name__ = name
    return run_admin


def _project_id(value: str) -> str:
    from dcslog.services.common import PROJECT_ID

    if not PROJECT_ID.fullmatch(value):
        raise argparse.ArgumentTypeError("a project id is 1-64 of A-Z a-z 0-9 _ -")
    return value


CREDENTIAL_COLUMNS: list[Column] = ["access_key", "name", "role", "project_id", "created_at", "revoked_at"]
TOKEN_COLUMNS: list[Column] = ["id", "name", "role", "project_id", "created_at", "expires_at", "revoked_at"]
NAME_MAX = 128  # services.credentials.NAME_MAX, which checks it again


def _credential_name(value: str) -> str:
    if not value.strip() or len(value.strip()) > NAME_MAX or not value.isprintable():
        raise argparse.ArgumentTypeError(f"a name is 1-{NAME_MAX} printable characters")
    return value.strip()


def _name_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", type=_credential_name,
                        help="what it is for, or who holds it (shown by list; never a secret)")


AUDIT_COLUMNS: list[Column] = ["time", "actor_type", "actor", "action", "instance_id", "target", "source_ip",
                               "outcome"]


def _compact_utc(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%S")
    except ValueError:
        raise argparse.ArgumentTypeError("a time is yyyyMMddHHmmss, UTC") from None


INSTANCE_COLUMNS: list[Column] = ["instance_id", "name", "project_id", "status", "cache_mode", "ip", "port",
                                  "engine_version"]


def _replica_address_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replica-address", action="append", default=[], metavar="REPORTED_HOST:PORT=HOST:PORT",
                        help="the address that reaches a replica its primary reports under another one (no "
                             "replica-announce-ip, NAT, several interfaces) (repeatable)")


def _admin_command(subparsers: argparse._SubParsersAction, name: str, help: str, handler: Runner,
                   project_required: bool | None = False) -> argparse.ArgumentParser:
    """An admin command: ``--json``, and ``--project-id`` (required, optional, or None: none)."""
    parser = add_command(subparsers, name, help, handler)
    if project_required is not None:
        parser.add_argument("--project-id", required=project_required, type=_project_id,
                            help="project (1-64 of A-Z a-z 0-9 _ -)" if project_required else "limit to this project")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="dcslog", description="DCS-compatible log management for Redis.",
        epilog="Admin commands (credentials, token, instances) work on the service's database: DCSLOG_DATABASE_URL, "
               "else DCSLOG_DATA_DIR/dcslog.db (default ./data, relative to the current directory), as "
               "`dcslog serve` has them (DCSLOG_CONFIG_FILE may name a file holding them). They refuse to "
               "start a new, empty one: `dcslog db upgrade` (or `dcslog serve`) does. In text mode they say "
               "on stderr which database they use. Exit statuses: docs/cli.md.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = add_command(sub, "serve", "run the HTTP API (and, unless --no-worker, the background worker)", cmd_serve,
                        json_output=False)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-worker", action="store_true", help="API only; run `dcslog worker` elsewhere")
    serve.add_argument("--metrics-port", type=int, help="also answer /metrics, with every series, on this port "
                                                        "and nothing else there (default $DCSLOG_METRICS_PORT)")
    serve.add_argument("--metrics-host", help="address of that listener (default $DCSLOG_METRICS_HOST, 127.0.0.1)")
    worker = add_command(sub, "worker", "run only the background worker (collections, retention)", cmd_worker,
                         json_output=False)
    worker.add_argument("--metrics-port", type=int, help="serve this worker's own Prometheus metrics on this port")
    worker.add_argument("--metrics-host", default="127.0.0.1")
    agent = add_command(sub, "agent", "serve this host's Redis run logs to a dcslog service", cmd_agent,
                        json_output=False)
    agent.add_argument("--host", default="127.0.0.1")
    agent.add_argument("--port", type=int, default=8081)
    agent.add_argument("--key", help="shared secret the service signs requests with (default $DCSLOG_AGENT_KEY)")
    agent.add_argument("--allow-dir", action="append", default=[], metavar="DIR",
                       help="serve log files under DIR only (repeatable; default /var/log/redis)")
    agent.add_argument("--allow-unit", action="append", default=[], metavar="UNIT",
                       help="serve the journal of the systemd unit UNIT (a glob pattern matches several; "
                            "repeatable; default none), read through journalctl")
    agent.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    agent.add_argument("--tls-key", help="… and this private key (PEM)")

    db = add_group(sub, "db", "database schema")
    _admin_command(db, "upgrade", "create the database if there is none, and apply pending migrations",
                   _admin("cmd_db_upgrade", creates_database=True), project_required=None)

    creds = add_group(sub, "credentials", "AK/SK credentials")
    create = _admin_command(creds, "create", "create an AK/SK pair", _admin("cmd_credentials_create"),
                            project_required=True)
    create.add_argument("--role", choices=ROLES, default="admin")
    _name_option(create)
    listing = _admin_command(creds, "list", "list access keys (never secrets)",
                             _admin("cmd_credentials_list", CREDENTIAL_COLUMNS))
    listing.add_argument("--all", action="store_true", help="revoked ones too")
    revoke = _admin_command(creds, "revoke", "revoke a credential: every API process refuses it from its next "
                                             "request on", _admin("cmd_credentials_revoke"), project_required=True)
    revoke.add_argument("access_key")
    # The command's name before credentials were revoked rather than deleted; it revokes too.
    delete = _admin_command(creds, "delete", "the former name of `credentials revoke`",
                            _admin("cmd_credentials_revoke"))
    delete.add_argument("access_key")

    token = add_group(sub, "token", "X-Auth-Token tokens")
    create = _admin_command(token, "create", "create a token", _admin("cmd_token_create"), project_required=True)
    create.add_argument("--role", choices=ROLES, default="admin")
    _name_option(create)
    listing = _admin_command(token, "list", "list tokens (their ids, never the tokens)",
                             _admin("cmd_token_list", TOKEN_COLUMNS))
    listing.add_argument("--all", action="store_true", help="revoked and expired ones too")
    revoke = _admin_command(token, "revoke", "revoke a token by its id: every API process refuses it from its "
                                             "next request on", _admin("cmd_token_revoke"), project_required=True)
    revoke.add_argument("token_id", metavar="ID", help="the token's id (`token list`), not the token")

    inst = add_group(sub, "instances", "Redis deployments")
    imp = _admin_command(inst, "import", "register a Redis deployment",
                         _admin("cmd_instances_import", INSTANCE_COLUMNS), project_required=True)
    imp.add_argument("--name", required=True)
    imp.add_argument("--redis", required=True, metavar="URL",
                     help="redis://[user@]host:port or rediss://…; the password from $DCSLOG_REDIS_PASSWORD or "
                          "--password-prompt (one in the URL works, but any user of the machine can read it in ps)")
    imp.add_argument("--password-prompt", action="store_true",
                     help="ask for the Redis password (read from stdin when it is not a terminal)")
    imp.add_argument("--log-file", action="append", default=[], metavar="HOST:PORT=PATH",
                     help="the node's run-log path, when CONFIG GET cannot tell it: a log file, or for a "
                          "node in a container its runtime's log file or pod container directory (repeatable)")
    imp.add_argument("--journal", action="append", default=[], metavar="HOST:PORT=UNIT",
                     help="the node logs to stdout under the systemd unit UNIT: its log is read from the journal "
                          "(journalctl) of its host (repeatable)")
    imp.add_argument("--journal-path", metavar="PATH",
                     help="read the --journal nodes from the journal directory or file PATH on their host, "
                          "instead of the host's journal")
    imp.add_argument("--agent", action="append", default=[], metavar="HOST:PORT=URL",
                     help="read this node's log through the `dcslog agent` at URL (repeatable)")
    imp.add_argument("--agent-key", default=os.environ.get("DCSLOG_AGENT_KEY"),
                     help="the agents' key (default $DCSLOG_AGENT_KEY)")
    imp.add_argument("--timezone", default="UTC", help="IANA zone Redis writes its log in (default UTC)")
    imp.add_argument("--description", default="")
    imp.add_argument("--force", action="store_true",
                     help="import even if the project has an instance of this deployment already")
    _replica_address_option(imp)
    _admin_command(inst, "list", "list instances", _admin("cmd_instances_list", INSTANCE_COLUMNS))
    for name, help in (("show", "show an instance and its groups"),
                       ("refresh", "re-discover an instance's topology"),
                       ("remove", "delete an instance and its files")):
        p = _admin_command(inst, name, help,
                           _admin(f"cmd_instances_{name}", INSTANCE_COLUMNS if name != "remove" else None))
        p.add_argument("instance_id")
        if name == "refresh":
            p.add_argument("--prune", action="store_true",
                           help="drop nodes no longer found, instead of keeping them as Inactive")
            _replica_address_option(p)
            p.add_argument("--timezone", help="change the IANA zone Redis writes its log in (days collected "
                                              "from now on follow it)")

    audit = add_group(sub, "audit", "the audit trail: who did what")
    listing = _admin_command(audit, "list", "a project's audit records, newest first ({total_num, records} with "
                                            "--json)", _admin("cmd_audit_list", AUDIT_COLUMNS), project_required=True)
    listing.add_argument("--action", help="only this action (instance.import, runlog.collect, link.download, …)")
    listing.add_argument("--instance-id", help="only records of this instance")
    listing.add_argument("--actor", help="only this actor: access key, token id, link id or system user")
    listing.add_argument("--start-time", type=_compact_utc, help="yyyyMMddHHmmss, UTC: records at or after it")
    listing.add_argument("--end-time", type=_compact_utc, help="yyyyMMddHHmmss, UTC: records at or before it")
    listing.add_argument("--offset", type=int, default=0, help="records to skip (default 0)")
    listing.add_argument("--limit", type=int, default=100, help="page size (default 100)")

    from dcslog.client import add_client_commands  # groups, logs, slowlog: talk to a DCS endpoint over HTTP
    add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
