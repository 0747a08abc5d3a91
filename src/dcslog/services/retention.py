"""Retention: what the worker's sweep deletes, and in which order, so that nothing anyone still needs goes.

One ``Retention.sweep()`` (every ``DCSLOG_SWEEP_INTERVAL``):

* **Expired files**: record first, bytes after — and the record only if it is still expired
  and not ``creating``: a refresh may have claimed it meanwhile, and may fail and need the
  previous copy back. A file past its expiry is already gone for users (list, links,
  downloads), whenever its bytes go.
* **Finished tasks** as old as the files' retention (``DCSLOG_RETENTION_DAYS`` after they ended).
* **Slow-log entries** past ``DCSLOG_SLOWLOG_RETENTION_DAYS`` (the slow-log module's own sweep), and
  **events** with them (``services/node_state.py``).
* **Audit records** past ``DCSLOG_AUDIT_RETENTION_DAYS`` (``services/audit.py``).
* **Half-written uploads and staged files** a crash left behind (``store.clean_abandoned``),
  once ``ABANDONED_AFTER`` old, never a live process's.
* **Unrecorded objects**: dcslog's objects (``storage.objectkeys``) no record points to,
  once ``ABANDONED_AFTER`` old; listed every ``UNRECORDED_EVERY`` (a listing of the whole bucket).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dcslog.config import Settings
from dcslog.db.models import Instance, LogFile, Task
from dcslog.services.audit import journal_sessions, sweep_audit
from dcslog.services.common import utcnow
from dcslog.services.node_state import sweep_events
from dcslog.services.slowlog_harvest import sweep_slowlog
from dcslog.statuses import FileStatus, TaskStatus
from dcslog.storage import ObjectStore
from dcslog.storage.objectkeys import parse

log = logging.getLogger(__name__)

# Age after which a staged file, an S3 multipart upload or an unrecorded object is taken for a
# crash's leftover: far beyond any live upload of one day's log (a live one is never touched),
# and beyond the seconds between a run's publish and its record.
ABANDONED_AFTER = 24 * 3600.0
# How often a worker lists the store for objects no record points to (a full listing of the bucket).
UNRECORDED_EVERY = 6 * 3600.0
UNRECORDED_BATCH = 500  # keys looked up in the database at once


class Retention:
    """The retention sweep of one worker (it remembers when it last listed the store)."""

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], store: ObjectStore):
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.store = store
        self._next_unrecorded_sweep = 0.0  # loop time

    async def sweep(self) -> int:
        """Everything past retention, in the order of the module's docstring. Returns the files deleted."""
        deleted = await self.delete_expired_files()
        async with self.sessionmaker() as session:
            await delete_finished_tasks(session, self.settings.retention_days)
            await sweep_slowlog(session, self.settings.slowlog_retention_days)
            await sweep_events(session, self.settings.slowlog_retention_days)
            async with journal_sessions(self.settings.effective_database_url) as journal:
                await sweep_audit(session, journal, self.settings.audit_retention_days)
        if deleted:
            log.info("retention: deleted %d expired file(s)", deleted)
        try:
            abandoned = await asyncio.to_thread(self.store.clean_abandoned, ABANDONED_AFTER)
        except Exception as exc:  # noqa: BLE001 - e.g. no s3:ListBucketMultipartUploads: retention went on
            log.warning("could not look for half-written uploads left by a crash: %s", exc)
        else:
            if abandoned:
                log.info("retention: removed %d half-written upload(s) or staged file(s) left by a crash", abandoned)
        try:
            unrecorded = await self.delete_unrecorded()
        except Exception as exc:  # noqa: BLE001 - retried at the next sweep
            log.warning("could not look for stored files no record points to: %s", exc)
        else:
            if unrecorded:
                log.info("retention: deleted %d stored file(s) no record points to", unrecorded)
        return deleted

    async def delete_expired_files(self) -> int:
        """Files past their expiry: record first, bytes after. Returns how many went."""
        now = utcnow()
        deleted = 0
        async with self.sessionmaker() as session:
            expired = list(await session.execute(select(LogFile.id, LogFile.object_key).where(
                LogFile.expires_at < now, LogFile.status != FileStatus.CREATING)))
            for file_id, key in expired:
                # Only if the row is still expired: a collection may have just claimed it for a
                # refresh (new expiry, creating).
                gone = cast(CursorResult[Any], await session.execute(delete(LogFile).where(
                    LogFile.id == file_id, LogFile.expires_at < now, LogFile.status != FileStatus.CREATING)))
                await session.commit()
                if gone.rowcount == 1:
                    deleted += 1
                    if key:
                        await asyncio.to_thread(self.store.delete, key)
        return deleted

    async def delete_unrecorded(self) -> int:
        """Delete dcslog's objects that no file record points to and that are ABANDONED_AFTER old:
        bytes whose delete failed after their record went (retention, a refresh's old copy), or that
        a run published just before it died. A live run records its object seconds after publishing.
        Only objects of instances this database knows are touched: another deployment's database
        pointed at the same bucket (a test setup, a wrong URL) must not take its files for garbage.
        At most once every UNRECORDED_EVERY (returns 0 in between)."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_unrecorded_sweep:
            return 0
        old = await asyncio.to_thread(
            lambda: [(key, parts) for key in self.store.keys(ABANDONED_AFTER) if (parts := parse(key)) is not None])
        self._next_unrecorded_sweep = loop.time() + UNRECORDED_EVERY  # a failed listing is tried next sweep
        removed = 0
        for start in range(0, len(old), UNRECORDED_BATCH):
            batch = old[start:start + UNRECORDED_BATCH]
            async with self.sessionmaker() as session:
                known = set(await session.scalars(select(Instance.id).where(
                    Instance.id.in_({parts.instance_id for _, parts in batch}))))
                recorded = set(await session.scalars(  # by primary key, then the key it records
                    select(LogFile.object_key).where(LogFile.id.in_({parts.file_id for _, parts in batch}))))
            for key, parts in batch:
                if parts.instance_id in known and key not in recorded:
                    await asyncio.to_thread(self.store.delete, key)
                    removed += 1
        return removed


async def delete_finished_tasks(session: AsyncSession, retention_days: float) -> int:
    """Tasks that ended (``succeed``/``failed``) ``retention_days`` ago or before: they go with their files."""
    cutoff = utcnow() - timedelta(days=retention_days)
    deleted = cast(CursorResult[Any], await session.execute(
        delete(Task).where(Task.status != TaskStatus.RUNNING, Task.updated_at < cutoff)))
    await session.commit()
    return deleted.rowcount
