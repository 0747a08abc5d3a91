"""The status words of DCS's run-log files and background tasks, as they go over the wire and into the database.

The service (``services/jobs.py`` moves a job through them), the API's response schemas and the
client commands all read them from here. This module imports nothing: the client, which must
stay light, uses it too.
"""

from __future__ import annotations

from enum import StrEnum


class FileStatus(StrEnum):
    """A run-log file's ``status`` (DCS RunlogItem)."""

    CREATING = "creating"  # being collected (a refresh keeps its previous copy meanwhile)
    SUCCEED = "succeed"  # has a complete copy
    FAILED = "failed"  # has none: its last collection failed, and there was nothing to go back to


class TaskStatus(StrEnum):
    """A background task's ``status`` (DCS ListBackgroundTask)."""

    RUNNING = "running"  # queued or being run: a job the workers claim
    SUCCEED = "succeed"
    FAILED = "failed"
