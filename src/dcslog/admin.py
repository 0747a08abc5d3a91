"""The admin commands of ``dcslog``: credentials, tokens, instances and the schema, run against the
configured database (``cli`` imports this module only when one of them runs)."""

from __future__ import annotations

import asyncio
import getpass
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from dcslog import errors
from dcslog.config import Settings
from dcslog.db.models import Instance
from dcslog.db.session import (
    create_engine,
    create_sessionmaker,
    describe_database,
    schema_revision,
    sqlite_file,
    upgrade,
)
from dcslog.keys import Keyring, load_server_key
from dcslog.services import audit as audit_service
from dcslog.services import credentials as credential_service
from dcslog.services import instances as instance_service
from dcslog.services.audit import system_actor
from dcslog.storage import open_object_store


def _no_database(settings: Settings) -> errors.DcsError:
    """What an admin command says when the configured database is not there: where it looked,
    why there, and how to point it at the service's database, or to make a new one."""
    url = settings.effective_database_url
    path = sqlite_file(url)
    what = f"{os.path.abspath(path)} does not exist" if path is not None and not os.path.exists(path) \
        else f"{describe_database(url)} holds no dcslog schema"
    if settings.database_url:
        why = "DCSLOG_DATABASE_URL"
    elif os.environ.get("DCSLOG_DATA_DIR"):
        why = f"DCSLOG_DATA_DIR={os.environ['DCSLOG_DATA_DIR']}"
    elif "data_dir" in settings.model_fields_set:
        why = f"data_dir in {os.environ.get('DCSLOG_CONFIG_FILE')}"
    else:
        why = f"DCSLOG_DATA_DIR unset: ./data in the current directory, {os.getcwd()}"
    return errors.DcsError(
        f"no dcslog database: {what} ({why}).\nAdmin commands work on the database the service uses: run them "
        "in the directory where `dcslog serve` runs, or with its settings (DCSLOG_DATA_DIR, DCSLOG_DATABASE_URL, "
        "or DCSLOG_CONFIG_FILE naming its config file).\nTo start a new, empty database there instead, run "
        "`dcslog db upgrade` (`dcslog serve` creates one too).")


def _schema_revision(url: str) -> str | None:
    """``session.schema_revision``, with a database that cannot be reached said as an error (the
    URL without its password, the driver's first line)."""
    try:
        return schema_revision(url)
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        text = str(getattr(exc, "orig", None) or exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        password = make_url(url).password
        if password:
            reason = reason.replace(str(password), "***")
        raise errors.DcsError(f"cannot open the database {describe_database(url)}: {reason}") from None


def open_database(settings: Settings, *, create: bool = False) -> dict:
    """Bring the configured database's schema up to date, for an admin command: refused (with
    ``_no_database``'s advice) when there is none, unless ``create`` (``dcslog db upgrade``).
    Returns where it is and what was done."""
    url = settings.effective_database_url
    settings.prepare_data_dir(create=create)
    revision = _schema_revision(url)
    if revision is None and not create:
        raise _no_database(settings)
    upgrade(url)
    return {"database": describe_database(url), "created": revision is None, "revision": _schema_revision(url)}


async def _with_session(settings: Settings, work: Callable[..., Awaitable[Any]]) -> Any:
    url = settings.effective_database_url
    # Never a new empty database: keys made in one would fail against the service's ("Invalid signature").
    if await asyncio.to_thread(_schema_revision, url) is None:
        raise _no_database(settings)
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            return await work(session, Keyring(load_server_key(settings)))
    finally:
        await engine.dispose()


def cmd_db_upgrade(args, settings: Settings) -> dict:
    """Create the database if there is none, and apply pending migrations."""
    return open_database(settings, create=True)


def cmd_credentials_create(args, settings: Settings) -> dict:
    async def work(session, keyring):
        return await credential_service.create_credential(session, keyring, system_actor(), project_id=args.project_id,
                                                          role=args.role, name=args.name)
    return asyncio.run(_with_session(settings, work))


def cmd_credentials_list(args, settings: Settings) -> list[dict]:
    async def work(session, keyring):
        return await credential_service.list_credentials(session, args.project_id, show_all=args.all)
    return asyncio.run(_with_session(settings, work))


def cmd_credentials_revoke(args, settings: Settings) -> dict:
    async def work(session, keyring):
        return await credential_service.revoke_credential(session, system_actor(), args.access_key, args.project_id)
    return asyncio.run(_with_session(settings, work))


def cmd_token_create(args, settings: Settings) -> dict:
    async def work(session, keyring):
        return await credential_service.create_token(session, system_actor(), project_id=args.project_id,
                                                     role=args.role, ttl=settings.token_ttl, name=args.name)
    return asyncio.run(_with_session(settings, work))


def cmd_token_list(args, settings: Settings) -> list[dict]:
    async def work(session, keyring):
        return await credential_service.list_tokens(session, args.project_id, show_all=args.all)
    return asyncio.run(_with_session(settings, work))


def cmd_token_revoke(args, settings: Settings) -> dict:
    async def work(session, keyring):
        return await credential_service.revoke_token(session, system_actor(), args.token_id, args.project_id)
    return asyncio.run(_with_session(settings, work))


def _parse_node_map(values: list[str], option: str, shape: str) -> dict[str, str]:
    """``HOST:PORT=VALUE`` options → {"host:port": value}."""
    mapping = {}
    for value in values:
        address, sep, target = value.partition("=")
        host, colon, port = address.rpartition(":")
        if not sep or not colon or not host or not port.isdigit() or not target:
            raise errors.DcsError(f"{option} {value!r}: expected {shape}")
        mapping[address] = target
    return mapping


async def _instance_with_groups(session, instance: Instance) -> dict:
    view = await instance_service.instance_view(session, instance)
    view["group_list"] = await instance_service.group_list(session, instance)
    _warn_unreadable_logs(view)
    return view


def _warn_unreadable_logs(view: dict) -> None:
    """Say now, on stderr, what would otherwise surface as failed collections: a replica whose
    address is not confirmed (the cause, then, whatever its log file), a node with no log file,
    or whose log this machine cannot read (Debian's redis-server writes /var/log/redis as
    redis:adm, mode 0640)."""
    for group in view["group_list"]:
        for node in group["replication_list"]:
            path, address = node["log_file"], f"{node['replication_ip']}:{node['replication_port']}"
            if node["address_error"]:
                print(f"warning: {address}: {node['address_error']}", file=sys.stderr)
                continue
            if node["agent"]:
                continue
            if not path:
                hint = f"Start Redis with --logfile, or give the path with --log-file {address}=PATH."
                if "stdout" in (node["log_file_error"] or ""):
                    hint = (f"In a container, its log is in the runtime's files: give them with --log-file "
                            f"{address}=PATH, PATH the pod's container directory (/var/log/pods/"
                            f"<namespace>_<pod>_<uid>/<container>) or the Docker json-file log "
                            f"(/var/lib/docker/containers/<id>/<id>-json.log); under systemd, its unit with "
                            f"--journal {address}=UNIT; else start Redis with --logfile.")
                print(f"warning: {address} has no log file dcslog can collect ({node['log_file_error']}). {hint}",
                      file=sys.stderr)
                continue
            if path.startswith("journal:"):
                why = _journal_unreadable(path)
                if why is not None:
                    print(f"warning: {address} logs to the journal ({path}): {why}. A worker running here cannot "
                          "collect that node: run it where the journal can be read, or read the node through a "
                          "`dcslog agent` on its host (--agent).", file=sys.stderr)
                continue
            if not os.path.exists(path):
                why = "no such file on this machine"
            elif not os.access(path, os.R_OK):
                why = f"user {_user_name()} may not read it"
            elif os.path.isdir(path):  # a container's log directory: the files in it are what is read
                from dcslog.runlog.sources import log_sources

                files = log_sources(path)
                unreadable = next((f for f in files if not os.access(f, os.R_OK)), None)
                if not files:
                    why = "a directory holding no container log (N.log, <id>-json.log) on this machine"
                elif unreadable is not None:
                    why = f"user {_user_name()} may not read {unreadable}"
                else:
                    continue
            else:
                continue
            print(f"warning: {address} logs to {path}: {why}. A worker "
                  "running here as this user cannot collect that node: run it as a user who can read the file "
                  "(Debian: group adm), give the path with --log-file, or read the node through a `dcslog agent` "
                  "(--agent).", file=sys.stderr)


def _journal_unreadable(source: str) -> str | None:
    """Why this machine cannot read the journal a node's log source names, None when it can."""
    from dcslog.runlog import journal

    where = journal.parse(source)
    if where is None:
        return None
    if journal.journalctl_path() is None:
        return "journalctl is not installed on this machine, and the journal is read through it"
    if where.path is not None and not os.path.exists(where.path):
        return f"no journal at {where.path} on this machine"
    if where.path is None and not _reads_system_journal():
        return f"user {_user_name()} may not read the system journal (group systemd-journal or adm)"
    return None


def _reads_system_journal() -> bool:
    import grp

    if os.geteuid() == 0:
        return True
    names = set()
    for gid in os.getgroups():
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return bool(names & {"systemd-journal", "adm", "wheel"})


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


REDIS_PASSWORD_VARIABLE = "DCSLOG_REDIS_PASSWORD"


def _read_password() -> str:
    """--password-prompt: asked for on a terminal (not echoed), else the first line of stdin."""
    if sys.stdin.isatty():
        return getpass.getpass("Redis password: ")
    return sys.stdin.readline().rstrip("\r\n")


def _redis_url(args) -> str:
    """``--redis`` with the password from $DCSLOG_REDIS_PASSWORD or --password-prompt put in: a
    password on the command line can be read by any user of the machine (``ps``, /proc/PID/cmdline)
    while dcslog runs, and stays in the shell's history."""
    parts = urlsplit(args.redis)
    if parts.password is not None:
        if args.password_prompt:
            raise errors.DcsError("--redis holds a password already: give it in one place only.")
        print(f"warning: the password in --redis can be read by every user of this machine (ps) while dcslog "
              f"runs, and stays in the shell's history: give it with {REDIS_PASSWORD_VARIABLE} or --password-prompt "
              "instead.", file=sys.stderr)
        return args.redis
    password = _read_password() if args.password_prompt else os.environ.get(REDIS_PASSWORD_VARIABLE)
    if args.password_prompt and not password:
        raise errors.DcsError("--password-prompt: no password given.")
    if not password:
        return args.redis
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def cmd_instances_import(args, settings: Settings) -> dict:
    redis_url = _redis_url(args)

    async def work(session, keyring):
        instance = await instance_service.import_instance(
            session, keyring, system_actor(), project_id=args.project_id, name=args.name, redis_url=redis_url,
            log_file_overrides=_parse_node_map(args.log_file, "--log-file", "HOST:PORT=PATH"),
            timezone=args.timezone, description=args.description, redis_timeout=settings.redis_timeout,
            agents=_parse_node_map(args.agent, "--agent", "HOST:PORT=URL"), agent_key=args.agent_key,
            replica_addresses=_parse_node_map(args.replica_address, "--replica-address",
                                              "REPORTED_HOST:PORT=REAL_HOST:PORT"),
            force=args.force, journals=_parse_node_map(args.journal, "--journal", "HOST:PORT=UNIT"),
            journal_path=args.journal_path)
        return await _instance_with_groups(session, instance)
    return asyncio.run(_with_session(settings, work))


async def _find_instance(session, args) -> Instance:
    return await instance_service.find_instance(session, args.instance_id, args.project_id)


def cmd_instances_list(args, settings: Settings) -> list[dict]:
    async def work(session, keyring):
        return await instance_service.describe_instances(session, args.project_id)
    return asyncio.run(_with_session(settings, work))


def cmd_instances_show(args, settings: Settings) -> dict:
    async def work(session, keyring):
        return await _instance_with_groups(session, await _find_instance(session, args))
    return asyncio.run(_with_session(settings, work))


def cmd_instances_refresh(args, settings: Settings) -> dict:
    async def work(session, keyring):
        instance = await instance_service.refresh_instance(
            session, keyring, system_actor(), await _find_instance(session, args), redis_timeout=settings.redis_timeout,
            prune=args.prune, timezone=args.timezone,
            replica_addresses=_parse_node_map(args.replica_address, "--replica-address",
                                              "REPORTED_HOST:PORT=REAL_HOST:PORT"))
        return await _instance_with_groups(session, instance)
    return asyncio.run(_with_session(settings, work))


def cmd_instances_remove(args, settings: Settings) -> dict:
    async def work(session, keyring):
        deleted = await instance_service.remove_instance(session, open_object_store(settings), system_actor(),
                                                         await _find_instance(session, args))
        return {"instance_id": args.instance_id, "removed": True, "files_deleted": deleted}
    return asyncio.run(_with_session(settings, work))


def cmd_audit_list(args, settings: Settings) -> dict:
    async def work(session, keyring):
        if args.action is not None and args.action not in audit_service.ACTIONS:
            raise errors.DcsError(f"--action must be one of {', '.join(audit_service.ACTIONS)}")
        if args.start_time and args.end_time and args.end_time < args.start_time:
            raise errors.DcsError("--end-time is before --start-time")
        async with audit_service.journal_sessions(settings.effective_database_url) as journal:
            total, records = await audit_service.list_audit(
                session, journal, args.project_id, offset=max(args.offset, 0), limit=max(args.limit, 1),
                start=args.start_time, end=args.end_time, action=args.action, instance_id=args.instance_id,
                actor=args.actor)
        return {"total_num": total, "records": records}
    return asyncio.run(_with_session(settings, work))
