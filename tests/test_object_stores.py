"""What the retention sweep and the link service ask of both object stores (local directory, S3 through
moto_server), and what the S3 store sends on the wire."""

from __future__ import annotations

import os
import sqlite3
import uuid
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from huaweicloudsdkdcs.v2 import CreateRedislogDownloadLinkRequest, CreateRedislogRequest, ListRedislogRequest

from dcslog.db.session import upgrade
from dcslog.services import retention
from dcslog.storage import open_object_store
from dcslog.storage.objectkeys import object_key as layout_key
from dcslog.storage.objectkeys import parse
from dcslog.testing.waiting import wait_for
from tests.test_redislog import day_lines, today_utc
from tests.test_scale_out import run_sweep, s3_worker_settings


@pytest.fixture(params=["local", "s3"])
def settings(request, tmp_path, monkeypatch):
    """Settings of a worker on the embedded database and the given store, migrated."""
    if request.param == "local":
        from dcslog.config import Settings

        monkeypatch.setenv("DCSLOG_DATA_DIR", str(tmp_path / "data"))
        chosen = Settings()
    else:
        s3 = request.getfixturevalue("s3_server")
        chosen = s3_worker_settings(monkeypatch, tmp_path, s3.store_url(s3.create_bucket()))
    chosen.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(chosen.effective_database_url)
    return chosen


def object_key() -> str:
    return layout_key(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), 1)


def put(store, key: str, data: bytes) -> None:
    fd, staged = store.staging.stage()
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    store.publish(staged, key)


def record(settings, key: str, expires_at: datetime) -> None:
    """A succeed file record pointing at ``key`` (the sweep reads nothing else of it)."""
    now = datetime.utcnow()
    with sqlite3.connect(settings.data_dir / "dcslog.db") as db:
        db.execute("INSERT INTO log_files (id, instance_id, project_id, replication_id, group_name, group_index, "
                   "replication_ip, day, status, task_id, object_key, size, created_at, updated_at, expires_at) "
                   "VALUES (?, ?, 'p', 'r', 'group-0', 0, '127.0.0.1', '2026-11-20', 'succeed', 't', ?, 1, ?, ?, ?)",
                   (parse(key).file_id, parse(key).instance_id, key, now, now, expires_at))


def known_instance(settings, key: str) -> None:
    """The instance of ``key`` in the database (the sweep touches only known instances' objects)."""
    now = datetime.utcnow()
    with sqlite3.connect(settings.data_dir / "dcslog.db") as db:
        db.execute("INSERT INTO instances (id, project_id, name, description, redis_url_encrypted, log_file_overrides, "
                   "agents, timezone, status, cache_mode, engine_version, ip, port, max_memory_bytes, "
                   "used_memory_bytes, db_number, access_user, no_password_access, enable_ssl, created_at, updated_at) "
                   "VALUES (?, 'p', 'n', '', x'00', '{}', '{}', 'UTC', 'RUNNING', 'single', '7.0', '127.0.0.1', 6379, "
                   "0, 0, 16, '', 1, 0, ?, ?)", (parse(key).instance_id, now, now))


def records(settings) -> set[str]:
    with sqlite3.connect(settings.data_dir / "dcslog.db") as db:
        return {key for (key,) in db.execute("SELECT object_key FROM log_files")}


def test_retention_deletes_the_bytes_with_the_record(settings):
    store = open_object_store(settings)
    expired, live = object_key(), object_key()
    for key in (expired, live):
        put(store, key, b"a day\n")
    record(settings, expired, datetime.utcnow() - timedelta(minutes=1))
    record(settings, live, datetime.utcnow() + timedelta(days=1))
    assert run_sweep(settings, store) == 1
    assert records(settings) == {live}
    assert not store.exists(expired)
    assert store.exists(live)


def test_the_sweep_deletes_stored_files_no_record_points_to(settings, monkeypatch):
    """Bytes whose delete failed after their record went, or that a run published just before it
    died, are nobody's: once ABANDONED_AFTER old, the sweep deletes them. Recorded files, keys
    that are not dcslog's, and objects of instances this database does not know (another
    deployment sharing the bucket) stay."""
    store = open_object_store(settings)
    recorded, unrecorded, anothers = object_key(), object_key(), object_key()
    instance_id, file_id, _, _ = parse(recorded)
    refreshed_away = layout_key(instance_id, file_id, str(uuid.uuid4()), 1)  # the same file's previous copy
    for key in (recorded, refreshed_away, unrecorded, anothers, "notes/readme.txt"):
        put(store, key, b"bytes\n")
    record(settings, recorded, datetime.utcnow() + timedelta(days=1))
    known_instance(settings, recorded)
    known_instance(settings, unrecorded)

    run_sweep(settings, store)
    assert store.exists(unrecorded)  # fresh: maybe a run about to record it

    monkeypatch.setattr(retention, "ABANDONED_AFTER", -1.0)  # now everything counts as old
    run_sweep(settings, store)
    assert not store.exists(unrecorded)
    assert not store.exists(refreshed_away)
    assert store.exists(recorded)
    assert store.exists(anothers)
    assert store.exists("notes/readme.txt")


def test_s3_uploads_send_no_checksum_headers_and_large_files_go_multipart(s3_server, tmp_path, monkeypatch):
    """boto3 >= 1.36 adds CRC checksums (and aws-chunked bodies) to uploads unless told otherwise;
    MinIO, Ceph RGW and OBS versions in the field reject them. moto accepts both, so the test looks
    at the requests themselves. A file above the multipart threshold goes up in parts."""
    from boto3.s3.transfer import TransferConfig

    from dcslog.storage import s3 as s3_module

    five_mib = 5 * 1024 * 1024  # S3's smallest part
    monkeypatch.setattr(s3_module, "MULTIPART", TransferConfig(multipart_threshold=five_mib,
                                                               multipart_chunksize=five_mib))
    settings = s3_worker_settings(monkeypatch, tmp_path, s3_server.store_url(s3_server.create_bucket()))
    store = open_object_store(settings)
    sent: list[tuple[str, dict]] = []
    store.client.meta.events.register(
        "before-send.s3", lambda request, **kwargs: sent.append((kwargs["event_name"], dict(request.headers))))

    small, large = object_key(), object_key()
    large_bytes = os.urandom(2 * five_mib + 123)
    put(store, small, b"small day\n")
    put(store, large, large_bytes)

    operations = [name.rsplit(".", 1)[-1] for name, _ in sent]
    assert operations.count("UploadPart") == 3 and "CompleteMultipartUpload" in operations, operations
    for name, headers in sent:
        lowered = {k.lower(): str(v) for k, v in headers.items()}
        assert not [k for k in lowered if k.startswith(("x-amz-checksum-", "x-amz-sdk-checksum"))], (name, lowered)
        assert "aws-chunked" not in lowered.get("content-encoding", ""), (name, lowered)
    body = store.client.get_object(Bucket=store.bucket, Key=large)["Body"].read()
    assert body == large_bytes


def test_an_s3_link_lasts_what_expires_at_says(dcslog_server_factory, redis_standalone, s3_server, tmp_path,
                                               monkeypatch):
    """S3 presigns for 7 days at most: with DCSLOG_LINK_TTL at 30 days and retention at 10, the
    link's expires_at is 7 days away, and the presigned URL says the same."""
    for key, value in {"DCSLOG_OBJECT_STORE": s3_server.store_url(s3_server.create_bucket()),
                       "DCSLOG_S3_ACCESS_KEY_ID": "test", "DCSLOG_S3_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(key, value)
    log_file = tmp_path / "r.log"
    log_file.write_bytes(day_lines(today_utc(), 30))
    with dcslog_server_factory(link_ttl=str(30 * 86400), retention_days="10") as server:
        imported = server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                          f"{redis_standalone.address}={log_file}")
        client = server.sdk()
        instance_id = imported["instance_id"]
        client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))

        def collected():
            listing = client.list_redislog(ListRedislogRequest(instance_id=instance_id, log_type="run"))
            return listing.file_list[0] if listing.file_list[0].status == "succeed" else None
        item = wait_for(collected, what="the collection")
        assert client.create_redislog_download_link(CreateRedislogDownloadLinkRequest(
            instance_id=instance_id, id=item.id)).link.startswith(s3_server.endpoint)
        # expires_at is dcslog's extension to the DCS answer: the SDK model drops it.
        token = server.cli("token", "create", "--project-id", "proj-a")["token"]
        link = httpx.post(f"{server.url}/v2/proj-a/instances/{instance_id}/redislog/{item.id}/links",
                          headers={"X-Auth-Token": token}).json()
    expires_at = datetime.strptime(link["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(expires_at - (datetime.utcnow() + timedelta(days=7))) < timedelta(minutes=1)
    query = parse_qs(urlsplit(link["link"]).query)
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
    assert abs(signed_at + timedelta(seconds=int(query["X-Amz-Expires"][0])) - expires_at) <= timedelta(seconds=2)
    assert httpx.get(link["link"]).content == log_file.read_bytes()
