"""The embedded object store: a local directory, files published by rename."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from dcslog.runlog.search import FileSource
from dcslog.storage.staging import Staging


class LocalObjectStore:
    """Keys are relative paths under ``root``. Staged files live in ``root/.staging``,
    on the same filesystem, so publishing is one atomic ``rename``: a reader sees
    the old file or the complete new one, never a partial one."""

    max_link_seconds = None  # dcslog's own links have no ceiling beyond DCSLOG_LINK_TTL

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.staging = Staging(self.root / ".staging")

    def path(self, key: str) -> Path:
        target = (self.root / key).resolve()
        if self.root not in target.parents:
            raise ValueError(f"object key escapes the store: {key!r}")
        return target

    def publish(self, staged_path: str, key: str) -> None:
        target = self.path(key)
        for attempt in range(3):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(staged_path, target)
                break
            except FileNotFoundError:
                # delete() of a sibling key may have removed the directory just now.
                if attempt == 2 or not os.path.exists(staged_path):
                    raise
        # The rename itself must survive a crash, not only the file's bytes.
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def open_segment(self, key: str, stack: ExitStack) -> FileSource:
        """The object as a random-access source for reading records (closed with ``stack``)."""
        f = stack.enter_context(open(self.path(key), "rb", buffering=0))
        return FileSource(f.fileno(), os.fstat(f.fileno()).st_size)

    def delete(self, key: str) -> None:
        target = self.path(key)
        try:
            target.unlink()
        except FileNotFoundError:
            pass
        # Drop the key's now-empty directories, up to the root.
        for parent in target.parents:
            if parent == self.root:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def keys(self, older_than: float) -> Iterator[str]:
        """Keys of the objects stored ``older_than`` seconds ago or before (staged files aside)."""
        cutoff = time.time() - older_than
        for directory, subdirs, names in os.walk(self.root):
            if directory == str(self.root):
                subdirs[:] = [d for d in subdirs if d != ".staging"]
            for name in names:
                path = os.path.join(directory, name)
                try:
                    if os.stat(path).st_mtime < cutoff:
                        yield os.path.relpath(path, self.root)
                except FileNotFoundError:
                    pass  # deleted meanwhile

    def clean_abandoned(self, older_than: float) -> int:
        """Remove what crashed processes left half-written (staged files) ``older_than`` seconds
        ago. (A file is published by one rename: nothing else of it can be half-written here.)"""
        return self.staging.clean(older_than)

    def link(self, key: str, filename: str, expires_at) -> None:
        """None: dcslog serves local files itself, behind its own signed links."""
        return None

