"""Staged files: where a collected day is written before a store publishes it (shared by every store)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


class Staging:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def stage(self) -> tuple[int, str]:
        """A new empty file to write into: (open fd, path)."""
        return tempfile.mkstemp(dir=self.directory, suffix=".part")

    def discard(self, staged_path: str) -> None:
        try:
            os.unlink(staged_path)
        except FileNotFoundError:
            pass

    def clean(self, older_than: float) -> int:
        """Remove staged files left by a crashed process; return how many. Only old ones:
        another process sharing the directory may be writing a fresh one right now."""
        cutoff = time.time() - older_than
        removed = 0
        for leftover in self.directory.glob("*.part"):
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed
