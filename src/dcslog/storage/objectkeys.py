"""Where a collected file's bytes live in a store: the one layout of object keys.

``{instance_id}/{file_id}/{task_id}-{attempt}.log`` (under the store's prefix, if it has one):
every run of a collection publishes under a key of its own, so a run that lost its lease can
never overwrite the bytes another run recorded, and the bytes of each (file, task, attempt) can
be found again without a record. Collection builds keys here, the retention sweep recognises and
takes them apart here, and the stores recognise their own here: nothing else splits a key.

The same bytes moved to a new key, so that the store's presigned links to the old one stop
(revoking links on S3), are ``{instance_id}/{file_id}/{task_id}-{attempt}.{16 hex digits}.log``
(``rekeyed``): random, so the new key cannot be guessed from the old one.
"""

from __future__ import annotations

import re
import secrets
from typing import NamedTuple

# Ids are UUIDs (services.common.new_id).
_UUID = "[0-9a-f-]{36}"
_KEY = re.compile(f"(?P<instance_id>{_UUID})/(?P<file_id>{_UUID})/(?P<task_id>{_UUID})-(?P<attempt>[0-9]+)"
                  "(?:\\.[0-9a-f]{16})?\\.log")


class ObjectKey(NamedTuple):
    """What a key says: whose bytes they are (a re-keyed copy's are its original's)."""

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


def rekeyed(key: str) -> str:
    """A new key for the bytes under ``key`` (a key of this layout): the same file, task and attempt."""
    parts = parse(key)
    if parts is None:
        raise ValueError(f"not a dcslog object key: {key!r}")
    return f"{parts.instance_id}/{parts.file_id}/{parts.task_id}-{parts.attempt}.{secrets.token_hex(8)}.log"


def is_object_key(key: str) -> bool:
    """Whether ``key`` (under the store's prefix) has the layout's shape: the sweeps touch nothing
    else, even in a bucket shared with other applications."""
    return _KEY.fullmatch(key) is not None
