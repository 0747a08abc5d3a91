"""A re-collection never destroys a good copy (SPEC §2 and §5), on the embedded store and on PostgreSQL + S3.

While a refresh runs, the file is `creating` and its previous content stays
downloadable, through links issued before and new ones; a refresh that fails
(the log is gone, or the worker gives up on the job) puts the file back to
`succeed` with that content, its backup_id and expiry, and the task says why.
"""

from __future__ import annotations

import hashlib

import httpx
import pytest
import sqlalchemy
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkdcs.v2 import CreateRedislogDownloadLinkRequest, CreateRedislogRequest, ListRedislogRequest

from dcslog.db.session import sync_url
from dcslog.services import jobs
from dcslog.storage import open_object_store
from dcslog.storage.objectkeys import is_object_key
from dcslog.testing.waiting import wait_for
from tests.backend_fixtures import BACKENDS
from tests.test_redislog import day_lines, today_utc, wait_settled
from tests.test_scale_out import run_sweep


def query(settings, sql: str, **params) -> list:
    """Run SQL on the server's database, SQLite or PostgreSQL."""
    engine = sqlalchemy.create_engine(sync_url(settings.effective_database_url))
    try:
        with engine.begin() as db:
            result = db.execute(sqlalchemy.text(sql), params)
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


def raw(server, token: str, instance_id: str, what: str) -> dict:
    """A list as the API sends it, extensions included (the SDK's models drop them)."""
    response = httpx.get(f"{server.url}/v2/proj-a/instances/{instance_id}/{what}",
                         params={"log_type": "run"} if what == "redislog" else {}, headers={"X-Auth-Token": token})
    assert response.status_code == 200, response.text
    return response.json()


def stored_keys(settings) -> set[str]:
    """Every dcslog object in the store, however fresh."""
    return {key for key in open_object_store(settings).keys(older_than=-3600) if is_object_key(key)}


@pytest.fixture
def node_log(tmp_path):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    log = log_dir / "redis.log"
    log.write_bytes(day_lines(today_utc(), 6, tag="first "))
    return log


@pytest.mark.parametrize("backend_env", BACKENDS, indirect=True)
@pytest.mark.parametrize("how", ["the log is gone", "the worker gives up"])
def test_a_failed_refresh_keeps_the_good_copy(backend_env, dcslog_server_factory, redis_standalone, node_log,
                                              tmp_path, how):
    first = node_log.read_bytes()
    with dcslog_server_factory() as server:
        instance_id = server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                             f"{redis_standalone.address}={node_log}")["instance_id"]
        credential = server.credentials(role="operator")
        token = server.cli("token", "create", "--project-id", "proj-a")["token"]
        client = server.sdk(credential=credential)
        request = CreateRedislogRequest(instance_id=instance_id, log_type="run")
        client.create_redislog(request)
        [collected] = wait_settled(client, instance_id)
        assert collected.status == "succeed"
        early = client.create_redislog_download_link(
            CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=collected.id))
        assert httpx.get(early.link).content == first
        [(expires_at,)] = query(server.settings, "SELECT expires_at FROM log_files")

    # No worker: the refresh stays `creating` for as long as the test looks at it.
    with dcslog_server_factory(run_worker=False) as server:
        client = server.sdk(credential=credential)
        client.create_redislog(request)
        [refreshing] = client.list_redislog(ListRedislogRequest(instance_id=instance_id, log_type="run")).file_list
        assert refreshing.id == collected.id and refreshing.status == "creating"
        assert refreshing.backup_id != collected.backup_id  # the task collecting it now
        # The previous content stays downloadable: through the earlier link, and through a new one.
        assert httpx.get(early.link).content == first
        during = client.create_redislog_download_link(
            CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=collected.id))
        assert during.backup_id == collected.backup_id  # the task whose content it serves
        assert httpx.get(during.link).content == first
        if how == "the log is gone":
            node_log.parent.rename(tmp_path / "moved-away")
        else:  # the job has killed its worker every time so far: the next claim gives up on it
            query(server.settings, "UPDATE tasks SET attempts = :n WHERE status = 'running'",
                  n=jobs.MAX_ATTEMPTS)

    with dcslog_server_factory() as server:
        client = server.sdk(credential=credential)
        [after] = wait_settled(client, instance_id)
        assert (after.id, after.status, after.backup_id) == (collected.id, "succeed", collected.backup_id)
        assert httpx.get(early.link).content == first
        assert httpx.get(during.link).content == first
        later = client.create_redislog_download_link(
            CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=collected.id))
        assert later.backup_id == collected.backup_id and httpx.get(later.link).content == first
        [item] = raw(server, token, instance_id, "redislog")["file_list"]
        assert item["size"] == len(first) and item["sha256"] == hashlib.sha256(first).hexdigest()
        tasks = {task["id"]: task for task in raw(server, token, instance_id, "tasks")["tasks"]}
        assert tasks[collected.backup_id]["status"] == "succeed"
        [refresh] = [task for task_id, task in tasks.items() if task_id != collected.backup_id]
        assert refresh["status"] == "failed"
        assert ("not found" if how == "the log is gone" else "Gave up") in refresh["error_msg"]
        assert query(server.settings, "SELECT expires_at FROM log_files") == [(expires_at,)]
        [(kept_key,)] = query(server.settings, "SELECT object_key FROM log_files")
        assert stored_keys(server.settings) == {kept_key}

        # A later refresh that works publishes the new content, and the previous copy goes.
        if how == "the log is gone":
            (tmp_path / "moved-away").rename(node_log.parent)
        more = day_lines(today_utc(), 2, tag="second ")
        with open(node_log, "ab") as f:
            f.write(more)
        client.create_redislog(request)
        [refreshed] = wait_settled(client, instance_id)
        assert refreshed.status == "succeed" and refreshed.backup_id not in tasks
        fresh = client.create_redislog_download_link(
            CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=collected.id))
        assert fresh.backup_id == refreshed.backup_id and httpx.get(fresh.link).content == first + more
        [(new_key,)] = query(server.settings, "SELECT object_key FROM log_files")
        assert new_key != kept_key and stored_keys(server.settings) == {new_key}


def test_the_sweep_keeps_the_copy_of_a_file_being_refreshed(dcslog_server_factory, redis_standalone, node_log):
    """Even past its retention, the previous copy of a file being refreshed is not the sweep's: the
    refresh may fail and need it back. (Its expiry then decides.)"""
    with dcslog_server_factory() as server:
        instance_id = server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                             f"{redis_standalone.address}={node_log}")["instance_id"]
        credential = server.credentials(role="operator")
        client = server.sdk(credential=credential)
        client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
        wait_settled(client, instance_id)
    with dcslog_server_factory(run_worker=False) as server:
        server.sdk(credential=credential).create_redislog(CreateRedislogRequest(instance_id=instance_id,
                                                                                log_type="run"))
        settings = server.settings
    [(key,)] = query(settings, "SELECT object_key FROM log_files")
    past = "2000-01-01 00:00:00"
    query(settings, f"UPDATE log_files SET expires_at = '{past}', content_expires_at = '{past}'")
    assert run_sweep(settings, open_object_store(settings)) == 0
    assert query(settings, "SELECT status, object_key FROM log_files") == [("creating", key)]
    assert stored_keys(settings) == {key}
    # Given up on, it goes back to its previous copy, which is past retention: now the sweep takes it.
    query(settings, "UPDATE tasks SET attempts = :n", n=jobs.MAX_ATTEMPTS)
    with dcslog_server_factory(sweep_interval="1") as server:
        client = server.sdk(credential=credential)
        listing = lambda: client.list_redislog(  # noqa: E731
            ListRedislogRequest(instance_id=instance_id, log_type="run")).total_num
        wait_for(lambda: not query(settings, "SELECT id FROM log_files"), what="the sweep to delete the record")
        assert listing() in (None, 0)
    assert stored_keys(settings) == set()


def test_no_link_for_a_file_without_a_complete_copy(dcslog_server_factory, redis_standalone, node_log, tmp_path):
    """A file whose only collection failed has nothing to serve: refreshing it keeps refusing links
    (DCS.4800, naming the status), and a refresh that fails again leaves it `failed`."""
    node_log.parent.rename(tmp_path / "moved-away")
    with dcslog_server_factory() as server:
        instance_id = server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                             f"{redis_standalone.address}={node_log}")["instance_id"]
        credential = server.credentials(role="operator")
        client = server.sdk(credential=credential)
        client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
        [failed] = wait_settled(client, instance_id)
        assert failed.status == "failed"
    with dcslog_server_factory(run_worker=False) as server:
        client = server.sdk(credential=credential)
        client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
        with pytest.raises(ClientRequestException) as caught:
            client.create_redislog_download_link(CreateRedislogDownloadLinkRequest(instance_id=instance_id,
                                                                                   id=failed.id))
        assert caught.value.error_code == "DCS.4800" and "creating" in caught.value.error_msg
    with dcslog_server_factory() as server:
        client = server.sdk(credential=credential)
        [again] = wait_settled(client, instance_id)
        assert again.status == "failed" and again.backup_id != failed.backup_id
        assert query(server.settings, "SELECT object_key FROM log_files") == [(None,)]


def test_the_client_reports_a_failed_refresh(dcslog_server, redis_standalone, node_log, tmp_path, monkeypatch,
                                             capsys):
    """`dcslog logs collect --wait` follows its collection by the task that collects each file: a refresh
    that fails is reported (exit 3, with the reason), although backup_id goes back to the previous task."""
    from dcslog.command import EXIT_COLLECTION_FAILED
    from tests.test_client_cli import configure_client, run

    instance_id = dcslog_server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                                f"{redis_standalone.address}={node_log}")["instance_id"]
    configure_client(dcslog_server, monkeypatch, tmp_path)
    collect = ("logs", "collect", "--instance", instance_id, "--wait", "--interval", "0.2", "--timeout", "30")
    assert run(capsys, *collect)[0] == 0
    node_log.parent.rename(tmp_path / "moved-away")
    code, _, err = run(capsys, *collect)
    assert code == EXIT_COLLECTION_FAILED, err
    assert "not found" in err and "previous copy is kept" in err
