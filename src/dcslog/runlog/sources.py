"""Finding a run log's rotated siblings.

Recognised names next to ``redis.log`` (each optionally ending in ``.gz``):

* ``redis.log.N`` (logrotate's numbered scheme): a bigger N is older;
* ``redis.log-YYYYMMDD[...]`` (``dateext``, e.g. ``-2026112612`` or
  ``-20261126-1764159600``): ordered by that suffix, a smaller one is older.

When both schemes are present (a changed rotation config), the two ordered
groups are merged by modification time. When ``X`` and ``X.gz`` both exist the
compressor is still running, so the complete uncompressed ``X`` wins.
"""

from __future__ import annotations

import heapq
import os

__all__ = ["log_sources"]


def log_sources(logfile: str) -> list[str]:
    """The current log file plus its rotated siblings, oldest first, current last.

    A missing current file is left out; a missing directory gives ``[]``.
    """
    directory, base = os.path.split(logfile)
    try:
        names = set(os.listdir(directory or "."))
    except (FileNotFoundError, NotADirectoryError):
        return []
    by_number, by_date = [], []
    for name in names:
        if name.endswith(".gz") and name[:-3] in names:
            continue
        suffix = name.removesuffix(".gz")[len(base) + 1:]
        if not name.startswith(base) or not suffix.isascii():
            continue
        sep = name[len(base):len(base) + 1]
        if sep == "." and suffix.isdigit():
            by_number.append((-int(suffix), name))
        elif sep == "-" and suffix[:8].isdigit() and suffix.replace("-", "").isdigit():
            by_date.append((suffix, name))
    paths = [[os.path.join(directory, name) for _, name in sorted(group)]
             for group in (by_date, by_number)]
    rotated = list(heapq.merge(*paths, key=_mtime)) if all(paths) else paths[0] + paths[1]
    if base in names:
        rotated.append(logfile)
    return rotated


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:  # rotated away meanwhile; its place hardly matters
        return 0.0
