"""Run-log collection semantics over HTTP: days, refresh in place, overlap, failures, links, downloads, retention."""

from __future__ import annotations

import gzip
import hashlib
import sqlite3
import time
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

import httpx
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkdcs.v2 import (
    CreateRedislogDownloadLinkRequest,
    CreateRedislogRequest,
    ListBackgroundTaskRequest,
    ListRedislogRequest,
)

from dcslog.services.redislog import days_to_collect
from dcslog.testing.waiting import wait_for

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def log_line(moment: datetime, message: str) -> bytes:
    stamp = (f"{moment.day:02d} {MONTHS[moment.month - 1]} {moment.year} "
             f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}")
    return f"4242:M {stamp} * {message}\n".encode()


def day_lines(day: date, count: int, tag: str = "") -> bytes:
    start = datetime(day.year, day.month, day.day, 0, 30)
    return b"".join(log_line(start + timedelta(minutes=7 * i), f"{tag}entry {i} of {day}") for i in range(count))


def today_utc() -> date:
    return datetime.now(UTC).date()


@pytest.fixture
def synthetic(dcslog_server, redis_standalone, tmp_path):
    """An instance whose node's run log is a synthetic file: yesterday-but-one in a rotated .gz,
    yesterday empty (no lines at all), today with a crash report."""
    today = today_utc()
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    log_file = log_dir / "redis.log"
    two_days_ago = day_lines(today - timedelta(days=2), 5)
    with gzip.open(log_dir / "redis.log.1.gz", "wb") as f:
        f.write(day_lines(today - timedelta(days=3), 3) + two_days_ago)
    today_bytes = (day_lines(today, 4)
                   + b"=== REDIS BUG REPORT START: Cut & paste starting from here ===\n  stack line\n")
    log_file.write_bytes(today_bytes)
    imported = dcslog_server.import_instance(
        redis_standalone.url, "proj-a", "synthetic", "--log-file", f"{redis_standalone.address}={log_file}")
    replica = imported["group_list"][0]["replication_list"][0]
    assert replica["log_file"] == str(log_file)
    return {"instance_id": imported["instance_id"], "replication_id": replica["replication_id"],
            "data_dir": dcslog_server.settings.data_dir,
            "log_file": log_file, "client": dcslog_server.sdk(role="operator"),
            "expected": {today: today_bytes, today - timedelta(days=1): b"", today - timedelta(days=2): two_days_ago}}


def wait_settled(client, instance_id):
    def settled():
        listing = client.list_redislog(ListRedislogRequest(instance_id=instance_id, log_type="run", limit=1000))
        files = listing.file_list or []
        return files if files and all(f.status != "creating" for f in files) else None
    return wait_for(settled, what="files to settle")


def download(client, instance_id, file_id, **kwargs) -> httpx.Response:
    link = client.create_redislog_download_link(CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=file_id))
    return httpx.get(link.link, **kwargs)


def test_three_days_one_file_each_with_exact_bytes(synthetic):
    client, instance_id = synthetic["client"], synthetic["instance_id"]
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run", query_time=3,
                                                 replication_id=synthetic["replication_id"]))
    files = wait_settled(client, instance_id)
    assert [f.time for f in files] == [d.isoformat() for d in sorted(synthetic["expected"], reverse=True)]
    assert len({f.backup_id for f in files}) == 1
    for item in files:
        assert item.status == "succeed"
        expected = synthetic["expected"][date.fromisoformat(item.time)]
        response = download(client, instance_id, item.id)
        assert response.status_code == 200 and response.content == expected
        assert int(response.headers["content-length"]) == len(expected)


def test_recollecting_refreshes_in_place(synthetic):
    client, instance_id = synthetic["client"], synthetic["instance_id"]
    request = CreateRedislogRequest(instance_id=instance_id, log_type="run", query_time=1,
                                    replication_id=synthetic["replication_id"])
    client.create_redislog(request)
    [first] = wait_settled(client, instance_id)
    more = day_lines(today_utc(), 2, tag="later ")
    with open(synthetic["log_file"], "ab") as f:
        f.write(more)
    client.create_redislog(request)
    [second] = wait_settled(client, instance_id)
    assert second.id == first.id and second.backup_id != first.backup_id
    assert download(client, instance_id, second.id).content == synthetic["expected"][today_utc()] + more


def test_overlapping_collection_is_refused(dcslog_server_factory, redis_standalone):
    # No worker: the first collection stays running.
    with dcslog_server_factory(run_worker=False) as server:
        imported = server.import_instance(redis_standalone.url)
        client = server.sdk(role="operator")
        request = CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run", query_time=3)
        client.create_redislog(request)
        with pytest.raises(ClientRequestException) as caught:
            client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run",
                                                         query_time=1))
        assert (caught.value.status_code, caught.value.error_code) == (400, "DCS.4017")
        listing = client.list_redislog(ListRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
        assert listing.total_num == 3 and {f.status for f in listing.file_list} == {"creating"}
        # A link for a file still being created is refused, saying why.
        with pytest.raises(ClientRequestException) as caught:
            client.create_redislog_download_link(CreateRedislogDownloadLinkRequest(
                instance_id=imported["instance_id"], id=listing.file_list[0].id))
        assert caught.value.error_code == "DCS.4800" and "creating" in caught.value.error_msg


def test_node_without_log_file_fails_with_a_reason(dcslog_server, redis_node_factory, capsys):
    node = redis_node_factory("127.0.0.3", logfile="")
    imported = dcslog_server.import_instance(node.url)
    assert f"warning: {node.host}:{node.port} has no log file dcslog can collect" in capsys.readouterr().err
    client = dcslog_server.sdk()
    client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
    [item] = wait_settled(client, imported["instance_id"])
    assert item.status == "failed"
    tasks = client.list_background_task(ListBackgroundTaskRequest(instance_id=imported["instance_id"]))
    task = tasks.tasks[0]
    assert task.status == "failed"
    raw = httpx.get(f"{dcslog_server.url}/v2/proj-a/instances/{imported['instance_id']}/tasks",
                    headers={"X-Auth-Token": dcslog_server.cli("token", "create", "--project-id", "proj-a")["token"]})
    assert "stdout" in raw.json()["tasks"][0]["error_msg"]


def test_missing_log_file_fails_and_nothing_is_published(dcslog_server, redis_standalone, tmp_path, capsys):
    imported = dcslog_server.import_instance(
        redis_standalone.url, "proj-a", "gone", "--log-file", f"{redis_standalone.address}={tmp_path}/nope.log")
    # Said at import, not only by the failed collection later.
    assert f"warning: {redis_standalone.address} logs to {tmp_path}/nope.log: no such file on this machine" \
        in capsys.readouterr().err
    client = dcslog_server.sdk()
    client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
    [item] = wait_settled(client, imported["instance_id"])
    assert item.status == "failed"
    files = dcslog_server.settings.data_dir / "files"
    # Nothing published, nothing staged (the running process's own lock file is all there is).
    assert not [p for p in files.rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_list_is_empty_with_204_and_pages(synthetic, dcslog_server):
    client, instance_id = synthetic["client"], synthetic["instance_id"]
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a")["token"]
    url = f"{dcslog_server.url}/v2/proj-a/instances/{instance_id}/redislog?log_type=run"
    empty = httpx.get(url, headers={"X-Auth-Token": token})
    assert empty.status_code == 204 and empty.content == b""
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run", query_time=7,
                                                 replication_id=synthetic["replication_id"]))
    wait_settled(client, instance_id)
    page = client.list_redislog(ListRedislogRequest(instance_id=instance_id, log_type="run", offset=2, limit=3))
    assert page.total_num == 7
    today = today_utc()
    assert [f.time for f in page.file_list] == [(today - timedelta(days=i)).isoformat() for i in (2, 3, 4)]


def test_download_range_head_etag(synthetic):
    client, instance_id = synthetic["client"], synthetic["instance_id"]
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run",
                                                 replication_id=synthetic["replication_id"]))
    [item] = wait_settled(client, instance_id)
    expected = synthetic["expected"][today_utc()]
    link = client.create_redislog_download_link(
        CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=item.id)).link
    full = httpx.get(link)
    assert full.headers["accept-ranges"] == "bytes" and full.headers["etag"]
    partial = httpx.get(link, headers={"Range": "bytes=10-"})
    assert partial.status_code == 206 and partial.content == expected[10:]
    assert partial.headers["content-range"] == f"bytes 10-{len(expected) - 1}/{len(expected)}"
    # Derived from the content, so every API process gives the same one, and it changes with the bytes.
    assert full.headers["etag"] == f'"{hashlib.sha256(expected).hexdigest()}"'
    resumed = httpx.get(link, headers={"Range": "bytes=5-", "If-Range": full.headers["etag"]})
    assert resumed.status_code == 206 and resumed.content == expected[5:]
    beyond = httpx.get(link, headers={"Range": f"bytes={len(expected) + 10}-"})
    assert beyond.status_code == 416 and beyond.json()["error_code"] == "DCS.4800"
    assert beyond.headers["content-range"] == f"bytes */{len(expected)}"
    changed = httpx.get(link, headers={"If-Match": '"something-else"'})
    assert changed.status_code == 412 and changed.json()["error_code"] == "DCS.4800"
    assert httpx.get(link, headers={"If-Match": full.headers["etag"]}).status_code == 200
    head = httpx.head(link)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(expected)
    assert head.headers["content-disposition"] == f'attachment; filename="{item.file_name}"'


def test_if_range_never_splices_a_resumed_download_onto_new_content(synthetic):
    """RFC 9110 §13.1.5: a Range with an If-Range that does not match the current content gets the
    whole file (200), never a piece of the new content to append to the old one. Entity tags are
    compared strongly (a weak one never matches); a date must equal Last-Modified exactly."""
    client, instance_id = synthetic["client"], synthetic["instance_id"]
    request = CreateRedislogRequest(instance_id=instance_id, log_type="run", replication_id=synthetic["replication_id"])
    client.create_redislog(request)
    [item] = wait_settled(client, instance_id)
    link = client.create_redislog_download_link(
        CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=item.id)).link
    old = httpx.get(link)
    assert old.content == synthetic["expected"][today_utc()]
    more = day_lines(today_utc(), 3, tag="later ")
    with open(synthetic["log_file"], "ab") as f:
        f.write(more)
    client.create_redislog(request)
    wait_settled(client, instance_id)
    new_content = old.content + more
    current = httpx.get(link)
    assert current.content == new_content
    etag, last_modified = current.headers["etag"], current.headers["last-modified"]
    assert etag != old.headers["etag"] and etag == f'"{hashlib.sha256(new_content).hexdigest()}"'

    def resume(if_range: str) -> httpx.Response:
        return httpx.get(link, headers={"Range": "bytes=100-", "If-Range": if_range})
    for stale in (old.headers["etag"], f"W/{etag}", "not a validator",
                  format_datetime(parsedate_to_datetime(last_modified) + timedelta(hours=1), usegmt=True)):
        whole = resume(stale)
        assert (whole.status_code, whole.content) == (200, new_content), stale
        assert "content-range" not in whole.headers
    for valid in (etag, last_modified):
        part = resume(valid)
        assert (part.status_code, part.content) == (206, new_content[100:]), valid
        assert part.headers["content-range"] == f"bytes 100-{len(new_content) - 1}/{len(new_content)}"
    # If-Range without Range changes nothing.
    assert httpx.get(link, headers={"If-Range": old.headers["etag"]}).content == new_content


def test_download_preconditions_and_ranges(synthetic):
    client, instance_id = synthetic["client"], synthetic["instance_id"]
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run",
                                                 replication_id=synthetic["replication_id"]))
    [item] = wait_settled(client, instance_id)
    expected = synthetic["expected"][today_utc()]
    link = client.create_redislog_download_link(
        CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=item.id)).link
    full = httpx.get(link)
    etag, last_modified = full.headers["etag"], full.headers["last-modified"]
    earlier = format_datetime(parsedate_to_datetime(last_modified) - timedelta(hours=1), usegmt=True)

    # A suffix of zero bytes selects nothing: 416 (RFC 9110 §14.1.3), in the envelope.
    empty_suffix = httpx.get(link, headers={"Range": "bytes=-0"})
    assert empty_suffix.status_code == 416 and empty_suffix.json()["error_code"] == "DCS.4800"
    assert empty_suffix.headers["content-range"] == f"bytes */{len(expected)}"
    tail = httpx.get(link, headers={"Range": "bytes=-5"})
    assert (tail.status_code, tail.content) == (206, expected[-5:])

    # If-None-Match compares weakly, If-Match strongly; 304 carries the validators and no body.
    for matching in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        for method in ("GET", "HEAD"):
            unchanged = httpx.request(method, link, headers={"If-None-Match": matching})
            assert (unchanged.status_code, unchanged.content) == (304, b""), (method, matching)
            assert unchanged.headers["etag"] == etag and unchanged.headers["last-modified"] == last_modified
    assert httpx.get(link, headers={"If-None-Match": '"other"'}).content == expected
    assert httpx.get(link, headers={"If-None-Match": '"other"', "If-Modified-Since": last_modified}).status_code == 200
    assert httpx.get(link, headers={"If-Modified-Since": last_modified}).status_code == 304
    assert httpx.get(link, headers={"If-Modified-Since": earlier}).content == expected
    weak_match = httpx.get(link, headers={"If-Match": f"W/{etag}"})
    assert weak_match.status_code == 412 and weak_match.json()["error_code"] == "DCS.4800"
    assert httpx.get(link, headers={"If-Match": f'"other", {etag}'}).content == expected
    assert httpx.get(link, headers={"If-Unmodified-Since": earlier}).status_code == 412
    assert httpx.get(link, headers={"If-Unmodified-Since": last_modified}).content == expected
    # Preconditions come before the range (RFC 9110 §13.2.2).
    assert httpx.get(link, headers={"If-None-Match": etag, "Range": "bytes=-0"}).status_code == 304
    ranged = httpx.get(link, headers={"If-Match": etag, "Range": "bytes=5-9"})
    assert (ranged.status_code, ranged.content) == (206, expected[5:10])
    assert ranged.headers["etag"] == etag


def test_link_to_bytes_missing_on_disk_is_404(synthetic):
    client, instance_id = synthetic["client"], synthetic["instance_id"]
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run",
                                                 replication_id=synthetic["replication_id"]))
    [item] = wait_settled(client, instance_id)
    for stored in (synthetic["data_dir"] / "files").rglob("*.log"):
        stored.unlink()
    response = download(client, instance_id, item.id)
    assert response.status_code == 404 and response.json()["error_code"] == "DCS.4001"


def test_tampered_and_expired_links_are_refused(dcslog_server_factory, redis_standalone, tmp_path):
    log_file = tmp_path / "r.log"
    log_file.write_bytes(day_lines(today_utc(), 3))
    with dcslog_server_factory(link_ttl="1") as server:
        imported = server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                          f"{redis_standalone.address}={log_file}")
        client = server.sdk()
        client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
        [item] = wait_settled(client, imported["instance_id"])
        link = client.create_redislog_download_link(
            CreateRedislogDownloadLinkRequest(instance_id=imported["instance_id"], id=item.id)).link
        payload, mac = link.rsplit("/", 1)[1].split(".")
        base = link.rsplit("/", 1)[0]
        for forged in (f"{payload}.{mac[:-1]}A" if mac[-1] != "A" else f"{payload}.{mac[:-1]}B",
                       f"{payload[:-2]}.{mac}", "x", f"{payload}.", "..%2F..%2Fetc%2Fpasswd"):
            response = httpx.get(f"{base}/{forged}")
            assert response.status_code == 403, forged
            assert response.json()["error_code"] == "DCS.2004"
        time.sleep(1.2)
        expired = httpx.get(link)
        assert expired.status_code == 403 and expired.json()["error_code"] == "DCS.2004"


def test_retention_deletes_files_and_records(dcslog_server_factory, redis_standalone, tmp_path):
    log_file = tmp_path / "r.log"
    log_file.write_bytes(day_lines(today_utc(), 3))
    # 3 seconds of retention, swept every second.
    with dcslog_server_factory(retention_days=str(3 / 86400), sweep_interval="1") as server:
        imported = server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                          f"{redis_standalone.address}={log_file}")
        client = server.sdk()
        client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
        [item] = wait_settled(client, imported["instance_id"])
        link = client.create_redislog_download_link(
            CreateRedislogDownloadLinkRequest(instance_id=imported["instance_id"], id=item.id))
        assert httpx.get(link.link).status_code == 200
        listing = lambda: client.list_redislog(  # noqa: E731
            ListRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
        wait_for(lambda: listing().total_num in (None, 0), timeout=15, what="the file to leave the list")
        assert httpx.get(link.link).status_code in (403, 404)
        files = server.settings.data_dir / "files"
        wait_for(lambda: not list(files.rglob("*.log")), timeout=15, what="the sweep to delete the bytes")
        with sqlite3.connect(server.settings.data_dir / "dcslog.db") as db:
            assert db.execute("SELECT count(*) FROM log_files").fetchone() == (0,)


@pytest.mark.parametrize("query_time,count", [(0, 1), (1, 1), (3, 3), (7, 7)])
def test_days_to_collect_counts(query_time, count):
    now = datetime(2026, 11, 27, 12, 0)
    days = days_to_collect(query_time, "UTC", now)
    assert len(days) == count and days[0] == date(2026, 11, 27)
    assert days == sorted(days, reverse=True)


def test_today_is_in_the_instance_time_zone():
    now = datetime(2026, 11, 27, 20, 0)  # UTC
    assert days_to_collect(0, "UTC", now) == [date(2026, 11, 27)]
    assert days_to_collect(0, "Pacific/Kiritimati", now) == [date(2026, 11, 28)]  # UTC+14
    assert days_to_collect(0, "America/Los_Angeles", datetime(2026, 11, 28, 3, 0)) == [date(2026, 11, 27)]


def test_collecting_more_days_refreshes_some_and_adds_others(synthetic):
    client, instance_id = synthetic["client"], synthetic["instance_id"]
    base = dict(instance_id=instance_id, log_type="run", replication_id=synthetic["replication_id"])
    client.create_redislog(CreateRedislogRequest(query_time=1, **base))
    [first] = wait_settled(client, instance_id)
    client.create_redislog(CreateRedislogRequest(query_time=3, **base))
    files = wait_settled(client, instance_id)
    assert len(files) == 3 and len({f.backup_id for f in files}) == 1
    assert [f.id for f in files if f.time == first.time] == [first.id]


def test_racing_collection_requests_one_wins(dcslog_server_factory, redis_standalone):
    from concurrent.futures import ThreadPoolExecutor
    with dcslog_server_factory(run_worker=False) as server:
        imported = server.import_instance(redis_standalone.url)
        token = server.cli("token", "create", "--project-id", "proj-a")["token"]
        url = f"{server.url}/v2/proj-a/instances/{imported['instance_id']}/redislog"

        def post(_):
            response = httpx.post(url, params={"log_type": "run", "query_time": 7}, headers={"X-Auth-Token": token})
            return response.status_code, (response.json()["error_code"] if response.content else None)
        outcomes = []
        for _ in range(3):
            with ThreadPoolExecutor(4) as pool:
                outcomes += pool.map(post, range(4))
        # Twelve requests, four at a time: the first to commit wins, every other one is refused.
        assert outcomes.count((204, None)) == 1 and outcomes.count((400, "DCS.4017")) == 11
        listing = httpx.get(url, params={"log_type": "run", "limit": 100}, headers={"X-Auth-Token": token}).json()
        assert listing["total_num"] == 7 and len({f["backup_id"] for f in listing["file_list"]}) == 1


def test_links_point_where_the_client_reached_the_service(synthetic, dcslog_server, monkeypatch):
    """Without DCSLOG_PUBLIC_URL a link is built from the scheme and Host of the request for it
    (`serve --host 0.0.0.0` must not hand out http://0.0.0.0/…); with it, from the setting."""
    client, instance_id = synthetic["client"], synthetic["instance_id"]
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
    [item] = wait_settled(client, instance_id)
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a")["token"]
    url = f"{dcslog_server.url}/v2/proj-a/instances/{instance_id}/redislog/{item.id}/links"

    def link(host: str | None = None) -> str:
        headers = {"X-Auth-Token": token, **({"Host": host} if host else {})}
        return httpx.post(url, headers=headers).json()["link"]
    assert link().startswith(f"{dcslog_server.url}/downloads/")
    through_proxy = link("logs.example.net:8443")
    assert through_proxy.startswith("http://logs.example.net:8443/downloads/")
    # The same token, fetched where the service really listens, is the file.
    assert httpx.get(dcslog_server.url + "/downloads/" + through_proxy.rsplit("/", 1)[1]).content \
        == synthetic["expected"][today_utc()]
    dcslog_server.settings.public_url = "https://dcslog.example.com/"
    assert link().startswith("https://dcslog.example.com/downloads/")


def test_refresh_changes_the_time_zone(dcslog_server, redis_standalone, capsys):
    """The zone Redis logs in is a per-instance setting: fixable without a re-import (ids stay)."""
    from dcslog import cli

    imported = dcslog_server.import_instance(redis_standalone.url)
    refreshed = dcslog_server.cli("instances", "refresh", imported["instance_id"], "--timezone", "Asia/Tokyo")
    assert refreshed["timezone"] == "Asia/Tokyo" and refreshed["instance_id"] == imported["instance_id"]
    assert cli.main(["instances", "refresh", imported["instance_id"], "--timezone", "Mars/Olympus"]) != 0
    assert "Unknown time zone 'Mars/Olympus'" in capsys.readouterr().err
    assert dcslog_server.cli("instances", "show", imported["instance_id"])["timezone"] == "Asia/Tokyo"
