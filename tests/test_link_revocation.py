"""Revocable links (SPEC §8): ``link_id`` in the link response, ``DELETE …/redislog/{id}/links/{link_id}``
and ``DELETE …/redislog/{id}/links``; a revoked link answers 403 on every API process within a second.

Links are made through the official SDK (``link_id`` is an extension: read from the SDK's raw body),
revoked with plain HTTP (token or AK/SK), downloaded with plain HTTP. Real redis-server, the real
server in this process plus two ``dcslog serve`` processes, on SQLite + a local directory and on
PostgreSQL + S3 (moto_server), where the store's presigned links are revoked by re-keying the object.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from huaweicloudsdkdcs.v2 import CreateRedislogDownloadLinkRequest, CreateRedislogRequest

from dcslog.keys import RAW, Keyring, load_server_key
from dcslog.signing import sign_request
from dcslog.storage.objectkeys import is_object_key, object_key, parse, rekeyed
from dcslog.testing.ports import free_port
from dcslog.testing.processes import stop_processes
from dcslog.testing.waiting import answers, wait_for
from tests.dcslog_fixtures import started_server
from tests.test_redislog import day_lines, today_utc, wait_settled

DCSLOG = [sys.executable, "-m", "dcslog.cli"]
# SPEC §8: "A revoked link answers 403 on every API process within a second."
WITHIN = 1.0
FORBIDDEN = {"error_code": "DCS.2004", "error_msg": "The download link has been revoked.", "error_ext_msg": None}


# --- the server, its other API processes, and a collected file -------------------------------------------------


class Site:
    """One collected file of one instance, the API processes that serve it, and ways to make,
    revoke and download its links."""

    def __init__(self, server, instance_id: str, file_id: str, content: bytes, apis: list[str]):
        self.server, self.instance_id, self.file_id, self.content, self.apis = (
            server, instance_id, file_id, content, apis)
        self.client = server.sdk(role="viewer")  # a viewer may make links
        self.operator = server.cli("token", "create", "--project-id", "proj-a", "--role", "operator")["token"]
        self.path = f"/v2/proj-a/instances/{instance_id}/redislog/{file_id}/links"

    def link(self, link_format: str = RAW) -> dict:
        """A link made through the SDK (a records link through plain HTTP: the SDK has no ``format``)."""
        if link_format == RAW:
            response = self.client.create_redislog_download_link(
                CreateRedislogDownloadLinkRequest(instance_id=self.instance_id, id=self.file_id))
            made = response.to_json_object()  # link_id is an extension: the SDK's model drops it
            assert made["link"] == response.link and made["id"] == self.file_id
        else:
            answer = httpx.post(f"{self.server.url}{self.path}", params={"format": link_format},
                                headers={"X-Auth-Token": self.operator})
            assert answer.status_code == 200, answer.text
            made = answer.json()
        assert len(made["link_id"]) == 32, made
        return made

    def revoke(self, link_id: str | None = None, api: str | None = None, token: str | None = None) -> httpx.Response:
        path = self.path + (f"/{link_id}" if link_id is not None else "")
        return httpx.delete(f"{api or self.server.url}{path}", headers={"X-Auth-Token": token or self.operator})

    def on(self, link: str, api: str) -> str:
        """The same link, asked of API process ``api`` (dcslog's links; a presigned one is the store's)."""
        parts = urlsplit(link)
        if not parts.path.startswith("/downloads/"):
            return link
        return f"{api}{parts.path}" + (f"?{parts.query}" if parts.query else "")

    def everywhere(self, link: str) -> list[str]:
        return sorted({self.on(link, api) for api in self.apis})


# What an S3 store answers a presigned GET of a key that no longer exists: 404 NoSuchKey (MinIO, Ceph,
# AWS when the credentials may list the bucket) or 403 (AWS's AccessDenied otherwise; moto_server
# answers SignatureDoesNotMatch). Either way the store's own XML error, never the bytes.
STORE_REFUSES = (403, 404)


def dcslogs(url: str) -> bool:
    return urlsplit(url).path.startswith("/downloads/")


def refused(urls: list[str]) -> None:
    """Every URL is refused within WITHIN seconds of now (each polled until then): dcslog's links
    with 403 DCS.2004 (GET and HEAD), the store's presigned ones as the store refuses them."""
    def done(url: str) -> bool:
        status = httpx.get(url).status_code
        return status == 403 if dcslogs(url) else status in STORE_REFUSES
    deadline = time.monotonic() + WITHIN
    pending = list(urls)
    while pending:
        pending = [url for url in pending if not done(url)]
        if pending and time.monotonic() > deadline:
            raise AssertionError(f"still served {WITHIN} s after the revocation: {pending} "
                                 f"({[httpx.get(url).status_code for url in pending]})")
    for url in urls:
        answer = httpx.get(url)
        if dcslogs(url):
            assert (answer.status_code, answer.json()) == (403, FORBIDDEN)
            assert httpx.head(url).status_code == 403
        else:  # a presigned URL is for GET alone
            assert answer.status_code in STORE_REFUSES and answer.content.startswith(b"<?xml"), answer.text


def served(urls: list[str], check: Callable[[httpx.Response], bool]) -> None:
    for url in urls:
        answer = httpx.get(url)
        assert answer.status_code == 200 and check(answer), (url, answer.status_code, answer.text[:200])


@contextmanager
def api_processes(count: int) -> Iterator[list[str]]:
    """``count`` more ``dcslog serve --no-worker`` processes on this test's DCSLOG_* settings."""
    procs, urls = [], []
    try:
        for _ in range(count):
            port = free_port()
            procs.append(subprocess.Popen([*DCSLOG, "serve", "--no-worker", "--port", str(port)],
                                          env={**os.environ, "DCSLOG_PORT": str(port)},
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_for(lambda url=url: answers(url), timeout=30, what=f"{url} to answer")
        yield urls
    finally:
        stop_processes(*procs)


@contextmanager
def site(monkeypatch, redis_standalone, tmp_path) -> Iterator[Site]:
    log_file = tmp_path / "redis.log"
    log_file.write_bytes(day_lines(today_utc(), 40))
    # Every process must share the server key (and the database, and the store): as an operator sets them.
    monkeypatch.setenv("DCSLOG_SERVER_KEY", "4d2yIHNGdcI2O8sGc1XyM7YQ3ZhfJm7XvAD5KJ8HBNc=")
    with started_server(monkeypatch) as server:
        imported = server.import_instance(redis_standalone.url, "proj-a", "revocable", "--log-file",
                                          f"{redis_standalone.address}={log_file}")
        client = server.sdk(role="operator")
        client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
        [item] = wait_settled(client, imported["instance_id"])
        assert item.status == "succeed"
        with api_processes(2) as others:
            yield Site(server, imported["instance_id"], item.id, log_file.read_bytes(), [server.url, *others])


# --- on both backends, several API processes -------------------------------------------------------------------


@pytest.mark.parametrize("backend_env", ["embedded", "postgres-s3"], indirect=True)
def test_revoked_links_are_refused_on_every_process(backend_env, dcslog_env, monkeypatch, redis_standalone,
                                                    tmp_path):
    on_s3 = bool(backend_env)
    with site(monkeypatch, redis_standalone, tmp_path) as s:
        whole = s.content

        def raw_ok(answer: httpx.Response) -> bool:
            return answer.content == whole

        def records_ok(answer: httpx.Response) -> bool:
            return answer.headers["content-type"].startswith("application/x-ndjson") \
                and len(answer.content.splitlines()) == 40

        raw = [s.link() for _ in range(2)]
        records = [s.link("ndjson") for _ in range(2)]
        assert raw[0]["link"].startswith(s.server.url) != on_s3  # S3: the store's presigned URL
        for made in raw:
            served(s.everywhere(made["link"]), raw_ok)
        for made in records:
            served(s.everywhere(made["link"]), records_ok)

        # One records link revoked, on one process: 403 on every process; the other links serve.
        assert s.revoke(records[0]["link_id"], api=s.apis[1]).status_code == 204
        refused(s.everywhere(records[0]["link"]))
        served(s.everywhere(records[1]["link"]), records_ok)
        for made in raw:
            served(s.everywhere(made["link"]), raw_ok)

        # One raw link revoked, on another process.
        assert s.revoke(raw[0]["link_id"], api=s.apis[2]).status_code == 204
        if on_s3:
            # A presigned URL cannot be refused alone: the object is re-keyed, which ends every raw
            # link of the file made before (the store has no object under the old key).
            refused([made["link"] for made in raw])
        else:
            refused(s.everywhere(raw[0]["link"]))
            served(s.everywhere(raw[1]["link"]), raw_ok)
        served(s.everywhere(records[1]["link"]), records_ok)
        fresh = s.link()
        served(s.everywhere(fresh["link"]), raw_ok)  # a link made after it works

        # Revoking again is no error; an id dcslog never made, or another file's, is 404.
        assert s.revoke(raw[0]["link_id"]).status_code == 204
        unknown = s.revoke("0" * 32)
        assert unknown.status_code == 404 and unknown.json()["error_code"] == "DCS.4001"

        # All of the file's links, on the third process: every one refused everywhere; new ones work.
        assert s.revoke(api=s.apis[0]).status_code == 204
        refused([url for made in (*raw[1:], fresh) for url in s.everywhere(made["link"])])
        refused([url for made in records for url in s.everywhere(made["link"])])
        after = [s.link(), s.link("ndjson")]
        served(s.everywhere(after[0]["link"]), raw_ok)
        served(s.everywhere(after[1]["link"]), records_ok)
        if on_s3:
            # The file's one object is under its new key; no copy is left behind.
            store = s.server.settings.effective_object_store
            bucket = urlsplit(store).netloc
            s3 = boto3.client("s3", endpoint_url=store.split("endpoint=")[1].split("&")[0], region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
            assert len(keys) == 1 and keys[0].endswith(".log") and keys[0].count(".") == 2, keys


# --- on the embedded backend: roles, projects, errors, ranges and conditions -------------------------------------


@pytest.fixture
def one_file(dcslog_server, redis_standalone, tmp_path):
    log_file = tmp_path / "redis.log"
    log_file.write_bytes(day_lines(today_utc(), 40))
    imported = dcslog_server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                             f"{redis_standalone.address}={log_file}")
    client = dcslog_server.sdk(role="operator")
    client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
    [item] = wait_settled(client, imported["instance_id"])
    return Site(dcslog_server, imported["instance_id"], item.id, log_file.read_bytes(), [dcslog_server.url])


def test_who_may_revoke_and_what_is_not_found(one_file, dcslog_server):
    s = one_file
    made = s.link()
    viewer = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
    answer = s.revoke(made["link_id"], token=viewer)
    assert (answer.status_code, answer.json()["error_code"]) == (403, "DCS.2003")
    assert s.revoke(token=viewer).status_code == 403
    assert httpx.get(made["link"]).status_code == 200  # still valid

    # Another project's credential: the instance is not found in its project (no existence leak).
    other = dcslog_server.cli("token", "create", "--project-id", "proj-b", "--role", "admin")["token"]
    path = f"/v2/proj-b/instances/{s.instance_id}/redislog/{s.file_id}/links"
    for url in (f"{s.server.url}{path}/{made['link_id']}", f"{s.server.url}{path}"):
        answer = httpx.delete(url, headers={"X-Auth-Token": other})
        assert (answer.status_code, answer.json()["error_code"]) == (404, "DCS.3022")
    assert httpx.get(made["link"]).status_code == 200

    # Unknown ids: one dcslog never made, a tampered one, one of another file's, no file.
    tampered = made["link_id"][:-1] + ("0" if made["link_id"][-1] != "0" else "1")
    another_file = Keyring(load_server_key(dcslog_server.settings)).new_link_id(
        "00000000-0000-4000-8000-000000000000")  # made with the server's own key, for another file
    for link_id in ("f" * 32, tampered, another_file, "not-a-link-id", made["link_id"].upper()):
        answer = s.revoke(link_id)
        assert answer.status_code == 404, (link_id, answer.text)
        assert answer.json() == {"error_code": "DCS.4001", "error_msg": "The log file has no link with that link_id.",
                                 "error_ext_msg": None}
    path = f"/v2/proj-a/instances/{s.instance_id}/redislog/00000000-0000-4000-8000-000000000000/links"
    for url in (f"{s.server.url}{path}/{made['link_id']}", f"{s.server.url}{path}"):
        answer = httpx.delete(url, headers={"X-Auth-Token": s.operator})
        assert (answer.status_code, answer.json()["error_code"]) == (404, "DCS.4001")
    assert httpx.get(made["link"]).status_code == 200

    # AK/SK signed, as the SDK signs: an operator's credential revokes.
    credential = dcslog_server.credentials("proj-a", "operator")
    url = f"{s.server.url}{s.path}/{made['link_id']}"
    answer = httpx.delete(url, headers=sign_request(credential["access_key"], credential["secret_key"], "DELETE", url))
    assert answer.status_code == 204 and answer.content == b""
    refused([made["link"]])


def test_the_link_id_forges_and_extends_nothing(one_file):
    s = one_file
    made = s.link()
    token = urlsplit(made["link"]).path.rsplit("/", 1)[1]
    # Neither the id in place of the token, nor a token made with the id by anyone without the server key.
    assert httpx.get(f"{s.server.url}/downloads/{made['link_id']}").status_code == 403
    forged = Keyring(b"b3RoZXIta2V5LW9mLTMyLWJ5dGVzLWxvbmctLS0tLS0=").sign_link(
        s.file_id, int(time.time()) + 10 * 86400, link_id=made["link_id"])
    assert httpx.get(f"{s.server.url}/downloads/{forged}").status_code == 403
    # The id and the generation are under the token's MAC: a payload edited to drop or change them is forged.
    payload, mac = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["i"] == made["link_id"] and "g" not in claims
    for edit in ({k: v for k, v in claims.items() if k != "i"}, {**claims, "i": "0" * 32}, {**claims, "g": 1}):
        edited = base64.urlsafe_b64encode(json.dumps(edit, separators=(",", ":")).encode()).rstrip(b"=").decode()
        assert httpx.get(f"{s.server.url}/downloads/{edited}.{mac}").status_code == 403
    assert httpx.get(made["link"]).status_code == 200


def test_ranges_and_conditions_on_a_valid_link_are_unchanged(one_file):
    s = one_file
    keep, drop = s.link(), s.link()
    assert s.revoke(drop["link_id"]).status_code == 204
    refused([drop["link"]])
    link = keep["link"]
    whole = httpx.get(link)
    assert whole.status_code == 200 and whole.content == s.content
    etag, length = whole.headers["etag"], len(s.content)
    part = httpx.get(link, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == s.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{length}"
    resumed = httpx.get(link, headers={"Range": f"bytes={length - 5}-", "If-Range": etag})
    assert resumed.status_code == 206 and resumed.content == s.content[-5:]
    assert httpx.get(link, headers={"If-None-Match": etag}).status_code == 304
    assert httpx.get(link, headers={"If-Match": '"other"'}).status_code == 412
    assert httpx.get(link, headers={"Range": f"bytes={length}-"}).status_code == 416
    head = httpx.head(link)
    assert head.status_code == 200 and int(head.headers["content-length"]) == length
    # A revoked link is refused whatever the request asks: a range, a condition, HEAD.
    for headers in ({"Range": "bytes=10-19"}, {"If-None-Match": etag}, {"Range": "bytes=0-", "If-Range": etag}):
        answer = httpx.get(drop["link"], headers=headers)
        assert answer.status_code == 403 and answer.json() == FORBIDDEN


def test_link_ids_and_tokens():
    keyring = Keyring(b"dGVzdC1zZXJ2ZXIta2V5LW9mLTMyLWJ5dGVzLWxvbmc=")
    file_id, other = "0b7d2a64-5c1e-4f57-9d2a-3f1e8c0a9b11", "5f0e6c2b-1d3a-4b8e-9c7f-2a1b0c9d8e7f"
    ids = {keyring.new_link_id(file_id) for _ in range(100)}
    assert len(ids) == 100  # random
    link_id = next(iter(ids))
    assert keyring.link_format_of(file_id, link_id, ("raw", "ndjson")) == "raw"
    assert keyring.link_format_of(file_id, keyring.new_link_id(file_id, "ndjson"), ("raw", "ndjson")) == "ndjson"
    assert keyring.link_format_of(other, link_id, ("raw", "ndjson")) is None
    assert keyring.link_format_of(file_id, link_id, ("ndjson",)) is None
    assert Keyring(b"b3RoZXIta2V5LW9mLTMyLWJ5dGVzLWxvbmctLS0tLS0=").link_format_of(
        file_id, link_id, ("raw", "ndjson")) is None
    token = keyring.sign_link(file_id, 1_900_000_000, link_id=link_id, generation=3)
    claims = keyring.read_link(token, now=1_800_000_000)
    assert claims is not None and tuple(claims) == (file_id, link_id, 3)
    assert keyring.verify_link(token, now=1_800_000_000) == file_id
    # Links made before ids existed: no id, generation 0.
    old = keyring.sign_link(file_id, 1_900_000_000)
    assert tuple(keyring.read_link(old, now=1_800_000_000) or ()) == (file_id, None, 0)


def test_a_rekeyed_object_keeps_the_layout():
    """The retention sweep (``Retention.delete_unrecorded``) takes apart only keys of the layout:
    a re-keyed copy must be one, of the same file, task and attempt, and new each time."""
    key = object_key("9d0c1a34-7b5e-4e2a-8f11-3c2b1a0d9e8f", "0b7d2a64-5c1e-4f57-9d2a-3f1e8c0a9b11",
                     "5f0e6c2b-1d3a-4b8e-9c7f-2a1b0c9d8e7f", 2)
    moved = rekeyed(key)
    assert moved != key and moved != rekeyed(key) and is_object_key(moved) and parse(moved) == parse(key)
    again = rekeyed(moved)
    assert parse(again) == parse(key) and again.count(".") == 2
    assert not is_object_key(moved.replace(".log", ".x.log"))
