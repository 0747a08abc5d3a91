"""Owner-only files and directories: the data directory and the SQLite database.

The database holds access keys (encrypted), token hashes, Redis topology and slow-log
arguments; the data directory holds it, ``server.key`` and the collected files. None of
it is for other local users, whatever the umask: the directory is created 0700 and the
database (and SQLite's ``-wal``/``-shm`` beside it) 0600.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("dcslog")

SHARED_BITS = stat.S_IRWXG | stat.S_IRWXO


def make_private_dir(path: str | Path) -> bool:
    """Create ``path`` (and its missing parents) with the last component 0700; True if it was
    created here. An existing directory is left as it is: see ``warn_if_shared``."""
    path = Path(path)
    if path.is_dir():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)  # parents: what the system gives them
    try:
        path.mkdir(mode=0o700)  # umask can only take bits away from 0700
    except FileExistsError:  # another process created it just now
        return False
    return True


def warn_if_shared(path: str | Path, what: str = "data directory") -> bool:
    """Log a warning if ``path`` is a directory other local users may enter or read; True if so.

    A directory dcslog did not create is not tightened behind the operator's back (it may be a
    mount point, or shared with a backup group on purpose); what dcslog writes into it is
    owner-only anyway, so what the others can see is file names, not contents."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(mode) or not mode & SHARED_BITS:
        return False
    log.warning("the %s %s is open to other users (mode %03o): it holds the database, server.key and "
                "collected files; make it owner-only: chmod 700 %s", what, path, stat.S_IMODE(mode), path)
    return True


def create_private_file(path: str | Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True if it was created here.

    For the SQLite database: an empty file is a valid empty database, and SQLite creates its
    ``-wal`` and ``-shm`` files with the permissions of the database file, so creating the
    file first (instead of letting SQLite create it 0644 & ~umask) makes all three private."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def tighten(*paths: str | Path) -> None:
    """Take group and other permissions off each of ``paths`` that exists and is ours (files an
    older dcslog created 0644: they are dcslog's own, so they are fixed, not only warned about)."""
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if st.st_mode & SHARED_BITS and st.st_uid == os.geteuid():
            try:
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~SHARED_BITS)
            except OSError as exc:  # a read-only file system: say so, and go on
                log.warning("could not make %s owner-only: %s", path, exc)


def private_sqlite_file(path: str | Path) -> None:
    """The SQLite database at ``path`` made owner-only before anything opens it: its directory
    created 0700 if missing, the file created 0600 if missing, and an existing database and
    its ``-wal``/``-shm`` files tightened to owner-only."""
    path = Path(path)
    make_private_dir(path.parent)
    if not create_private_file(path):
        tighten(path, f"{path}-wal", f"{path}-shm")
