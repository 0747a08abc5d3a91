"""The ``dcslog`` command: the server, the worker, the agent, the admin commands (``admin``,
against the configured database) and the client commands (``client``, against any DCS endpoint).

Admin commands print JSON on stdout with ``--json`` (the contract scripts rely
on) and a human table otherwise. Errors go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import Any

from dcslog import errors
from dcslog.config import Settings
from dcslog.observability import configure_logging
from dcslog.roles import ROLES


def _print(result: Any, as_json: bool, columns: list[str] | None = None) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    rows = result if isinstance(result, list) else [result]
    if not rows:
        print("(none)")
        return
    columns = columns or [k for k in rows[0] if not isinstance(rows[0][k], (list, dict))]
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip())
    if isinstance(result, dict) and result.get("group_list"):
        print()
        _print(_group_rows(result["group_list"]), False)


def _group_rows(groups: list[dict]) -> list[dict]:
    """An instance's nodes, one row each, as ``dcslog groups`` shows them (the log file, or why there is none)."""
    return [{"group": group["group_name"], "replication_id": node["replication_id"], "role": node["replication_role"],
             "address": f"{node['replication_ip']}:{node['replication_port']}", "status": node["status"],
             "log_file": node["log_file"] or node["log_file_error"]}
            for group in groups for node in group["replication_list"]]


def cmd_serve(args, settings: Settings) -> None:
    from dcslog.app import create_app, run_app
    from dcslog.db.session import describe_database

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


def cmd_worker(args, settings: Settings) -> None:
    from dcslog.worker import run_worker

    if args.metrics_port:
        from prometheus_client import start_http_server

        from dcslog.observability import REGISTRY
        start_http_server(args.metrics_port, addr=args.metrics_host, registry=REGISTRY)
    try:
        asyncio.run(run_worker(settings))
    except (KeyboardInterrupt, asyncio.CancelledError):  # a second signal: stopped without the wait
        pass


def cmd_agent(args, settings: Settings) -> None:
    from dcslog.agent import run_agent

    key = args.key or os.environ.get("DCSLOG_AGENT_KEY")
    if not key:
        raise errors.DcsError("the agent needs a key: --key SECRET or DCSLOG_AGENT_KEY")
    run_agent(args.host, args.port, key, args.allow_dir or ["/var/log/redis"], args.tls_cert, args.tls_key)


def _admin(name: str):
    """The admin command ``name`` of ``dcslog.admin``, imported when it runs: it loads SQLAlchemy,
    Alembic and the services (a third of a second, tens of MB) that ``dcslog agent`` and the
    client commands do without."""
    def run(args, settings: Settings):
        from dcslog import admin

        return getattr(admin, name)(args, settings)
    run.__name__ = name
    return run


def _project_id(value: str) -> str:
    from dcslog.services.common import PROJECT_ID

    if not PROJECT_ID.fullmatch(value):
        raise argparse.ArgumentTypeError("a project id is 1-64 of A-Z a-z 0-9 _ -")
    return value


INSTANCE_COLUMNS = ["instance_id", "name", "project_id", "status", "cache_mode", "ip", "port", "engine_version"]


def _replica_address_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replica-address", action="append", default=[], metavar="REPORTED_HOST:PORT=HOST:PORT",
                        help="the address that reaches a replica its primary reports under another one (no "
                             "replica-announce-ip, NAT, several interfaces) (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcslog", description="DCS-compatible log management for Redis.",
        epilog="Admin commands (credentials, token, instances) work on the service's database: DCSLOG_DATABASE_URL, "
               "else DCSLOG_DATA_DIR/dcslog.db (default ./data, relative to the current directory), as "
               "`dcslog serve` has them (DCSLOG_CONFIG_FILE may name a file holding them). They refuse to "
               "start a new, empty one: `dcslog db upgrade` (or `dcslog serve`) does. In text mode they say "
               "on stderr which database they use.")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(subparsers, name: str, handler, help: str, columns=None, project_required=False):
        p = subparsers.add_parser(name, help=help)
        p.set_defaults(handler=handler, columns=columns)
        if handler not in (cmd_serve, cmd_worker, cmd_agent):
            p.add_argument("--json", action="store_true", help="print JSON on stdout")
        if project_required is not None:
            p.add_argument("--project-id", required=project_required, type=_project_id,
                           help="project (1-64 of A-Z a-z 0-9 _ -)" if project_required else "limit to this project")
        return p

    serve = command(sub, "serve", cmd_serve, "run the HTTP API (and, unless --no-worker, the background worker)",
                    project_required=None)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-worker", action="store_true", help="API only; run `dcslog worker` elsewhere")
    serve.add_argument("--metrics-port", type=int, help="also answer /metrics, with every series, on this port "
                                                        "and nothing else there (default $DCSLOG_METRICS_PORT)")
    serve.add_argument("--metrics-host", help="address of that listener (default $DCSLOG_METRICS_HOST, 127.0.0.1)")
    worker = command(sub, "worker", cmd_worker, "run only the background worker (collections, retention)",
                     project_required=None)
    worker.add_argument("--metrics-port", type=int, help="serve this worker's own Prometheus metrics on this port")
    worker.add_argument("--metrics-host", default="127.0.0.1")
    agent = command(sub, "agent", cmd_agent, "serve this host's Redis run logs to a dcslog service",
                    project_required=None)
    agent.set_defaults(needs_database=False)
    agent.add_argument("--host", default="127.0.0.1")
    agent.add_argument("--port", type=int, default=8081)
    agent.add_argument("--key", help="shared secret the service signs requests with (default $DCSLOG_AGENT_KEY)")
    agent.add_argument("--allow-dir", action="append", default=[], metavar="DIR",
                       help="serve log files under DIR only (repeatable; default /var/log/redis)")
    agent.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    agent.add_argument("--tls-key", help="… and this private key (PEM)")

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    command(db, "upgrade", _admin("cmd_db_upgrade"), "create the database if there is none, and apply pending "
            "migrations", project_required=None).set_defaults(creates_database=True)

    creds = sub.add_parser("credentials", help="AK/SK credentials").add_subparsers(dest="sub", required=True)
    create = command(creds, "create", _admin("cmd_credentials_create"), "create an AK/SK pair", project_required=True)
    create.add_argument("--role", choices=ROLES, default="admin")
    command(creds, "list", _admin("cmd_credentials_list"), "list access keys (never secrets)",
            columns=["access_key", "project_id", "role", "created_at"])
    delete = command(creds, "delete", _admin("cmd_credentials_delete"), "delete a credential", project_required=None)
    delete.add_argument("access_key")

    token = sub.add_parser("token", help="X-Auth-Token tokens").add_subparsers(dest="sub", required=True)
    create = command(token, "create", _admin("cmd_token_create"), "create a token", project_required=True)
    create.add_argument("--role", choices=ROLES, default="admin")

    inst = sub.add_parser("instances", help="Redis deployments").add_subparsers(dest="sub", required=True)
    imp = command(inst, "import", _admin("cmd_instances_import"), "register a Redis deployment",
                  columns=INSTANCE_COLUMNS, project_required=True)
    imp.add_argument("--name", required=True)
    imp.add_argument("--redis", required=True, metavar="URL",
                     help="redis://[user@]host:port or rediss://…; the password from $DCSLOG_REDIS_PASSWORD or "
                          "--password-prompt (one in the URL works, but any user of the machine can read it in ps)")
    imp.add_argument("--password-prompt", action="store_true",
                     help="ask for the Redis password (read from stdin when it is not a terminal)")
    imp.add_argument("--log-file", action="append", default=[], metavar="HOST:PORT=PATH",
                     help="the node's run-log path, when CONFIG GET cannot tell it (repeatable)")
    imp.add_argument("--agent", action="append", default=[], metavar="HOST:PORT=URL",
                     help="read this node's log through the `dcslog agent` at URL (repeatable)")
    imp.add_argument("--agent-key", default=os.environ.get("DCSLOG_AGENT_KEY"),
                     help="the agents' key (default $DCSLOG_AGENT_KEY)")
    imp.add_argument("--timezone", default="UTC", help="IANA zone Redis writes its log in (default UTC)")
    imp.add_argument("--description", default="")
    imp.add_argument("--force", action="store_true",
                     help="import even if the project has an instance of this deployment already")
    _replica_address_option(imp)
    command(inst, "list", _admin("cmd_instances_list"), "list instances", columns=INSTANCE_COLUMNS)
    for name, help in (("show", "show an instance and its groups"),
                       ("refresh", "re-discover an instance's topology"),
                       ("remove", "delete an instance and its files")):
        p = command(inst, name, _admin(f"cmd_instances_{name}"), help,
                    columns=INSTANCE_COLUMNS if name != "remove" else None)
        p.add_argument("instance_id")
        if name == "refresh":
            p.add_argument("--prune", action="store_true",
                           help="drop nodes no longer found, instead of keeping them as Inactive")
            _replica_address_option(p)
            p.add_argument("--timezone", help="change the IANA zone Redis writes its log in (days collected "
                                              "from now on follow it)")

    from dcslog.client import add_client_commands  # groups, logs, slowlog: talk to a DCS endpoint over HTTP
    add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "client", None):  # client commands read no server settings and open no database
        return args.client(args)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        # Commands that run away from the service's database (the agent) say so with needs_database=False.
        if args.handler in (cmd_serve, cmd_worker):
            # The service creates its database (owner-only) when there is none, and migrates it.
            from dcslog.db.session import upgrade

            if args.handler is cmd_worker:  # serve's start-up (create_app) checks the data directory itself
                settings.prepare_data_dir()
            upgrade(settings.effective_database_url)
        elif getattr(args, "needs_database", True) and not getattr(args, "creates_database", False):
            # An admin command: never on a new empty database (keys made in one fail against the
            # service's with "Invalid signature"), and it says which one it uses.
            from dcslog.admin import open_database

            database = open_database(settings)["database"]
            if not args.json:  # with --json, a script gets the JSON and no chatter
                print(f"dcslog: using {database}", file=sys.stderr)
        if args.handler in (cmd_serve, cmd_worker, cmd_agent):
            args.handler(args, settings)
            return 0
        _print(args.handler(args, settings), args.json, args.columns)
        return 0
    except errors.DcsError as exc:
        print(f"error: {exc.error_msg}", file=sys.stderr)
        if exc.error_ext_msg:  # how to fix it
            print(exc.error_ext_msg, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
