"""An S3-compatible object store (MinIO, Ceph RGW, Huawei OBS, AWS S3): files uploaded, links presigned.

An S3 PUT (and a completed multipart upload) becomes visible whole or not at
all, so publishing keeps the local store's guarantee: a reader sees the old
object or the complete new one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from dcslog.storage.objectkeys import is_object_key
from dcslog.storage.staging import Staging

# S3 caps a SigV4 presigned URL at 7 days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
MULTIPART = TransferConfig(multipart_threshold=64 * 1024 * 1024, multipart_chunksize=64 * 1024 * 1024)


class S3ObjectStore:
    """``s3://BUCKET[/PREFIX]?endpoint=URL&region=R&addressing=path|virtual&public_endpoint=URL``.

    Credentials come from ``access_key_id``/``secret_access_key`` when given,
    else from boto3's usual chain (AWS_ACCESS_KEY_ID, profiles, instance roles).
    ``public_endpoint`` is where clients reach the store, when that differs
    from where dcslog does (links are presigned for it).
    """

    max_link_seconds = MAX_PRESIGN_SECONDS

    def __init__(self, url: str, staging_dir: str | Path, access_key_id: str | None = None,
                 secret_access_key: str | None = None):
        parts = urlsplit(url)
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        if not self.bucket:
            raise ValueError(f"DCSLOG_OBJECT_STORE {url!r}: no bucket")
        self.staging = Staging(staging_dir)
        session = boto3.session.Session(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
                                        region_name=options.get("region") or "us-east-1")
        config = Config(signature_version="s3v4", s3={"addressing_style": options.get("addressing", "path")},
                        retries={"max_attempts": 3, "mode": "standard"},
                        # boto3 >= 1.36 adds CRC checksum headers (and aws-chunked bodies) to every
                        # upload by default; many S3-compatible stores (older MinIO and Ceph RGW,
                        # OBS) reject them. Send them only where the API requires them.
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required")
        # Clients are made once: creating one costs ~0.16 s (PERF-ANCHORS.md).
        self.client = session.client("s3", endpoint_url=options.get("endpoint"), config=config)
        public = options.get("public_endpoint")
        self.presigner = session.client("s3", endpoint_url=public, config=config) if public else self.client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def publish(self, staged_path: str, key: str) -> None:
        try:
            # Multipart above 64 MiB; boto3 aborts the upload if a part fails.
            self.client.upload_file(staged_path, self.bucket, self._key(key),
                                    ExtraArgs={"ContentType": "text/plain; charset=utf-8"}, Config=MULTIPART)
        finally:
            self.staging.discard(staged_path)

    def open_segment(self, key: str, stack: ExitStack) -> S3Segment:
        """The object as a random-access source for reading records: ranged GETs. A missing object is
        FileNotFoundError, as a missing file is to the local store."""
        try:
            size = self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"object {self._key(key)} not found") from None
            raise
        return S3Segment(self.client, self.bucket, self._key(key), size)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def copy(self, key: str, new_key: str) -> None:
        """The object under ``key`` copied, in the store (no bytes through dcslog), to ``new_key``:
        re-keying it so that the links presigned for ``key`` end once it is deleted. One CopyObject
        up to 64 MiB, a multipart copy above (a single CopyObject stops at 5 GiB)."""
        self.client.copy({"Bucket": self.bucket, "Key": self._key(key)}, self.bucket, self._key(new_key),
                         ExtraArgs={"ContentType": "text/plain; charset=utf-8", "MetadataDirective": "REPLACE"},
                         Config=MULTIPART)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except self.client.exceptions.ClientError:
            return False

    def keys(self, older_than: float) -> Iterator[str]:
        """Keys (under our prefix) of the objects stored ``older_than`` seconds ago or before."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        prefix = f"{self.prefix}/" if self.prefix else ""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["LastModified"] < cutoff:
                    yield item["Key"][len(prefix):]

    def clean_abandoned(self, older_than: float) -> int:
        """Remove what crashed processes left half-written ``older_than`` seconds ago: staged
        files, and multipart uploads of our keys (a worker killed mid-upload leaves its parts
        in the bucket, invisible and billed, until the upload is aborted). Only keys of our
        layout (``objectkeys``) under our prefix: other applications' uploads are not ours."""
        removed = self.staging.clean(older_than)
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        prefix = f"{self.prefix}/" if self.prefix else ""
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] >= cutoff or not is_object_key(upload["Key"][len(prefix):]):
                    continue
                try:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                       UploadId=upload["UploadId"])
                    removed += 1
                except self.client.exceptions.NoSuchUpload:
                    pass  # another worker's sweep aborted it first
        return removed

    def link(self, key: str, filename: str, expires_at: datetime) -> str:
        """The store's own presigned GET URL, downloading as ``filename``, valid until ``expires_at`` (naive UTC)."""
        seconds = (expires_at.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()
        return self.presigner.generate_presigned_url("get_object", Params={
            "Bucket": self.bucket, "Key": self._key(key),
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
            "ResponseContentType": "text/plain; charset=utf-8",
        }, ExpiresIn=max(1, min(int(seconds), MAX_PRESIGN_SECONDS)))


class S3Segment:
    """An object read by ranged GETs, one ``READ_AHEAD`` block at a time: a search's probes are
    small reads near each other, a window's scan is sequential, so one block serves many reads."""

    READ_AHEAD = 1 << 20

    def __init__(self, client, bucket: str, key: str, size: int):
        self.client, self.bucket, self.key, self.size = client, bucket, key, size
        self._block_start, self._block = 0, b""

    def pread(self, offset: int, n: int) -> bytes:
        n = max(0, min(n, self.size - offset))
        if n == 0:
            return b""
        start = self._block_start
        if not (start <= offset and offset + n <= start + len(self._block)):
            length = max(n, self.READ_AHEAD)
            end = min(self.size, offset + length) - 1
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={offset}-{end}")["Body"]
            except self.client.exceptions.NoSuchKey:
                # Deleted since it was opened (a newer collection of the day replaced it): as a file
                # unlinked under a reader would be, were it not that a local reader keeps its copy.
                raise FileNotFoundError(f"object {self.key} no longer exists") from None
            self._block_start, self._block = offset, body.read()
            start = offset
        return self._block[offset - start:offset - start + n]
