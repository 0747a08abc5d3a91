"""Finding a run log's rotated siblings.

Recognised names next to ``redis.log`` (each optionally ending in ``.gz``):

* ``redis.log.N`` (logrotate's numbered scheme): a bigger N is older;
* ``redis.log-YYYYMMDD[...]`` (``dateext``, e.g. ``-2026112612`` or
  ``-20261126-1764159600``) and ``0.log.YYYYMMDD-hhmmss`` (the kubelet's
  rotation of a container log): ordered by that suffix, a smaller one is older.

Docker's ``json-file`` rotation (``<id>-json.log.1``, ``.2``…, ``.N.gz`` with
``compress``) is the numbered scheme. A directory stands for the container log
it holds (``container_log``): a Kubernetes pod's container directory
(``/var/log/pods/<ns>_<pod>_<uid>/<container>/``) holds one ``N.log`` per
start of the container (N its restart count; the kubelet keeps the last
one's), each with its rotated copies, read oldest first as one log; a Docker
container's directory, its ``<id>-json.log``. A symbolic link to a log file
(``/var/log/containers/*.log``) is followed, since the rotated copies are
beside the file it points to.

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

    A missing current file is left out; a missing directory gives ``[]``. A
    directory: the container logs in it (see above).
    """
    if os.path.isdir(logfile):
        return [path for log in container_logs(logfile) for path in log_sources(log)]
    if os.path.islink(logfile):
        logfile = os.path.realpath(logfile)
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
        elif (sep == "-" or (sep == "." and "-" in suffix)) and suffix[:8].isdigit() \
                and suffix.replace("-", "").isdigit():
            by_date.append((suffix, name))
    paths = [[os.path.join(directory, name) for _, name in sorted(group)]
             for group in (by_date, by_number)]
    rotated = list(heapq.merge(*paths, key=_mtime)) if all(paths) else paths[0] + paths[1]
    if base in names:
        rotated.append(logfile)
    return rotated


def container_logs(directory: str) -> list[str]:
    """The container logs a directory holds, oldest first: a pod's container directory's
    ``N.log`` by N (restarts), else a Docker container's ``*-json.log``; ``[]`` for none."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    starts = sorted((int(name[:-4]), name) for name in names
                    if name.endswith(".log") and name[:-4].isdigit() and name[:-4].isascii())
    if not starts:
        starts = sorted((0, name) for name in names if name.endswith("-json.log"))
    return [os.path.join(directory, name) for _, name in starts]


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:  # rotated away meanwhile; its place hardly matters
        return 0.0
