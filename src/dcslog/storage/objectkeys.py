"""Where a collected file's bytes live in a store: the one layout of object keys.

``{instance_id}/{file_id}/{task_id}-{attempt}.log`` (under the store's prefix, if it has one):
every run of a collection publishes under a key of its own, so a run that lost its lease can
never overwrite the bytes another run recorded, and the bytes of each (file, task, attempt) can
be found again without a record. Collection builds keys here, the retention sweep recognises and
takes them apart here, and the stores recognise their own here: nothing else splits a key.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Ids are UUIDs (services.common.new_id).
_UUID = "[0-9a-f-]{36}"
_KEY = re.compile(f"(?P<instance_id>{_UUID})/(?P<file_id>{_UUID})/(?P<task_id>{_UUID})-(?P<attempt>[0-9]+)\\.log")


class ObjectKey(NamedTuple):
    """What a key says: whose bytes they are."""

    instance_id: str
    file_id: str
    task_id: str
    attempt: int


def object_key(instance_id: str, file_id: str, task_id: str, attempt: int) -> str:
    """The key under which ``attempt`` (the task's claim count) of ``task_id`` publishes file ``file_id``."""
    return f"{instance_id}/{file_id}/{task_id}-{attempt}.log"


def parse(key: str) -> ObjectKey | None:
    """The parts of a dcslog object key, or None for any other key (another application's, in a
    shared bucket, or a stray file in the store's directory)."""
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    return ObjectKey(match["instance_id"], match["file_id"], match["task_id"], int(match["attempt"]))


def is_object_key(key: str) -> bool:
    """Whether ``key`` (under the store's prefix) has the layout's shape: the sweeps touch nothing
    else, even in a bucket shared with other applications."""
    return _KEY.fullmatch(key) is not None
