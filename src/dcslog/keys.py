"""The server key and everything derived from it: secrets at rest, token hashes, link signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from cryptography.fernet import Fernet, InvalidToken

from dcslog.config import Settings
from dcslog.filemodes import make_private_dir

#: A link to the file's bytes as stored; the only format whose token says no format.
RAW = "raw"
#: A link id: 16 hex digits drawn at random, then 16 of a MAC binding them to the file and format.
LINK_ID = re.compile("[0-9a-f]{32}")


class LinkClaims(NamedTuple):
    """What an authentic link token says: which file, its link id (None in links made before
    links could be revoked) and the file's link generation when it was made."""

    file_id: str
    link_id: str | None
    generation: int


def load_server_key(settings: Settings) -> bytes:
    """The Fernet key from DCSLOG_SERVER_KEY, else from <data_dir>/server.key, created once (mode 0600)."""
    if settings.server_key:
        return settings.server_key.encode()
    path = Path(settings.data_dir) / "server.key"
    if path.exists():
        return path.read_bytes().strip()
    make_private_dir(path.parent)  # the data directory, 0700 when it is created here
    # Written whole to a private temp file, then linked into place: two processes
    # starting together agree on one key, and neither can read a half-written one.
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".server.key.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(temp)
    return path.read_bytes().strip()


class Keyring:
    """Encrypts secrets at rest and signs download links, all from one server key."""

    def __init__(self, server_key: bytes):
        self._fernet = Fernet(server_key)
        # A separate key for links, so a link signature never doubles as anything else.
        self._link_key = hmac.new(server_key, b"dcslog download link v1", hashlib.sha256).digest()
        # And one for link ids: an id names a link (to revoke it), it never signs one.
        self._link_id_key = hmac.new(server_key, b"dcslog download link id v1", hashlib.sha256).digest()
        # Decrypted in place of a real secret when an access key is unknown (see auth._authenticate_signature).
        self.dummy_secret = self._fernet.encrypt(b"not-a-secret-key-of-anyone")

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken as exc:  # a different server key than the one that wrote it
            raise RuntimeError("cannot decrypt a stored secret: DCSLOG_SERVER_KEY or server.key has changed") from exc

    def sign_link(self, file_id: str, expires_at: int, link_format: str = RAW, *, link_id: str | None = None,
                  generation: int = 0) -> str:
        """An opaque link token: which file, until when, as what, which link of the file and of
        which of its link generations (``revoke_redislog_download_links`` moves the file on to the
        next), and an HMAC over them all.

        A raw link's payload is ``{"f", "e"}`` alone, byte for byte what links were before
        formats existed, so every link handed out earlier stays valid; any other format is
        ``"t"`` in the payload, the link id ``"i"``, a generation past 0 ``"g"``, so the MAC
        covers them and no link can be turned into another, or out of its revocation."""
        claims: dict[str, str | int] = {"f": file_id, "e": expires_at}
        if link_format != RAW:
            claims["t"] = link_format
        if link_id is not None:
            claims["i"] = link_id
        if generation:
            claims["g"] = generation
        payload = _b64(_compact_json(claims).encode())
        return f"{payload}.{self._link_mac(payload)}"

    def verify_link(self, token: str, now: float | None = None, link_format: str = RAW) -> str | None:
        """The file id if the token is authentic, unexpired and signed for ``link_format``, else None."""
        claims = self.read_link(token, now, link_format)
        return claims.file_id if claims is not None else None

    def read_link(self, token: str, now: float | None = None, link_format: str = RAW) -> LinkClaims | None:
        """What the token says, if it is authentic, unexpired and signed for ``link_format``, else
        None. (Whether its link was revoked since is the database's say.)"""
        payload, _, mac = token.partition(".")
        if not payload or not mac or not hmac.compare_digest(mac.encode(), self._link_mac(payload).encode()):
            return None
        try:
            data = json.loads(_unb64(payload))
            file_id, expires_at, signed_format = str(data["f"]), int(data["e"]), data.get("t", RAW)
            link_id, generation = data.get("i"), int(data.get("g", 0))
        except (ValueError, KeyError, TypeError):
            return None
        if signed_format != link_format:  # a raw link asked as records, or a records link asked raw
            return None
        if (now if now is not None else time.time()) >= expires_at:
            return None
        return LinkClaims(file_id, None if link_id is None else str(link_id), generation)

    def new_link_id(self, file_id: str, link_format: str = RAW) -> str:
        """A new link's id: random, and bound by a MAC to the file and the format, so that
        ``link_format_of`` knows the ids dcslog made without a row per link. It only names the
        link: the token's own MAC is its authority, and no id makes or extends a token."""
        nonce = secrets.token_hex(8)
        return nonce + self._link_id_mac(file_id, link_format, nonce)

    def link_format_of(self, file_id: str, link_id: str, formats: tuple[str, ...]) -> str | None:
        """The format (one of ``formats``) of the link ``link_id`` of file ``file_id``, or None
        when dcslog made no such link (another file's, or no link at all)."""
        if not LINK_ID.fullmatch(link_id):
            return None
        nonce, mac = link_id[:16], link_id[16:].encode()
        for link_format in formats:
            if hmac.compare_digest(mac, self._link_id_mac(file_id, link_format, nonce).encode()):
                return link_format
        return None

    def _link_id_mac(self, file_id: str, link_format: str, nonce: str) -> str:
        return hmac.digest(self._link_id_key, f"{file_id}\n{link_format}\n{nonce}".encode(), "sha256")[:8].hex()

    def _link_mac(self, payload: str) -> str:
        return _b64(hmac.digest(self._link_key, payload.encode(), "sha256"))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "dcslog-" + secrets.token_urlsafe(32)


def new_access_key() -> str:
    # Upper-case alphanumerics, like the cloud's own AKs.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(20))


def new_secret_key() -> str:
    return secrets.token_urlsafe(30)


_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
