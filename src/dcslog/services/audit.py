"""The audit trail (SPEC §8): who did what, from where, recorded in the same transaction as the action.

A service that changes state or releases data takes an ``Actor`` and calls ``record`` before its
commit: the record and the action commit together or not at all, so an action that cannot be
recorded is not done (the commit fails, the caller gets the error). What is recorded:

* ``instance.import|refresh|remove`` (the CLI: actor ``system``, the operating-system user),
  target the instance's name;
* ``credential.create|revoke`` (target the access key) and ``token.create|revoke`` (target the
  token's id ``tok-…``, never the token), by the CLI, and revocations by an admin through the API;
* ``runlog.collect`` — CreateRedislog (the caller) and automatic capture (actor ``dcslog``, type
  ``system``) — target the task id;
* ``link.create`` (target ``{file_id}/links/{link_id}``), ``link.revoke`` (the same, or
  ``{file_id}/links`` for all of a file's links);
* ``link.download`` (actor the link's id, type ``link``; target the file id), committed before
  the first byte is sent; the answer of ``list_audit`` names who made the link
  (``link_created_by``, from its ``link.create`` record);
* ``task.delete`` (target the task id).

Outcomes: ``succeeded``; ``failed`` for an action that ran and changed state without reaching its
aim (a refresh that could not reach Redis marks the instance ``ERROR``); ``unchanged`` for a
revocation of what was revoked already. A request refused (DCS.4017, 404, 403…) changed nothing
and released nothing: it is not recorded (its access-log line, with the request id, remains).

Never a secret: tokens, secret keys, link tokens (their signatures) and Redis URLs are not
arguments of anything here; ids only.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dcslog import errors
from dcslog.db import queries
from dcslog.db.inline import InlineInserts
from dcslog.db.models import AuditRecord, new_audit_id
from dcslog.db.session import (
    audit_journal_url,
    create_sessionmaker,
    open_audit_journal,
    sqlite_file,
)
from dcslog.observability import JOURNAL_WAITS
from dcslog.roles import Caller
from dcslog.services.common import dcs_time, utcnow

log = logging.getLogger(__name__)

ACTIONS = ("instance.import", "instance.refresh", "instance.remove", "credential.create", "credential.revoke",
           "token.create", "token.revoke", "runlog.collect", "link.create", "link.download", "link.revoke",
           "task.delete")
ACTOR_TYPES = ("access_key", "token", "link", "system")
SUCCEEDED, FAILED, UNCHANGED = "succeeded", "failed", "unchanged"
OUTCOMES = (SUCCEEDED, FAILED, UNCHANGED)
#: How deep a page of the trail may end (offset + limit): a merge of two files' first records is
#: built on the event loop (ORM rows), so it is bounded; as search APIs bound result windows.
MAX_WINDOW = 10_000
SWEEP_BATCH = 10_000  # records deleted per transaction by the retention sweep
#: The actor of dcslog's own actions (automatic capture): the tasks' ``user_name``, too.
SERVICE_USER = "dcslog"


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where (the request's source address and id; None outside a request)."""

    actor: str
    actor_type: str
    source_ip: str | None = None
    request_id: str | None = None

    @classmethod
    def of_caller(cls, caller: Caller, source_ip: str | None, request_id: str | None) -> Actor:
        """An API caller: its access key, or its token's id (``tok-…``)."""
        kind = "token" if caller.user_id.startswith("tok-") else "access_key"
        return cls(caller.user_id, kind, source_ip, request_id)

    @classmethod
    def of_link(cls, link_id: str | None, source_ip: str | None, request_id: str | None) -> Actor:
        """A download link, by its id (links made before ids existed have none: ``-``)."""
        return cls(link_id or "-", "link", source_ip, request_id)


def system_actor() -> Actor:
    """The admin commands' actor: the operating-system user running them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = f"uid:{os.geteuid()}"
    return Actor(user, "system")


SERVICE = Actor(SERVICE_USER, "system")


def _values(actor: Actor, action: str, project_id: str, instance_id: str | None, target: str | None,
            outcome: str) -> dict[str, Any]:
    if action not in ACTIONS:  # a programming error: caught by the tests, never a client's
        raise ValueError(f"unknown audit action {action!r}")
    return {"time": utcnow(), "project_id": project_id, "actor": actor.actor, "actor_type": actor.actor_type,
            "action": action, "instance_id": instance_id, "target": target, "source_ip": actor.source_ip,
            "request_id": actor.request_id, "outcome": outcome}


def record(session: AsyncSession, actor: Actor, action: str, *, project_id: str, instance_id: str | None = None,
           target: str | None = None, outcome: str = SUCCEEDED) -> None:
    """Add the action's record to the session's transaction: it commits with the action."""
    session.add(AuditRecord(**_values(actor, action, project_id, instance_id, target, outcome)))


class Journal:
    """Records of actions that write nothing else — a link made, a download released — committed
    in groups: each caller waits until its own record is committed (and is refused if that
    fails), but the records of requests arriving together share one transaction. One per API
    process (``state.JOURNAL``), made by ``open`` and closed by ``close``.

    On SQLite they go to a file of their own (``db.session.audit_journal_url``): a commit to the
    main file would change its ``data_version`` and empty every API process's read cache, and
    take the single writer's turn. There a group is committed on the loop's own thread (a WAL
    append, ~0.2 ms, against ~2 ms through aiosqlite's thread hops), and only when another
    connection holds the file's lock through aiosqlite, which waits its turn (docs/design.md,
    "Audit trail", has the figures). A file removed or replaced under the process is opened anew
    (and created: as at a start) before the next commit — never written to where no one reads.
    Reads of the trail (``list_audit``) and its retention sweep cover both files;
    ``own_sessions`` is that file's sessions, None where the records go to the main database."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], database_url: str | None = None):
        self._main_sessionmaker = sessionmaker
        self._sessionmaker = sessionmaker
        self._database_url = database_url  # set: the records go to a file of their own
        self._path: str | None = None
        self._identity: tuple[int, int] | None = None
        self._engine: AsyncEngine | None = None
        self._inline: InlineInserts | None = None
        self.own_sessions: async_sessionmaker[AsyncSession] | None = None
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, database_url: str, sessionmaker: async_sessionmaker[AsyncSession]) -> Journal:
        """The journal of the database at ``database_url`` (whose sessions ``sessionmaker`` makes)."""
        if audit_journal_url(database_url) is None:
            return cls(sessionmaker)
        journal = cls(sessionmaker, database_url)
        await journal._open_file()
        return journal

    async def _open_file(self) -> None:
        assert self._database_url is not None
        journal_url = audit_journal_url(self._database_url)
        engine = await open_audit_journal(self._database_url)
        assert engine is not None and journal_url is not None
        self._path = sqlite_file(journal_url)
        assert self._path is not None
        self._engine, self._inline = engine, InlineInserts(self._path, cast(Table, AuditRecord.__table__))
        self._sessionmaker = self.own_sessions = create_sessionmaker(engine)
        self._identity = _file_identity(self._path) if self._path else None

    async def _close_file(self) -> None:
        if self._inline is not None:
            self._inline.close()
        if self._engine is not None:
            await self._engine.dispose()
        self._engine = self._inline = None

    async def close(self) -> None:
        await self._close_file()

    async def record(self, actor: Actor, action: str, *, project_id: str, instance_id: str | None = None,
                     target: str | None = None) -> None:
        """Return once the record is committed; raise what the commit raised if it failed."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        values = _values(actor, action, project_id, instance_id, target, SUCCEEDED)
        values["id"] = new_audit_id()  # the inline insert applies no column default
        self._pending.append((values, done))
        if self._flushing is None or self._flushing.done():
            # A task of its own: a caller that goes away does not cancel the others' commit.
            self._flushing = loop.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._commit([values for values, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every waiter: their actions are refused
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _commit(self, rows: list[dict[str, Any]]) -> None:
        if self._path is not None and _file_identity(self._path) != self._identity:
            # Removed or replaced (an operator, a restore): the connections held would write into a
            # file no one reads any more.
            log.warning("the audit journal %s was removed or replaced: opening it anew", self._path)
            await self._close_file()
            await self._open_file()
        # One executemany, no unit of work: the rows are only ever inserted.
        if self._inline is not None:
            if self._inline.insert(rows):
                return
            JOURNAL_WAITS.inc()  # another connection holds the file: wait for it, off the loop
        async with self._sessionmaker() as session:
            await session.execute(insert(AuditRecord), rows)
            await session.commit()


def _file_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class DownloadBudget:
    """How many downloads through links each project may still make on this API process
    (``DCSLOG_DOWNLOADS_PER_MINUTE``): a token bucket per project holding at most a minute's
    worth, refilled at that rate. It is what bounds the audit trail's disk: every download is a
    record kept for ``DCSLOG_AUDIT_RETENTION_DAYS`` (docs/design.md, "Audit trail"). A refused
    download releases nothing and is not recorded. Per process, like the journal: N API processes
    allow N times the rate."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self._per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # project → (tokens, when counted)

    def check(self, project_id: str) -> None:
        """Raise ``Throttled`` now if ``take`` would: for a download whose preparation costs (a
        records link converts), before it is paid for."""
        self._count(project_id, take=False)

    def take(self, project_id: str) -> None:
        """Count one download of ``project_id``, or raise ``Throttled`` (with when to retry)."""
        self._count(project_id, take=True)

    def _count(self, project_id: str, *, take: bool) -> None:
        if self._per_minute <= 0:
            return
        now = self._clock()
        tokens, then = self._buckets.get(project_id, (float(self._per_minute), now))
        tokens = min(float(self._per_minute), tokens + (now - then) * self._per_minute / 60)
        self._buckets[project_id] = (tokens - 1 if take and tokens >= 1 else tokens, now)
        if tokens < 1:
            raise errors.Throttled(
                f"This project's downloads through links reached {self._per_minute} a minute on this server.",
                retry_after=math.ceil((1 - tokens) * 60 / self._per_minute))


@contextlib.asynccontextmanager
async def journal_sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession] | None]:
    """Sessions of the journal's file of its own beside the database at ``database_url`` (SQLite),
    opened for the block; None where the journal's records are in that database, or where its file
    does not exist (yet): nothing to read or sweep, and a command run by another user (root) must
    not create a file the service's user then cannot open."""
    engine = await open_audit_journal(database_url, create=False)
    if engine is None:
        yield None
        return
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


def link_target(file_id: str, link_id: str | None = None) -> str:
    return f"{file_id}/links" + (f"/{link_id}" if link_id else "")


def audit_item(row: AuditRecord, link_makers: dict[str, tuple[str, str]]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row.id, "time": dcs_time(row.time), "project_id": row.project_id, "actor": row.actor,
        "actor_type": row.actor_type, "action": row.action, "instance_id": row.instance_id, "target": row.target,
        "source_ip": row.source_ip, "request_id": row.request_id, "outcome": row.outcome}
    if row.action == "link.download":
        # Attributed to the link, and so to whoever made it (extension fields).
        maker = link_makers.get(link_target(row.target or "", row.actor))
        item["link_created_by"], item["link_created_by_type"] = maker if maker else (None, None)
    return item


async def list_audit(session: AsyncSession, journal: async_sessionmaker[AsyncSession] | None, project_id: str, *,
                     offset: int, limit: int, start: datetime | None = None, end: datetime | None = None,
                     action: str | None = None, instance_id: str | None = None,
                     actor: str | None = None) -> tuple[int, list[dict[str, Any]]]:
    """The project's records matching the filters: how many, and one page, newest first. A
    ``link.download`` record names the link's maker (its ``link.create`` record), when kept.
    ``journal``: the sessions of the journal's file of its own (``Journal.own_sessions``,
    ``journal_sessions``), or None. With such a file, the page is merged from both files' first
    ``offset + limit`` (an admin's occasional read; the trail's paging is by offset anyway), which
    is why a page ends at most ``MAX_WINDOW`` records deep: deeper, narrow the time window."""
    if offset + limit > MAX_WINDOW:
        raise errors.InvalidParameter("offset", f"offset + limit may reach {MAX_WINDOW} at most: page within a "
                                                "narrower start_time/end_time window instead.")
    async def page(each: AsyncSession, offset: int, limit: int) -> tuple[int, list[AuditRecord]]:
        return await queries.audit_page(each, project_id, offset=offset, limit=limit, start=start, end=end,
                                        action=action, instance_id=instance_id, actor=actor)

    async with contextlib.AsyncExitStack() as stack:
        sessions = [session]
        if journal is not None:
            sessions.append(await stack.enter_async_context(journal()))
        if len(sessions) == 1:
            total, rows = await page(session, offset, limit)
        else:
            total, rows = 0, []
            for each in sessions:
                count, first = await page(each, 0, offset + limit)
                total += count
                rows += first
            rows.sort(key=lambda r: (r.time, r.id), reverse=True)
            rows = rows[offset:offset + limit]
        wanted = {link_target(r.target or "", r.actor) for r in rows if r.action == "link.download"}
        makers: dict[str, tuple[str, str]] = {}
        for each in sessions:
            makers |= await queries.link_makers(each, project_id, wanted)
    return total, [audit_item(r, makers) for r in rows]


async def sweep_audit(session: AsyncSession, journal: async_sessionmaker[AsyncSession] | None,
                      retention_days: float) -> int:
    """Delete records older than ``retention_days`` (``DCSLOG_AUDIT_RETENTION_DAYS``), the journal's
    file's too; returns how many."""
    before = utcnow() - timedelta(days=retention_days)
    gone = 0
    async with contextlib.AsyncExitStack() as stack:
        sessions = [session]
        if journal is not None:
            sessions.append(await stack.enter_async_context(journal()))
        for each in sessions:
            # In batches, each its own transaction: a first sweep after a long stop (or a shorter
            # retention) must not hold the journal's lock past a writer's busy timeout.
            while True:
                batch = select(AuditRecord.id).where(AuditRecord.time < before).limit(SWEEP_BATCH)
                result = cast(CursorResult[Any], await each.execute(
                    delete(AuditRecord).where(AuditRecord.id.in_(batch.scalar_subquery()))))
                await each.commit()
                gone += result.rowcount or 0
                if (result.rowcount or 0) < SWEEP_BATCH:
                    break
    return gone
