"""The admin commands of ``dcslog``: credentials, tokens, instances and the schema, run against the
configured database (``cli`` imports this module only when one of them runs)."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from typing import Any, Awaitable, Callable

from sqlalchemy import select

from dcslog import errors
from dcslog.config import Settings
from dcslog.db.models import Credential, Instance, Token
from dcslog.db.session import create_engine, create_sessionmaker
from dcslog.keys import Keyring, hash_token, load_server_key, new_access_key, new_secret_key, new_token
from dcslog.services import instances as instance_service
from dcslog.services.common import get_instance, utcnow
from dcslog.storage import open_object_store


async def _with_session(settings: Settings, work: Callable[..., Awaitable[Any]]) -> Any:
    engine = create_engine(settings.effective_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return await work(session, Keyring(load_server_key(settings)))
    finally:
        await engine.dispose()


def cmd_db_upgrade(args, settings: Settings) -> dict:
    return {"database": "upgraded"}


def cmd_credentials_create(args, settings: Settings) -> dict:
    secret_key = new_secret_key()

    async def work(session, keyring):
        credential = Credential(access_key=new_access_key(), secret_encrypted=keyring.encrypt(secret_key),
                                project_id=args.project_id, role=args.role, created_at=utcnow())
        session.add(credential)
        await session.commit()
        return {"access_key": credential.access_key, "secret_key": secret_key,
                "project_id": credential.project_id, "role": credential.role}
    return asyncio.run(_with_session(settings, work))


def cmd_credentials_list(args, settings: Settings) -> list[dict]:
    async def work(session, keyring):
        query = select(Credential).order_by(Credential.created_at)
        if args.project_id:
            query = query.where(Credential.project_id == args.project_id)
        return [{"access_key": c.access_key, "project_id": c.project_id, "role": c.role,
                 "created_at": c.created_at.isoformat() + "Z"} for c in await session.scalars(query)]
    return asyncio.run(_with_session(settings, work))


def cmd_credentials_delete(args, settings: Settings) -> dict:
    async def work(session, keyring):
        credential = await session.get(Credential, args.access_key)
        if credential is None:
            raise errors.NotFound(f"No credential with access key {args.access_key}.")
        await session.delete(credential)
        await session.commit()
        return {"access_key": args.access_key, "deleted": True}
    return asyncio.run(_with_session(settings, work))


def cmd_token_create(args, settings: Settings) -> dict:
    token = new_token()

    async def work(session, keyring):
        now = utcnow()
        row = Token(token_hash=hash_token(token), project_id=args.project_id, role=args.role, created_at=now,
                    expires_at=now + timedelta(seconds=settings.token_ttl))
        session.add(row)
        await session.commit()
        return {"token": token, "expires_at": row.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "project_id": row.project_id, "role": row.role}
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
    """Say now, on stderr, what would otherwise surface as failed collections: a node with no log
    file, or whose log this machine cannot read (Debian's redis-server writes /var/log/redis as
    redis:adm, mode 0640)."""
    for group in view["group_list"]:
        for node in group["replication_list"]:
            path, address = node["log_file"], f"{node['replication_ip']}:{node['replication_port']}"
            if node["agent"]:
                continue
            if not path:
                print(f"warning: {address} has no log file dcslog can collect ({node['log_file_error']}). "
                      f"Start Redis with --logfile, or give the path with --log-file {address}=PATH.",
                      file=sys.stderr)
                continue
            if not os.path.exists(path):
                why = "no such file on this machine"
            elif not os.access(path, os.R_OK):
                why = f"user {_user_name()} may not read it"
            else:
                continue
            print(f"warning: {address} logs to {path}: {why}. A worker "
                  "running here as this user cannot collect that node: run it as a user who can read the file "
                  "(Debian: group adm), give the path with --log-file, or read the node through a `dcslog agent` "
                  "(--agent).", file=sys.stderr)


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def cmd_instances_import(args, settings: Settings) -> dict:
    async def work(session, keyring):
        instance = await instance_service.import_instance(
            session, keyring, project_id=args.project_id, name=args.name, redis_url=args.redis,
            log_file_overrides=_parse_node_map(args.log_file, "--log-file", "HOST:PORT=PATH"),
            timezone=args.timezone, description=args.description, redis_timeout=settings.redis_timeout,
            agents=_parse_node_map(args.agent, "--agent", "HOST:PORT=URL"), agent_key=args.agent_key)
        return await _instance_with_groups(session, instance)
    return asyncio.run(_with_session(settings, work))


async def _find_instance(session, args) -> Instance:
    if args.project_id:
        return await get_instance(session, args.project_id, args.instance_id)
    instance = await session.get(Instance, args.instance_id)
    if instance is None:
        raise errors.InstanceNotFound()
    return instance


def cmd_instances_list(args, settings: Settings) -> list[dict]:
    async def work(session, keyring):
        query = select(Instance).order_by(Instance.created_at)
        if args.project_id:
            query = query.where(Instance.project_id == args.project_id)
        return [await instance_service.instance_view(session, i) for i in await session.scalars(query)]
    return asyncio.run(_with_session(settings, work))


def cmd_instances_show(args, settings: Settings) -> dict:
    async def work(session, keyring):
        return await _instance_with_groups(session, await _find_instance(session, args))
    return asyncio.run(_with_session(settings, work))


def cmd_instances_refresh(args, settings: Settings) -> dict:
    async def work(session, keyring):
        instance = await instance_service.refresh_instance(
            session, keyring, await _find_instance(session, args), redis_timeout=settings.redis_timeout,
            prune=args.prune, timezone=args.timezone)
        return await _instance_with_groups(session, instance)
    return asyncio.run(_with_session(settings, work))


def cmd_instances_remove(args, settings: Settings) -> dict:
    async def work(session, keyring):
        deleted = await instance_service.remove_instance(session, open_object_store(settings),
                                                         await _find_instance(session, args))
        return {"instance_id": args.instance_id, "removed": True, "files_deleted": deleted}
    return asyncio.run(_with_session(settings, work))
