"""Staged files: where a collected day is written before a store publishes it (shared by every store).

Several processes may share a staging directory (a `dcslog serve` and `dcslog worker`s on
one data directory), so every staged file says whose it is. A process that stages files
holds a *presence file* there, ``{mark}.lock``, locked with ``flock(2)`` for as long as it
lives, and names its staged files ``{mark}.*.part``. The kernel drops the lock when the
process ends, however it ends (SIGKILL, the OOM killer), and only then: a presence file
whose lock can be taken belongs to a dead process, whose staged files are garbage at once.
Process ids are not used to tell: a restarted container has the same pid every time, and
processes in other pid namespaces may share the directory; a lock cannot be fooled by
either. The presence file also names its host and lists the lease owners of the process
(``services.jobs.Leaseholder.owner``), so whoever finds the process dead can free its jobs at
once (``Leaseholder.take_over_dead_runs``). Presence files of other hosts (a directory on a
network filesystem) are never taken for dead: a lock there may be local to each client.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import logging
import os
import re
import secrets
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_LOCK_SUFFIX = ".lock"
# A mark: the pid (for whoever reads the directory: it decides nothing) and a random part.
_MARK = re.compile(r"p[0-9]+-[0-9a-f]{12}")


def _host() -> str:
    return socket.gethostname()


@dataclass
class _Presence:
    """This process's presence file in one directory (its open, locked descriptor); mark None
    where the filesystem has no locks: staged files are then unmarked (the age rule applies)."""
    mark: str | None
    fd: int
    owners: set[str]


# (pid, directory) -> this process's presence there. Keyed by pid too: a forked child is a
# process of its own and must not stage under its parent's mark.
_presences: dict[tuple[int, Path], _Presence] = {}
_presences_lock = threading.Lock()


def _forget_parents_presences() -> None:
    # A forked child's copies of its parent's locked descriptors would keep the parent looking
    # alive after it died: the lock goes only when every descriptor of it is closed.
    global _presences_lock
    _presences_lock = threading.Lock()  # another thread may have held it at the fork
    for key, presence in list(_presences.items()):
        if key[0] != os.getpid():
            os.close(presence.fd)
            del _presences[key]


os.register_at_fork(after_in_child=_forget_parents_presences)


@atexit.register
def _leave() -> None:
    """A process that ends normally removes its presence files, so that the next start finds
    no dead process; unless it left staged files behind, which the file then marks as a dead
    process's for whoever looks next."""
    for (pid, directory), presence in list(_presences.items()):
        if pid != os.getpid() or presence.mark is None:
            continue
        try:
            if not any(p.name.startswith(f"{presence.mark}.") for p in directory.glob("*.part")):
                os.unlink(directory / f"{presence.mark}{_LOCK_SUFFIX}")
        except OSError:
            pass


@dataclass
class DeadProcess:
    """A dead process found in a staging directory: its mark, host, and the lease owners it
    registered. Its lock is held (by ``Staging.dead_processes``) until ``forget`` or ``keep``."""
    mark: str
    host: str
    owners: list[str]
    staged_files: int  # removed
    path: Path
    fd: int


class Staging:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _presence(self) -> _Presence:
        """This process's presence file here, made on first use: written and locked under a
        temporary name, then renamed into place, so nobody ever sees it unlocked."""
        key = (os.getpid(), self.directory.resolve())
        with _presences_lock:
            presence = _presences.get(key)
            if presence is None:
                mark: str | None = f"p{os.getpid()}-{secrets.token_hex(6)}"
                path = self.directory / f"{mark}{_LOCK_SUFFIX}"
                temporary = self.directory / f"{mark}{_LOCK_SUFFIX}.new"
                fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    os.write(fd, f"host {_host()}\n".encode())
                    os.rename(temporary, path)
                except BaseException as exc:
                    os.close(fd)
                    os.unlink(temporary)
                    if not isinstance(exc, OSError):
                        raise
                    # Not a reason to stop collecting: dead runs are then found by their leases only.
                    log.warning("no file locks in %s (%s): a crashed process's staged files there are removed "
                                "after a day, and its jobs taken over when their leases run out", self.directory, exc)
                    mark, fd = None, -1
                presence = _presences[key] = _Presence(mark, fd, set())
            return presence

    @property
    def mark(self) -> str | None:
        """What this process's staged files here are named after."""
        return self._presence().mark

    def register(self, owner: str) -> None:
        """Record ``owner`` (a worker's lease owner) in this process's presence file, before it
        claims any job: whoever finds the process dead frees that owner's jobs."""
        presence = self._presence()
        with _presences_lock:
            if presence.mark is not None and owner not in presence.owners:
                os.write(presence.fd, f"owner {owner}\n".encode())
                presence.owners.add(owner)

    def stage(self) -> tuple[int, str]:
        """A new empty file to write into: (open fd, path)."""
        mark = self.mark
        return tempfile.mkstemp(dir=self.directory, prefix=f"{mark}." if mark else "tmp", suffix=".part")

    def discard(self, staged_path: str) -> None:
        try:
            os.unlink(staged_path)
        except FileNotFoundError:
            pass

    def _own_marks(self) -> set[str]:
        directory = self.directory.resolve()
        with _presences_lock:
            return {p.mark for (pid, d), p in _presences.items()
                    if pid == os.getpid() and d == directory and p.mark is not None}

    def _lock_if_dead(self, path: Path) -> int | None:
        """An open descriptor of the presence file at ``path`` with its lock taken, or None
        while its process lives (or the file went meanwhile)."""
        try:
            fd = os.open(path, os.O_RDONLY)  # flock(2) needs no more
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                log.warning("cannot lock %s to tell whether its process lives: %s", path, exc)
            return None
        try:  # another finder may have removed it between our open and our lock
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
        return None

    def _parts_of(self, mark: str) -> list[Path]:
        return [p for p in self.directory.glob("*.part") if p.name.startswith(f"{mark}.")]

    def dead_processes(self) -> list[DeadProcess]:
        """The processes of this host that staged files here and are gone, with their staged
        files removed. Their presence files stay locked by this process until ``forget`` (after
        their jobs were freed) or ``keep`` (try again later)."""
        own, host, found = self._own_marks(), _host(), []
        try:
            for path in self.directory.glob(f"*{_LOCK_SUFFIX}"):
                mark = path.name[:-len(_LOCK_SUFFIX)]
                if mark in own or (fd := self._lock_if_dead(path)) is None:
                    continue
                try:
                    lines = os.pread(fd, 1 << 20, 0).decode(errors="replace").splitlines()
                except BaseException:
                    os.close(fd)
                    raise
                its_host = next((line[5:] for line in lines if line.startswith("host ")), "")
                if its_host != host:
                    os.close(fd)  # another host's: unknowable from here (the age rule of ``clean`` applies)
                    continue
                found.append(DeadProcess(mark, its_host, [line[6:] for line in lines if line.startswith("owner ")],
                                         0, path, fd))
                for part in self._parts_of(mark):
                    self.discard(str(part))
                    found[-1].staged_files += 1
        except BaseException:
            self.keep(found)
            raise
        return found

    def forget(self, dead: list[DeadProcess]) -> None:
        """Remove the presence files of dead processes whose jobs are freed."""
        for process in dead:
            try:
                os.unlink(process.path)
            except FileNotFoundError:
                pass
            os.close(process.fd)

    def keep(self, dead: list[DeadProcess]) -> None:
        """Leave the presence files of dead processes for the next look (freeing their jobs failed)."""
        for process in dead:
            os.close(process.fd)

    def clean(self, older_than: float) -> int:
        """Remove staged files left by a crashed process that nobody took for dead (one of
        another host; one from before staged files were marked), and such dead processes'
        presence files; only old ones, and never a live process's, however old. Returns how
        many staged files went."""
        cutoff = time.time() - older_than
        live = self._own_marks()
        dead = set()
        for path in self.directory.glob(f"*{_LOCK_SUFFIX}"):
            mark = path.name[:-len(_LOCK_SUFFIX)]
            if mark in live:
                continue
            fd = self._lock_if_dead(path)
            if fd is None:
                live.add(mark)
                continue
            dead.add(mark)
            try:
                if os.fstat(fd).st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)
        for unfinished in self.directory.glob(f"*{_LOCK_SUFFIX}.new"):  # a process that died making its own
            fd = self._lock_if_dead(unfinished)
            if fd is not None:
                try:
                    if os.fstat(fd).st_mtime < cutoff:
                        unfinished.unlink()
                except FileNotFoundError:
                    pass
                finally:
                    os.close(fd)
        removed = 0
        for leftover in self.directory.glob("*.part"):
            mark = leftover.name.split(".", 1)[0]
            if _MARK.fullmatch(mark) and mark not in dead and (mark in live or self._lock_exists(mark)):
                continue  # its process lives (or started after the look above)
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    def _lock_exists(self, mark: str) -> bool:
        return (self.directory / f"{mark}{_LOCK_SUFFIX}").exists()
