"""The audit trail (SPEC §8, issue #16 items 1 and 6): every action that changes state or releases data
is recorded, in its own transaction, exactly once, with who (actor, actor type), what (action, instance,
target), from where (source address, the request id the response carried) and the outcome.

Real server and redis-server; the DCS actions through the official SDK (the request id is read from the
response the SDK received, through its HTTP handler), the admin actions through the CLI (actor type
``system``, the operating-system user); links and downloads over plain HTTP. ``GET /v2/{project_id}/audit``
and ``dcslog audit list`` read the trail back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import getpass
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.http.http_handler import HttpHandler
from huaweicloudsdkdcs.v2 import (
    CreateRedislogDownloadLinkRequest,
    CreateRedislogRequest,
    DcsClient,
    DeleteBackgroundTaskRequest,
    ListBackgroundTaskRequest,
    ListRedislogRequest,
)
from sqlalchemy import insert, select

from dcslog.db.models import AuditRecord
from dcslog.db.session import create_engine, create_sessionmaker
from dcslog.services.audit import journal_sessions
from dcslog.services.common import utcnow
from dcslog.services.retention import Retention
from dcslog.storage import open_object_store
from tests.test_redislog import day_lines, today_utc, wait_settled

OS_USER = getpass.getuser()
LOOPBACK = "127.0.0.1"


class Sdk:
    """The official client, remembering the X-Request-Id of the last response it received."""

    def __init__(self, server, credential: dict):
        self.credential = credential
        self.request_ids: list[str] = []
        handler = HttpHandler().add_response_handler(
            lambda **kw: self.request_ids.append(kw["response"].headers["X-Request-Id"]))
        config = HttpConfig.get_default_config()
        config.timeout = (5, 30)
        self.client = (DcsClient.new_builder().with_http_config(config).with_http_handler(handler)
                       .with_credentials(BasicCredentials(credential["access_key"], credential["secret_key"],
                                                          credential["project_id"]))
                       .with_endpoint(server.url).build())

    @property
    def last_request_id(self) -> str:
        return self.request_ids[-1]


def trail(server, token: str, project_id: str = "proj-a", **params) -> dict:
    answer = httpx.get(f"{server.url}/v2/{project_id}/audit", params=params, headers={"X-Auth-Token": token})
    assert answer.status_code == 200, answer.text
    return answer.json()


def records(server, token: str, **params) -> list[dict]:
    return trail(server, token, limit=1000, **params)["records"]


def the_one(server, token: str, action: str, **expected) -> dict:
    """The one record of ``action`` (exactly one), checked field by field against ``expected``."""
    found = records(server, token, action=action)
    assert len(found) == 1, found
    [record] = found
    for field, value in expected.items():
        assert record[field] == value, (field, record)
    return record


def collected_site(server, redis_node, tmp_path: Path, project_id: str = "proj-a") -> tuple[str, Path]:
    log_file = tmp_path / f"{project_id}-redis.log"
    log_file.write_bytes(day_lines(today_utc(), 30))
    imported = server.import_instance(redis_node.url, project_id, "audited", "--log-file",
                                      f"{redis_node.address}={log_file}", "--force")
    return imported["instance_id"], log_file


def collected_file(server, redis_node, tmp_path: Path, project_id: str = "proj-a") -> tuple[str, str, str]:
    """A collected file of a new instance (through the SDK, as an operator): its links URL, an admin
    token of the project and the file's id."""
    instance_id, _ = collected_site(server, redis_node, tmp_path, project_id)
    sdk = Sdk(server, server.credentials(project_id, role="operator"))
    sdk.client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
    [file] = wait_settled(sdk.client, instance_id)
    token = server.cli("token", "create", "--project-id", project_id)["token"]
    return f"{server.url}/v2/{project_id}/instances/{instance_id}/redislog/{file.id}/links", token, file.id


def test_every_action_is_recorded_once_with_who_what_and_where(dcslog_server, redis_standalone, tmp_path):
    server = dcslog_server
    admin = server.cli("token", "create", "--project-id", "proj-a", "--role", "admin", "--name", "auditor")
    token = admin["token"]
    the_one(server, token, "token.create", actor=OS_USER, actor_type="system", target=admin["id"],
            project_id="proj-a", instance_id=None, source_ip=None, request_id=None, outcome="succeeded")

    operator_key = server.credentials(role="operator")
    the_one(server, token, "credential.create", actor=OS_USER, actor_type="system",
            target=operator_key["access_key"], outcome="succeeded")

    instance_id, _ = collected_site(server, redis_standalone, tmp_path)
    the_one(server, token, "instance.import", actor=OS_USER, actor_type="system", instance_id=instance_id,
            target="audited")

    # Collect, through the SDK with the operator's access key.
    sdk = Sdk(server, operator_key)
    sdk.client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
    collect_request = sdk.last_request_id
    [file] = wait_settled(sdk.client, instance_id)
    [task] = sdk.client.list_background_task(ListBackgroundTaskRequest(instance_id=instance_id)).tasks
    the_one(server, token, "runlog.collect", actor=operator_key["access_key"], actor_type="access_key",
            instance_id=instance_id, target=task.id, source_ip=LOOPBACK, request_id=collect_request,
            outcome="succeeded")

    # A link, made with a viewer's token over plain HTTP.
    viewer = server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")
    base = f"{server.url}/v2/proj-a/instances/{instance_id}/redislog/{file.id}/links"
    made = httpx.post(base, headers={"X-Auth-Token": viewer["token"]})
    assert made.status_code == 200
    link, link_id = made.json()["link"], made.json()["link_id"]
    the_one(server, token, "link.create", actor=viewer["id"], actor_type="token", instance_id=instance_id,
            target=f"{file.id}/links/{link_id}", source_ip=LOOPBACK, request_id=made.headers["X-Request-Id"])

    # A download: attributed to the link, and through it to the viewer who made it.
    got = httpx.get(link, headers={"X-Request-Id": "download-1"})
    assert got.status_code == 200 and got.headers["X-Request-Id"] == "download-1"
    the_one(server, token, "link.download", actor=link_id, actor_type="link", instance_id=instance_id,
            target=file.id, source_ip=LOOPBACK, request_id="download-1", link_created_by=viewer["id"],
            link_created_by_type="token")
    # A HEAD, a 304 and a 416 release no content: not recorded.
    assert httpx.head(link).status_code == 200
    assert httpx.get(link, headers={"If-None-Match": got.headers["ETag"]}).status_code == 304
    assert httpx.get(link, headers={"Range": f"bytes={len(got.content)}-"}).status_code == 416
    assert len(records(server, token, action="link.download")) == 1
    assert httpx.get(link, headers={"Range": "bytes=0-9"}).status_code == 206  # a range is content
    assert len(records(server, token, action="link.download")) == 2

    # Revocations: one link, then all of the file's (operator's token).
    operator = server.cli("token", "create", "--project-id", "proj-a", "--role", "operator")
    revoked = httpx.delete(f"{base}/{link_id}", headers={"X-Auth-Token": operator["token"]})
    assert revoked.status_code == 204
    again = httpx.delete(f"{base}/{link_id}", headers={"X-Auth-Token": operator["token"]})
    assert again.status_code == 204
    all_links = httpx.delete(base, headers={"X-Auth-Token": operator["token"]})
    assert all_links.status_code == 204
    revocations = records(server, token, action="link.revoke")
    assert [(r["target"], r["outcome"], r["request_id"], r["actor"], r["actor_type"]) for r in revocations] == [
        (f"{file.id}/links", "succeeded", all_links.headers["X-Request-Id"], operator["id"], "token"),
        (f"{file.id}/links/{link_id}", "unchanged", again.headers["X-Request-Id"], operator["id"], "token"),
        (f"{file.id}/links/{link_id}", "succeeded", revoked.headers["X-Request-Id"], operator["id"], "token")]
    assert httpx.get(link).status_code == 403  # refused: no download recorded
    assert len(records(server, token, action="link.download")) == 2

    # The task, deleted through the SDK.
    sdk.client.delete_background_task(DeleteBackgroundTaskRequest(instance_id=instance_id, task_id=task.id))
    the_one(server, token, "task.delete", actor=operator_key["access_key"], actor_type="access_key",
            instance_id=instance_id, target=task.id, request_id=sdk.last_request_id)

    # The admin commands that remain: refresh, revocations, remove.
    server.cli("instances", "refresh", instance_id)
    the_one(server, token, "instance.refresh", actor=OS_USER, actor_type="system", instance_id=instance_id,
            outcome="succeeded")
    server.cli("token", "revoke", "--project-id", "proj-a", viewer["id"])
    the_one(server, token, "token.revoke", actor=OS_USER, actor_type="system", target=viewer["id"])
    server.cli("credentials", "revoke", "--project-id", "proj-a", operator_key["access_key"])
    the_one(server, token, "credential.revoke", actor=OS_USER, actor_type="system",
            target=operator_key["access_key"])
    server.cli("instances", "remove", instance_id)
    the_one(server, token, "instance.remove", actor=OS_USER, actor_type="system", instance_id=instance_id,
            target="audited")

    # Newest first, every record of the project, and the CLI reads the same trail.
    everything = trail(server, token, limit=1000)
    assert everything["total_num"] == len(everything["records"]) == 17
    ids = [r["id"] for r in everything["records"]]
    assert ids == sorted(ids, reverse=True)
    assert {r["project_id"] for r in everything["records"]} == {"proj-a"}
    assert server.cli("audit", "list", "--project-id", "proj-a", "--limit", "1000") == everything


def test_a_refused_action_is_not_recorded(dcslog_server_factory, redis_standalone, tmp_path):
    """Decision: a request refused (here DCS.4017: a collection of that day is still running) changed
    nothing and released nothing, and is not recorded; its access-log line has the request id."""
    with dcslog_server_factory(run_worker=False) as server:  # no worker: the first collection stays running
        instance_id, _ = collected_site(server, redis_standalone, tmp_path)
        sdk = Sdk(server, server.credentials(role="operator"))
        sdk.client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
        with pytest.raises(ClientRequestException) as refused:
            sdk.client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
        assert refused.value.error_code == "DCS.4017"
        token = server.cli("token", "create", "--project-id", "proj-a")["token"]
        [collect] = records(server, token, action="runlog.collect")
        assert collect["request_id"] == sdk.request_ids[0] != sdk.request_ids[1]
        # A link to a file still being collected for the first time is refused too: nothing recorded.
        [file] = sdk.client.list_redislog(ListRedislogRequest(instance_id=instance_id, log_type="run")).file_list
        answer = httpx.post(f"{server.url}/v2/proj-a/instances/{instance_id}/redislog/{file.id}/links",
                            headers={"X-Auth-Token": token})
        assert (answer.status_code, answer.json()["error_code"]) == (400, "DCS.4800")
        assert [r["action"] for r in records(server, token)] == ["token.create", "runlog.collect",
                                                                   "credential.create", "instance.import"]


def test_filters_paging_roles_and_projects(dcslog_server, redis_standalone, tmp_path):
    server = dcslog_server
    admin = server.cli("token", "create", "--project-id", "proj-a")
    instance_id, _ = collected_site(server, redis_standalone, tmp_path)
    other_instance, _ = collected_site(server, redis_standalone, tmp_path, "proj-b")
    operator_key = server.credentials(role="operator")
    sdk = Sdk(server, operator_key)
    sdk.client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
    [file] = wait_settled(sdk.client, instance_id)
    for _ in range(3):
        sdk.client.create_redislog_download_link(
            CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=file.id))
    token = admin["token"]

    # Filters.
    links = trail(server, token, action="link.create")
    assert links["total_num"] == 3 and {r["actor"] for r in links["records"]} == {operator_key["access_key"]}
    by_actor = trail(server, token, actor=operator_key["access_key"])
    assert sorted(r["action"] for r in by_actor["records"]) == ["link.create"] * 3 + ["runlog.collect"]
    assert {r["instance_id"] for r in trail(server, token, instance_id=instance_id)["records"]} == {instance_id}
    assert trail(server, token, instance_id=other_instance)["total_num"] == 0  # proj-b's: not here
    now = datetime.now(UTC)
    future = (now + timedelta(hours=1)).strftime("%Y%m%d%H%M%S")
    past = (now - timedelta(hours=1)).strftime("%Y%m%d%H%M%S")
    assert trail(server, token, start_time=future)["total_num"] == 0
    assert trail(server, token, end_time=past)["total_num"] == 0
    assert trail(server, token, start_time=past, end_time=future)["total_num"] == trail(server, token)["total_num"]

    # Paging: newest first, total before paging.
    whole = trail(server, token, limit=1000)["records"]
    pages = [trail(server, token, offset=offset, limit=2) for offset in range(0, len(whole), 2)]
    assert {p["total_num"] for p in pages} == {len(whole)}
    assert [r for p in pages for r in p["records"]] == whole

    # Bad parameters, in the envelope.
    for params, code in (({"action": "link.made"}, "DCS.4800"), ({"limit": "0"}, "DCS.4800"),
                         ({"start_time": future, "end_time": past}, "DCS.4025")):
        answer = httpx.get(f"{server.url}/v2/proj-a/audit", params=params, headers={"X-Auth-Token": token})
        assert (answer.status_code, answer.json()["error_code"]) == (400, code), params

    # Admin only.
    for role in ("viewer", "operator"):
        other = server.cli("token", "create", "--project-id", "proj-a", "--role", role)["token"]
        answer = httpx.get(f"{server.url}/v2/proj-a/audit", headers={"X-Auth-Token": other})
        assert (answer.status_code, answer.json()["error_code"]) == (403, "DCS.2003")
    assert httpx.get(f"{server.url}/v2/proj-a/audit").status_code == 401

    # Another project's records are invisible: to its admin's listing, and proj-b's admin cannot ask for proj-a's.
    theirs = server.cli("token", "create", "--project-id", "proj-b")["token"]
    b_records = records(server, theirs, project_id="proj-b")
    assert b_records and {r["project_id"] for r in b_records} == {"proj-b"}
    assert {r["instance_id"] for r in b_records} <= {other_instance, None}
    answer = httpx.get(f"{server.url}/v2/proj-a/audit", headers={"X-Auth-Token": theirs})
    assert (answer.status_code, answer.json()["error_code"]) == (401, "DCS.1004")
    assert not {r["id"] for r in b_records} & {r["id"] for r in whole}
    listed = server.cli("audit", "list", "--project-id", "proj-b", "--limit", "1000")
    assert listed["records"] == b_records


def test_no_secret_reaches_the_audit_trail(dcslog_server, redis_standalone, tmp_path):
    """Tokens, secret keys, link tokens (their signatures) and Redis passwords are never in the
    trail: not in its rows, and nowhere in the database's bytes or the data directory's files."""
    server, node = dcslog_server, redis_standalone
    password = "Redis-pw-3f9c2a7e1b"
    with contextlib.closing(node.client()) as client:
        client.execute_command("ACL", "SETUSER", "auditee", "on", f">{password}", "~*", "+@all")
    log_file = tmp_path / "redis.log"
    log_file.write_bytes(day_lines(today_utc(), 10))
    server.monkeypatch.setenv("DCSLOG_REDIS_PASSWORD", password)
    instance_id = server.import_instance(f"redis://auditee@{node.host}:{node.port}", "proj-a", "secretive",
                                         "--log-file", f"{node.address}={log_file}")["instance_id"]
    server.monkeypatch.delenv("DCSLOG_REDIS_PASSWORD")
    server.cli("instances", "refresh", instance_id)
    admin = server.cli("token", "create", "--project-id", "proj-a")
    key = server.credentials(role="operator")
    sdk = Sdk(server, key)
    sdk.client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
    [file] = wait_settled(sdk.client, instance_id)
    secrets_used = [password, admin["token"], key["secret_key"]]
    for link_format in ("raw", "ndjson"):
        made = httpx.post(f"{server.url}/v2/proj-a/instances/{instance_id}/redislog/{file.id}/links",
                          params={"format": link_format}, headers={"X-Auth-Token": admin["token"]}).json()
        assert httpx.get(made["link"]).status_code == 200
        token_part = made["link"].split("/downloads/")[1].split("?")[0]
        payload, signature = token_part.rsplit(".", 1)
        secrets_used += [token_part, signature]
    server.cli("token", "revoke", "--project-id", "proj-a", admin["id"])
    server.cli("credentials", "revoke", "--project-id", "proj-a", key["access_key"])

    rows = trail(server, server.cli("token", "create", "--project-id", "proj-a")["token"], limit=1000)["records"]
    assert {r["action"] for r in rows} >= {"instance.import", "instance.refresh", "token.create", "credential.create",
                                           "runlog.collect", "link.create", "link.download", "token.revoke",
                                           "credential.revoke"}
    text = repr(rows)
    for secret in secrets_used:
        assert secret not in text
    # The raw bytes: the audit table's rows straight from both SQLite files (the journal's holds
    # the links made and the downloads), and every file of the data directory.
    raw = ""
    for name in ("dcslog.db", "dcslog-audit.db"):
        with contextlib.closing(sqlite3.connect(Path(server.settings.data_dir) / name)) as db:
            raw += repr(db.execute("SELECT * FROM audit_records").fetchall())
    assert raw.count("'link.download'") == 2
    for secret in secrets_used:
        assert secret not in raw
    for path in Path(server.settings.data_dir).rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in secrets_used:
                assert secret.encode() not in content, (path, secret[:4])


def test_an_action_that_cannot_be_recorded_is_not_done(dcslog_server, redis_standalone, tmp_path):
    """With the journal's table unwritable (on SQLite, in its file of its own), a link is not handed
    out and a download is refused before its first byte (500 in the envelope); once the trail can
    be written again, both work."""
    server = dcslog_server
    base, token, file_id = collected_file(server, redis_standalone, tmp_path)
    link = httpx.post(base, headers={"X-Auth-Token": token}).json()["link"]
    database = Path(server.settings.data_dir) / "dcslog-audit.db"
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("ALTER TABLE audit_records RENAME TO audit_records_away")
    try:
        made = httpx.post(base, headers={"X-Auth-Token": token})
        assert (made.status_code, made.json()["error_code"]) == (500, "DCS.5000")
        got = httpx.get(link)
        assert (got.status_code, got.json()["error_code"]) == (500, "DCS.5000")
        assert file_id.encode() not in got.content
    finally:
        with contextlib.closing(sqlite3.connect(database)) as db:
            db.execute("ALTER TABLE audit_records_away RENAME TO audit_records")
    assert httpx.get(link).status_code == 200
    assert len(records(server, token, action="link.create")) == 1
    assert len(records(server, token, action="link.download")) == 1


def test_automatic_collections_are_recorded_as_the_system(dcslog_server, redis_standalone):
    server, node = dcslog_server, redis_standalone
    instance_id = server.import_instance(node.url)["instance_id"]
    server.harvest()  # the first look
    node.stop()
    node.start()
    server.harvest()  # the restart: an automatic collection
    token = server.cli("token", "create", "--project-id", "proj-a")["token"]
    sdk = server.sdk(role="viewer")
    [task] = sdk.list_background_task(ListBackgroundTaskRequest(instance_id=instance_id)).tasks
    assert task.name == "AutoCollectRunLog"
    the_one(server, token, "runlog.collect", actor="dcslog", actor_type="system", instance_id=instance_id,
            target=task.id, source_ip=None, request_id=None)


@pytest.mark.parametrize("backend_env", ["embedded", "postgres-s3"], indirect=True)
def test_collect_link_download_revoke_on_both_backends(backend_env, dcslog_env, monkeypatch, redis_standalone,
                                                       tmp_path):
    """On SQLite + a directory and on PostgreSQL + S3: a records link (dcslog's own on S3 too) made,
    downloaded and revoked, each recorded once. (A raw link on S3 is the store's presigned URL:
    dcslog never sees its downloads, and cannot record them; see docs/design.md.)"""
    from tests.dcslog_fixtures import started_server

    with started_server(monkeypatch) as server:
        instance_id, _ = collected_site(server, redis_standalone, tmp_path)
        admin = server.cli("token", "create", "--project-id", "proj-a")
        sdk = Sdk(server, server.credentials(role="operator"))
        sdk.client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
        [file] = wait_settled(sdk.client, instance_id)
        base = f"{server.url}/v2/proj-a/instances/{instance_id}/redislog/{file.id}/links"
        made = httpx.post(base, params={"format": "ndjson"}, headers={"X-Auth-Token": admin["token"]})
        link_id = made.json()["link_id"]
        got = httpx.get(made.json()["link"], headers={"X-Request-Id": "records-download"})
        assert got.status_code == 200 and got.content
        assert httpx.delete(f"{base}/{link_id}", headers={"X-Auth-Token": admin["token"]}).status_code == 204
        assert httpx.get(made.json()["link"]).status_code == 403
        token = admin["token"]
        the_one(server, token, "link.create", actor=admin["id"], target=f"{file.id}/links/{link_id}")
        the_one(server, token, "link.download", actor=link_id, actor_type="link", target=file.id,
                request_id="records-download", source_ip=LOOPBACK, link_created_by=admin["id"])
        the_one(server, token, "link.revoke", actor=admin["id"], target=f"{file.id}/links/{link_id}")
        the_one(server, token, "runlog.collect", actor_type="access_key", request_id=sdk.request_ids[0])
        assert trail(server, token)["total_num"] == 7  # + import, 2 × create (token, key)…
        assert len(records(server, token, action="credential.create")) == 1


def test_the_retention_sweep_deletes_records_past_the_setting(dcslog_server_factory, monkeypatch):
    from dcslog.services import audit

    monkeypatch.setattr(audit, "SWEEP_BATCH", 2)  # in batches: three old ones take two
    with dcslog_server_factory(run_worker=False, audit_retention_days="90") as server:
        token = server.cli("token", "create", "--project-id", "proj-a")["token"]
        now = utcnow()

        async def add(sessionmaker, *rows: tuple[int, str, str]) -> None:
            async with sessionmaker() as session:
                for age, name, action in rows:
                    await session.execute(insert(AuditRecord).values(
                        time=now - timedelta(days=age), project_id="proj-a", actor=name, actor_type="system",
                        action=action, outcome="succeeded"))
                await session.commit()

        async def actors(sessionmaker) -> list[str]:
            async with sessionmaker() as session:
                return list(await session.scalars(select(AuditRecord.actor).order_by(AuditRecord.id)))

        async def sweep() -> tuple[list[str], list[str]]:
            engine = create_engine(server.settings.effective_database_url)
            try:
                sessionmaker = create_sessionmaker(engine)
                await add(sessionmaker, (91, "old", "token.create"), (95, "older", "token.create"),
                          (120, "oldest", "token.create"), (89, "kept", "token.create"))
                # On SQLite the records of links and downloads are in the journal's file of its own.
                async with journal_sessions(server.settings.effective_database_url) as journal:
                    assert journal is not None
                    await add(journal, (92, "old-link", "link.download"), (88, "kept-link", "link.download"))
                    await Retention(server.settings, sessionmaker, open_object_store(server.settings)).sweep()
                    return await actors(sessionmaker), await actors(journal)
            finally:
                await engine.dispose()

        assert asyncio.run(sweep()) == ([OS_USER, "kept"], ["kept-link"])
        # Newest first across both files.
        assert [r["actor"] for r in records(server, token)] == [OS_USER, "kept-link", "kept"]
        assert [r["actor"] for r in trail(server, token, offset=1, limit=1)["records"]] == ["kept-link"]
        assert trail(server, token, offset=2, limit=5)["total_num"] == 3


def test_downloads_arriving_together_are_each_recorded_once(dcslog_server, redis_standalone, tmp_path):
    """Links made and downloads share group commits (``audit.Journal``): 40 downloads and 10 links
    at once are 50 records, each with its own request id, none lost or doubled."""
    server = dcslog_server
    base, token, file_id = collected_file(server, redis_standalone, tmp_path)
    link = httpx.post(base, headers={"X-Auth-Token": token}).json()["link"]

    async def together() -> list[int]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=50)) as client:
            downloads = [client.get(link, headers={"X-Request-Id": f"together-{i}"}) for i in range(40)]
            links = [client.post(base, headers={"X-Auth-Token": token, "X-Request-Id": f"made-{i}"})
                     for i in range(10)]
            return [r.status_code for r in await asyncio.gather(*downloads, *links)]

    assert asyncio.run(together()) == [200] * 50
    downloaded = records(server, token, action="link.download")
    assert sorted(r["request_id"] for r in downloaded) == sorted(f"together-{i}" for i in range(40))
    made = [r["request_id"] for r in records(server, token, action="link.create")]
    assert sorted(made) == sorted([f"made-{i}" for i in range(10)] + [made[-1]]) and len(made) == 11


def test_a_journal_another_connection_holds_waits_its_turn(dcslog_server, redis_standalone, tmp_path):
    """On SQLite the journal commits on the event loop with no busy timeout; while another
    connection holds its file's write lock, a link is handed out (and recorded) only once the
    lock is let go — through the waiting path, never an error and never a link unrecorded."""
    server = dcslog_server
    base, token, file_id = collected_file(server, redis_standalone, tmp_path)
    journal = Path(server.settings.data_dir) / "dcslog-audit.db"
    with contextlib.closing(sqlite3.connect(journal, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            made = pool.submit(httpx.post, base, headers={"X-Auth-Token": token, "X-Request-Id": "held"}, timeout=30)
            with pytest.raises(concurrent.futures.TimeoutError):
                made.result(timeout=1.0)  # no answer while the lock is held
            assert httpx.get(f"{server.url}/health").status_code == 200  # the loop is not the one waiting
            holder.execute("COMMIT")
            assert made.result(timeout=20).status_code == 200
    the_one(server, token, "link.create", request_id="held")


def test_a_flood_of_downloads_is_throttled_per_project(dcslog_server_factory, redis_standalone, tmp_path):
    """DCSLOG_DOWNLOADS_PER_MINUTE bounds the trail's disk: past a project's budget a download is
    429 (the API gateway's APIGW.0308, with Retry-After), releases nothing and is not recorded;
    another project's downloads and a HEAD are not counted against it."""
    with dcslog_server_factory(downloads_per_minute="3") as server:
        links, bases = {}, {}
        for project in ("proj-a", "proj-b"):
            bases[project], token, file_id = collected_file(server, redis_standalone, tmp_path, project)
            links[project] = (httpx.post(bases[project], headers={"X-Auth-Token": token}).json()["link"], token,
                              file_id)
        base_a = bases["proj-a"]
        link, token_a, _ = links["proj-a"]
        assert httpx.head(link).status_code == 200
        assert [httpx.get(link).status_code for _ in range(3)] == [200] * 3
        refused = httpx.get(link)
        assert refused.status_code == 429
        assert refused.json() == {"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached.",
                                  "error_ext_msg": refused.json()["error_ext_msg"]}
        assert 1 <= int(refused.headers["Retry-After"]) <= 20  # a token every 20 s at 3 a minute
        records_link = httpx.post(base_a, params={"format": "ndjson"}, headers={"X-Auth-Token": token_a}).json()
        assert httpx.get(records_link["link"]).status_code == 429  # a records link is refused before converting
        assert len(records(server, token_a, action="link.download")) == 3
        other_link, token_b, _ = links["proj-b"]
        assert httpx.get(other_link).status_code == 200
        assert len(records(server, token_b, project_id="proj-b", action="link.download")) == 1


def test_a_journal_file_removed_under_the_server_is_opened_anew(dcslog_server, redis_standalone, tmp_path):
    """The journal file deleted while the API runs (an operator, a restore): the next link made is
    recorded in a new file that the API and the CLI both read — never into the deleted file. The
    CLI, which only reads, does not create the file itself."""
    server = dcslog_server
    base, token, _ = collected_file(server, redis_standalone, tmp_path)
    assert httpx.post(base, headers={"X-Auth-Token": token, "X-Request-Id": "before"}).status_code == 200
    journal = Path(server.settings.data_dir) / "dcslog-audit.db"
    for name in ("dcslog-audit.db", "dcslog-audit.db-wal", "dcslog-audit.db-shm"):
        (journal.parent / name).unlink(missing_ok=True)
    assert server.cli("audit", "list", "--project-id", "proj-a", "--action", "link.create")["total_num"] == 0
    assert not journal.exists()  # the CLI only reads
    assert httpx.post(base, headers={"X-Auth-Token": token, "X-Request-Id": "after"}).status_code == 200
    assert journal.exists() and journal.stat().st_mode & 0o777 == 0o600
    assert [r["request_id"] for r in records(server, token, action="link.create")] == ["after"]
    listed = server.cli("audit", "list", "--project-id", "proj-a", "--action", "link.create")
    assert [r["request_id"] for r in listed["records"]] == ["after"]


def test_processes_opening_a_new_journal_together_all_succeed(tmp_path):
    """API processes started together on a fresh install each create the journal's table: none
    fails on the others' (CREATE … IF NOT EXISTS, not a look first)."""
    script = ("import asyncio, sys\n"
              "from dcslog.db.session import open_audit_journal\n"
              "async def main():\n"
              "    engine = await open_audit_journal(sys.argv[1])\n"
              "    await engine.dispose()\n"
              "asyncio.run(main())\n")
    for trial in range(5):
        url = f"sqlite+aiosqlite:///{tmp_path / f'trial{trial}' / 'dcslog.db'}"
        started = [subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE)
                   for _ in range(4)]
        failures = [p.communicate(timeout=60)[1].decode() for p in started if p.wait(timeout=60) != 0]
        assert failures == [], failures[0]
        with contextlib.closing(sqlite3.connect(tmp_path / f"trial{trial}" / "dcslog-audit.db")) as db:
            indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"ix_audit_records_time", "ix_audit_records_project_time"} <= indexes


def test_a_page_ends_at_most_ten_thousand_records_deep(dcslog_server):
    """The listing merges two files' first offset + limit records on the event loop: bounded, as
    search APIs bound their result windows; the bound is said in the error."""
    server = dcslog_server
    token = server.cli("token", "create", "--project-id", "proj-a")["token"]
    assert trail(server, token, offset=9000, limit=1000)["records"] == []
    deep = httpx.get(f"{server.url}/v2/proj-a/audit", params={"offset": 9001, "limit": 1000},
                     headers={"X-Auth-Token": token})
    assert (deep.status_code, deep.json()["error_code"]) == (400, "DCS.4800")
    assert "10000" in deep.json()["error_ext_msg"]
