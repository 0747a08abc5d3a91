"""Object stores for collected files: a local directory (the embedded default) or any S3-compatible store.

Both offer the same operations: a ``staging`` area (``staging.Staging``) to
write a file in, ``publish()`` to move it atomically under a key, ``delete()``,
``link()`` (the store's own download URL, valid at most ``max_link_seconds``,
or None when dcslog serves the file itself, as for a local directory), and,
for the retention sweep, ``keys()`` (objects stored before some age) and
``clean_abandoned()`` (what a crashed process left half-written).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from dcslog.storage.local import LocalObjectStore

if TYPE_CHECKING:
    from dcslog.config import Settings
    from dcslog.storage.s3 import S3ObjectStore

ObjectStore = Union[LocalObjectStore, "S3ObjectStore"]


def open_object_store(settings: Settings) -> ObjectStore:
    url = settings.effective_object_store
    if url.startswith("file://"):
        return LocalObjectStore(url[len("file://"):])
    if url.startswith("s3://"):
        from dcslog.storage.s3 import S3ObjectStore  # boto3 costs ~0.26 s to import: only when used

        return S3ObjectStore(url, settings.data_dir / "staging", settings.s3_access_key_id,
                             settings.s3_secret_access_key)
    raise ValueError(f"unsupported DCSLOG_OBJECT_STORE {url!r}: use file:///path or s3://bucket?endpoint=…")
