"""Fetching a download link into a file: resumable with Range, verified by size and, when offered, SHA-256.

Bytes go to ``FILE.part``; the response's ETag is kept next to it in
``FILE.part.etag``, so that a resumed request carries ``If-Range`` and a file
re-collected in the meantime comes back whole (200) instead of being spliced
onto the old prefix. Only a verified file is renamed to ``FILE``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dcslog.client.api import ApiError, EndpointUnreachable
from dcslog.client.progress import ByteProgress
from dcslog.command import EXIT_UNREACHABLE, EXIT_VERIFICATION_FAILED, CommandFailed

if TYPE_CHECKING:
    import httpx

CHUNK = 1 << 16


class VerificationFailed(CommandFailed):
    """The bytes received are not the file the API described: exit status 4."""

    exit_status = EXIT_VERIFICATION_FAILED

    def __init__(self, message: str, resumed: bool = False) -> None:
        super().__init__(message)
        self.resumed = resumed  # the bytes were spliced onto a kept prefix, which may be the culprit

    def describe(self) -> str:
        return f"verification failed: {self.message}"


class DownloadInterrupted(CommandFailed):
    """The connection broke mid-file; ``FILE.part`` is kept for the next attempt: exit status 5."""

    exit_status = EXIT_UNREACHABLE


@dataclass
class Downloaded:
    path: Path
    size: int
    sha256: str
    resumed_from: int  # bytes already on disk when this attempt started
    verified: str  # "sha256", "size" or "none": what was checked against the API's description
    skipped: bool = False  # the file was already there and verified

    def as_dict(self) -> dict:
        return {"file": str(self.path), "size": self.size, "sha256": self.sha256, "resumed_from": self.resumed_from,
                "verified": self.verified, "skipped": self.skipped}


def _sha256_of(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest


def up_to_date(dest: Path, size: int | None, sha256: str | None) -> Downloaded | None:
    """``dest`` already holds exactly the described file (only decidable when the API gives a checksum)."""
    if not sha256 or not dest.is_file() or (size is not None and dest.stat().st_size != size):
        return None
    digest = _sha256_of(dest).hexdigest()
    if digest != sha256:
        return None
    return Downloaded(dest, dest.stat().st_size, digest, 0, "sha256", skipped=True)


def download(http: httpx.Client, link: str, dest: Path, *, size: int | None = None, sha256: str | None = None,
             progress: Callable[..., ByteProgress] = ByteProgress) -> Downloaded:
    part = dest.with_name(dest.name + ".part")
    etag_file = dest.with_name(dest.name + ".part.etag")
    try:
        return _attempt(http, link, dest, part, etag_file, size, sha256, progress)
    except VerificationFailed as exc:
        _discard(part, etag_file)  # never keep bytes known to be wrong
        if not exc.resumed:
            raise
        # The kept prefix may be stale (the file changed and no ETag was known): start over, once.
        return _attempt(http, link, dest, part, etag_file, size, sha256, progress)


def _discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _attempt(http, link, dest, part, etag_file, size, sha256, progress) -> Downloaded:
    import httpx  # imported on first use: `dcslog serve` builds this command line too

    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        _discard(part, etag_file)
        offset = 0
    etag = etag_file.read_text().strip() if offset and etag_file.exists() else None
    headers = {}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if etag:
            headers["If-Range"] = etag
    resumed = offset > 0
    try:
        with http.stream("GET", link, headers=headers) as response:
            if response.status_code == 416 and offset:
                # What we hold is at least the whole file (or more than it): fetch it again.
                _discard(part, etag_file)
                return _attempt(http, link, dest, part, etag_file, size, sha256, progress)
            if response.status_code >= 400:
                raise ApiError.from_response(response)
            if response.status_code == 206:
                start, total = _content_range(response.headers.get("Content-Range", ""))
                if start != offset:
                    raise VerificationFailed(f"asked for bytes from {offset}, got a range from {start}", True)
                digest = _sha256_of(part)
                mode = "ab"
            else:  # 200: the whole file, from the first byte (a changed file when If-Range did not match)
                offset, resumed = 0, False
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                digest = hashlib.sha256()
                mode = "wb"
            if response.headers.get("ETag"):
                etag_file.write_text(response.headers["ETag"])
            else:
                _discard(etag_file)
            expected = size if size is not None else total
            bar = progress(dest.name, expected, offset)
            try:
                with part.open(mode) as f:
                    for chunk in response.iter_bytes(CHUNK):
                        f.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
            except BaseException:
                bar.abort()
                raise
    except httpx.TransportError as exc:
        if part.exists() and part.stat().st_size:
            raise DownloadInterrupted(f"the download of {dest.name} broke off at {part.stat().st_size} bytes "
                                      f"({exc or type(exc).__name__}); run the same command again to resume") from None
        raise EndpointUnreachable(f"cannot download {dest.name}: {exc or type(exc).__name__}") from None

    received = part.stat().st_size
    got = digest.hexdigest()
    if expected is not None and received != expected:
        bar.abort()
        raise VerificationFailed(f"{dest.name}: {received} bytes received, {expected} expected", resumed)
    if sha256 and got != sha256:
        bar.abort()
        raise VerificationFailed(f"{dest.name}: SHA-256 {got} does not match the API's {sha256}", resumed)
    verified = "sha256" if sha256 else "size" if expected is not None else "none"
    bar.finish(f"(resumed at {offset} bytes)" if resumed else "")
    os.replace(part, dest)
    _discard(etag_file)
    return Downloaded(dest, received, got, offset if resumed else 0, verified)


def _content_range(value: str) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` → (100, 1000); total None when ``*``."""
    try:
        unit, _, rest = value.partition(" ")
        span, _, total = rest.partition("/")
        start = int(span.split("-", 1)[0])
        return start, (int(total) if total.strip().isdigit() else None)
    except ValueError:
        return None, None
