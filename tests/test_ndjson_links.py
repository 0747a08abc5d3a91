"""Records links (SPEC §6): ``POST …/links?format=ndjson`` makes a link whose signature covers the
format, and that link downloads the collected file as records, one JSON object a line.

Every expected record is computed by tests/records_reference.py (a brute-force reading written
without dcslog's code) over the bytes the file's raw link downloads, never copied from dcslog's
records output. Real redis-server, the real server, the S3 store through moto_server.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from huaweicloudsdkdcs.v2 import CreateRedislogDownloadLinkRequest, CreateRedislogRequest

from dcslog.keys import Keyring
from tests.records_reference import RECORD_FIELDS, api_record, reference_records, rotate_files, write_multiday_log
from tests.test_client_cli import configure_client, run, run_json
from tests.test_redislog import day_lines, today_utc, wait_settled

NDJSON = "application/x-ndjson"
KOLKATA = ZoneInfo("Asia/Kolkata")  # +05:30: a time shown with the wrong offset shows


# --- expected answers (from the reference) -------------------------------------------------------


def expected_records(raw: bytes, node: dict, tz: tzinfo) -> list[dict]:
    """What a records link should answer for a file holding ``raw``: every entry, in the file's order."""
    return [api_record(ref, node["replication_id"], node, tz) for ref in reference_records(raw, tz)]


def ndjson(body: bytes) -> list[dict]:
    """An NDJSON body as records: every line one JSON object, each ending in b"\\n"."""
    assert body == b"" or body.endswith(b"\n"), body[-80:]
    records = [json.loads(line) for line in body.split(b"\n")[:-1]]
    for record in records:
        assert set(record) == RECORD_FIELDS, sorted(record)
    return records


def assert_same(got: list[dict], want: list[dict]) -> None:
    """Equal lists of records, with a readable first difference."""
    if got != want:
        first = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w), min(len(got), len(want)))
        detail = (got[first], want[first]) if first < min(len(got), len(want)) else None
        raise AssertionError(f"{len(got)} records, {len(want)} expected; first difference at {first}: {detail}")


def envelope_403(response: httpx.Response, what: str) -> None:
    assert response.status_code == 403, (what, response.status_code, response.text[:200])
    assert response.headers["content-type"] == "application/json;charset=UTF-8", what
    assert response.json() == {"error_code": "DCS.2004", "error_msg": "The download link is invalid or has expired.",
                               "error_ext_msg": None}, what


# --- an instance whose node logged two days (in Kolkata), rotated --------------------------------------------


class Links:
    """POST …/links of one instance, with a viewer's token (a viewer may make links)."""

    def __init__(self, server, instance_id: str):
        self.token = server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
        self.base = f"{server.url}/v2/proj-a/instances/{instance_id}/redislog"

    def post(self, file_id: str, **params: str) -> httpx.Response:
        return httpx.post(f"{self.base}/{file_id}/links", params=params, headers={"X-Auth-Token": self.token})

    def link(self, file_id: str, **params: str) -> dict:
        response = self.post(file_id, **params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def kolkata(dcslog_server, redis_standalone, tmp_path):
    """Yesterday and today (in Asia/Kolkata) of a synthetic log — mixed formats, crash reports with
    continuation lines, bursts of entries in one millisecond, non-ASCII — rotated into a .gz and the
    live file, collected with query_time=3 (the day before yesterday: an empty file)."""
    today = datetime.now(KOLKATA).date()
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    log = log_dir / "redis.log"
    write_multiday_log(log, days=[today - timedelta(days=1), today], tz=KOLKATA, entries_per_day=300, seed=7,
                       crash_every=37, formats=("legacy", "logfmt-ms", "legacy-iso8601", "legacy-ms"))
    rotate_files(log, 1, seed=7)
    imported = dcslog_server.import_instance(redis_standalone.url, "proj-a", "kolkata", "--timezone", "Asia/Kolkata",
                                             "--log-file", f"{redis_standalone.address}={log}")
    group = imported["group_list"][0]
    rep = group["replication_list"][0]
    node = {"replication_id": rep["replication_id"], "replication_ip": rep["replication_ip"],
            "replication_port": rep["replication_port"], "group_name": group["group_name"]}
    instance_id = imported["instance_id"]
    client = dcslog_server.sdk(role="operator")
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run", query_time=3,
                                                 replication_id=node["replication_id"]))
    files = wait_settled(client, instance_id)
    assert [f.status for f in files] == ["succeed"] * 3, files
    return {"server": dcslog_server, "instance_id": instance_id, "node": node, "files": files, "today": today,
            "log": log, "client": client, "links": Links(dcslog_server, instance_id)}


def test_a_records_link_downloads_the_file_as_its_records(kolkata):
    links, node = kolkata["links"], kolkata["node"]
    server_url = kolkata["server"].url
    counts = {}
    for item in kolkata["files"]:
        raw = links.link(item.id)
        assert urlsplit(raw["link"]).query == ""  # without format: DCS's link, as the SDK gets it
        content = httpx.get(raw["link"]).content
        made = links.link(item.id, format="ndjson")
        assert made["id"] == item.id and made["backup_id"] == item.backup_id
        parts = urlsplit(made["link"])
        assert made["link"].startswith(f"{server_url}/downloads/") and parts.query == "format=ndjson"
        assert "/" not in parts.path.removeprefix("/downloads/")  # the same /downloads/{token} shape
        # Valid as long as a raw link made now (both: DCSLOG_LINK_TTL, within the file's retention).
        expires = [datetime.strptime(m["expires_at"], "%Y-%m-%dT%H:%M:%SZ") for m in (raw, made)]
        assert abs(expires[0] - expires[1]) <= timedelta(seconds=2)

        response = httpx.get(made["link"])  # no credentials: the link is its own authority
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/x-ndjson; charset=UTF-8"
        assert response.headers["content-disposition"] == \
            f'attachment; filename="redis_{item.replication_ip}_{item.time}.ndjson"'
        assert response.headers["accept-ranges"] == "none"
        assert response.headers["cache-control"] == "private, no-store"
        assert response.headers["x-request-id"]
        for validator in ("etag", "last-modified", "content-range"):
            assert validator not in response.headers, validator
        got = ndjson(response.content)
        want = expected_records(content, node, KOLKATA)
        assert_same(got, want)
        counts[item.time] = len(got)
        if got:  # the ids are the records endpoint's: {time_ms}_{seq}_{replication_id}, and seq counts bursts
            assert any(r["id"].split("_")[1] != "0" for r in got)
            assert any(r["lines"] for r in got) and {r["format"] for r in got} >= {"legacy", "logfmt"}
            assert got[0]["time"].endswith("+05:30")
    today = kolkata["today"]
    assert counts == {today.isoformat(): 300, (today - timedelta(days=1)).isoformat(): 300,
                      (today - timedelta(days=2)).isoformat(): 0}


def test_the_cli_makes_either_link(kolkata, monkeypatch, tmp_path, capsys):
    """`dcslog logs link ID --format ndjson` (AK/SK-signed, the query under the signature) makes the
    records link; without it, DCS's raw link, as before."""
    configure_client(kolkata["server"], monkeypatch, tmp_path)
    item = next(f for f in kolkata["files"] if f.time == kolkata["today"].isoformat())
    raw = run_json(capsys, "logs", "link", "--instance", kolkata["instance_id"], item.id)
    made = run_json(capsys, "logs", "link", "--instance", kolkata["instance_id"], item.id, "--format", "ndjson")
    assert urlsplit(raw["link"]).query == "" and urlsplit(made["link"]).query == "format=ndjson"
    content = httpx.get(raw["link"]).content
    assert_same(ndjson(httpx.get(made["link"]).content), expected_records(content, kolkata["node"], KOLKATA))
    with pytest.raises(SystemExit) as usage:
        run(capsys, "logs", "link", "--instance", kolkata["instance_id"], item.id, "--format", "csv")
    assert usage.value.code == 2 and "--format" in capsys.readouterr().err


def test_head_range_and_conditions_on_a_records_link(kolkata):
    links = kolkata["links"]
    [item] = [f for f in kolkata["files"] if f.time == kolkata["today"].isoformat()]
    link = links.link(item.id, format="ndjson")["link"]
    whole = httpx.get(link)
    assert whole.status_code == 200 and len(ndjson(whole.content)) == 300

    head = httpx.head(link)
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "content-disposition", "accept-ranges", "cache-control"):
        assert head.headers[name] == whole.headers[name], name
    assert "transfer-encoding" not in head.headers and "etag" not in head.headers

    # The body is converted as it is sent: no ranges, no validators, so the whole body, 200.
    for headers in ({"Range": "bytes=0-9"}, {"Range": "bytes=0-9", "If-Range": '"x"'},
                    {"If-None-Match": '"x"'}, {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"},
                    {"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}, {"If-Match": "*"}):
        response = httpx.get(link, headers=headers)
        assert response.status_code == 200 and response.content == whole.content, headers
        assert "content-range" not in response.headers
    # RFC 9110 §13.1: no current representation has an entity tag, and "*" names any.
    failed = httpx.get(link, headers={"If-Match": httpx.head(links.link(item.id)["link"]).headers["etag"]})
    assert failed.status_code == 412 and failed.json()["error_code"] == "DCS.4800"
    not_modified = httpx.get(link, headers={"If-None-Match": "*"})
    assert not_modified.status_code == 304 and not_modified.content == b""
    # HTTP/1.0 has no chunks: the body runs to the close.
    parts = urlsplit(link)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(f"GET {parts.path}?{parts.query} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.0 200") and b"chunked" not in head_bytes.lower(), head_bytes
    assert body == whole.content


def test_the_format_is_under_the_signature(kolkata):
    """A raw link asked as records, a records link asked raw (query removed or changed), or a
    token whose payload says another format than it was signed with: 403, as a forged link."""
    links = kolkata["links"]
    [item] = [f for f in kolkata["files"] if f.time == kolkata["today"].isoformat()]
    raw = links.link(item.id)["link"]
    records = links.link(item.id, format="ndjson")["link"]
    base, token = records.split("?")[0].rsplit("/", 1)
    raw_token = raw.rsplit("/", 1)[1]
    assert token != raw_token

    envelope_403(httpx.get(raw + "?format=ndjson"), "a raw link asked as records")
    envelope_403(httpx.get(raw, params={"x": "1", "format": "ndjson"}), "a raw link asked as records, more query")
    envelope_403(httpx.get(f"{base}/{token}"), "a records link without its query")
    envelope_403(httpx.get(f"{base}/{token}?format=raw"), "a records link asked raw")
    for query in ("format=NDJSON", "format=json", "format=", "format=ndjson&format=ndjson", "format=raw&format=ndjson",
                  "format=ndjson%00"):
        envelope_403(httpx.get(f"{base}/{token}?{query}"), query)
        envelope_403(httpx.get(f"{raw}?{query}"), query)
    assert httpx.head(f"{base}/{token}").status_code == 403

    # The payload's format is covered by the MAC: dropping it, or adding it, breaks the link.
    def reencode(claims: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()

    def claims_of(t: str) -> dict:
        payload = t.split(".")[0]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    signed = claims_of(token)
    assert signed == {"f": item.id, "e": signed["e"], "t": "ndjson", "i": signed["i"]}  # "i": its link id (§8)
    assert set(claims_of(raw_token)) == {"f", "e", "i"}  # a raw link's payload has no format (as before formats)
    mac, raw_mac = token.split(".")[1], raw_token.split(".")[1]
    unformatted = reencode({"f": item.id, "e": signed["e"]})
    envelope_403(httpx.get(f"{base}/{unformatted}.{mac}"), "the format dropped from the payload")
    envelope_403(httpx.get(f"{base}/{unformatted}.{mac}?format=ndjson"), "the format dropped, query kept")
    formatted = reencode({**claims_of(raw_token), "t": "ndjson"})
    envelope_403(httpx.get(f"{base}/{formatted}.{raw_mac}?format=ndjson"), "a format added to a raw payload")
    envelope_403(httpx.get(f"{base}/{token[:-1]}{'A' if token[-1] != 'A' else 'B'}?format=ndjson"), "a changed MAC")

    # What the links were made for still works, and format=raw is what a raw link is anyway.
    assert httpx.get(records).status_code == 200
    assert httpx.get(raw).content == httpx.get(raw + "?format=raw").content


def test_a_bad_format_when_making_a_link_is_400(kolkata):
    links = kolkata["links"]
    item = kolkata["files"][0]
    for value in ("json", "NDJSON", "ndjson,raw"):
        response = links.post(item.id, format=value)
        body = response.json()
        assert (response.status_code, body["error_code"], body["error_msg"]) == \
            (400, "DCS.4800", "Invalid format in the request."), value
        assert body["error_ext_msg"] == "format must be one of raw, ndjson."
    # Empty is absent (as every parameter): a raw link.
    assert urlsplit(links.link(item.id, format="")["link"]).query == ""
    assert urlsplit(links.link(item.id, format="raw")["link"]).query == ""
    # The official SDK never sends format: its links are raw.
    sdk_link = kolkata["client"].create_redislog_download_link(
        CreateRedislogDownloadLinkRequest(instance_id=kolkata["instance_id"], id=item.id)).link
    assert urlsplit(sdk_link).query == ""


def test_a_records_link_names_the_file_not_a_version(kolkata):
    """As a raw dcslog link: after a refresh, the link serves the new content's records."""
    links, node, client, instance_id = kolkata["links"], kolkata["node"], kolkata["client"], kolkata["instance_id"]
    today = kolkata["today"]
    [item] = [f for f in kolkata["files"] if f.time == today.isoformat()]
    link = links.link(item.id, format="ndjson")["link"]
    before = ndjson(httpx.get(link).content)
    last = datetime(today.year, today.month, today.day, 23, 59, 59, 999000)  # after every entry of the day
    with open(kolkata["log"], "ab") as f:
        f.write(f"4242:M {last:%d %b %Y %H:%M:%S}.999 # appended after the first collection: é\n".encode())
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run",
                                                 replication_id=node["replication_id"]))
    [refreshed] = [f for f in wait_settled(client, instance_id) if f.id == item.id]
    assert refreshed.status == "succeed" and refreshed.backup_id != item.backup_id
    after = ndjson(httpx.get(link).content)
    assert after[:-1] == before
    assert (after[-1]["message"], after[-1]["level"]) == ("appended after the first collection: é", "warning")
    assert_same(after, expected_records(httpx.get(links.link(item.id)["link"]).content, node, KOLKATA))


def test_an_expired_records_link_is_refused(dcslog_server_factory, redis_standalone, tmp_path):
    log_file = tmp_path / "r.log"
    log_file.write_bytes(day_lines(today_utc(), 3))
    # Expiry is whole seconds (a link made at x.9 with 3 s is good until x+3): at least 2 s to use it first.
    with dcslog_server_factory(link_ttl="3") as server:
        imported = server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                          f"{redis_standalone.address}={log_file}")
        client = server.sdk()
        client.create_redislog(CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run"))
        [item] = wait_settled(client, imported["instance_id"])
        links = Links(server, imported["instance_id"])
        made, raw = links.link(item.id, format="ndjson"), links.link(item.id)["link"]
        records = made["link"]
        assert len(ndjson(httpx.get(records).content)) == 3
        expires_at = datetime.strptime(made["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 1.2)
        envelope_403(httpx.get(records), "an expired records link")
        envelope_403(httpx.get(raw), "an expired raw link")
        assert httpx.head(records).status_code == 403


def test_on_s3_a_records_link_is_dcslogs_own(dcslog_server_factory, redis_standalone, s3_server, tmp_path,
                                             monkeypatch):
    """On an S3 store a raw link is the store's presigned URL; a records link goes through dcslog,
    which reads the object in ranges and converts it. It is not held to S3's 7-day presign limit."""
    for key, value in {"DCSLOG_OBJECT_STORE": s3_server.store_url(s3_server.create_bucket()),
                       "DCSLOG_S3_ACCESS_KEY_ID": "test", "DCSLOG_S3_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(key, value)
    log_file = tmp_path / "r.log"
    log_file.write_bytes(day_lines(today_utc(), 30) + b"  a continuation line\n")
    with dcslog_server_factory(link_ttl=str(30 * 86400), retention_days="10") as server:
        imported = server.import_instance(redis_standalone.url, "proj-a", "x", "--log-file",
                                          f"{redis_standalone.address}={log_file}")
        client = server.sdk()
        instance_id = imported["instance_id"]
        client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
        [item] = wait_settled(client, instance_id)
        group = imported["group_list"][0]
        rep = group["replication_list"][0]
        node = {"replication_id": rep["replication_id"], "replication_ip": rep["replication_ip"],
                "replication_port": rep["replication_port"], "group_name": group["group_name"]}
        links = Links(server, instance_id)
        raw = links.link(item.id)
        assert raw["link"].startswith(s3_server.endpoint)
        made = links.link(item.id, format="ndjson")
        assert made["link"].startswith(f"{server.url}/downloads/") and made["link"].endswith("?format=ndjson")
        # Past S3's 7 days (which caps the raw link), within the file's 10 days of retention.
        expires_at = datetime.strptime(made["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
        assert timedelta(days=9) < expires_at - datetime.utcnow() <= timedelta(days=10)
        content = httpx.get(raw["link"]).content
        assert content == log_file.read_bytes()
        response = httpx.get(made["link"])
        assert response.status_code == 200 and response.headers["content-type"].startswith(NDJSON)
        got = ndjson(response.content)
        assert len(got) == 30 and got[-1]["lines"] == ["  a continuation line"]
        assert_same(got, expected_records(content, node, UTC))
        assert httpx.head(made["link"]).status_code == 200
        # A dcslog raw link is no link on this store (its links are the store's): unchanged.
        token = made["link"].split("?")[0].rsplit("/", 1)[1]
        envelope_403(httpx.get(f"{server.url}/downloads/{token}"), "a records link asked raw, on S3")


# --- the token itself ---------------------------------------------------------------------------------------

KEY = b"dGVzdC1zZXJ2ZXIta2V5LW9mLTMyLWJ5dGVzLWxvbmc="
FILE = "0b7d2a64-5c1e-4f57-9d2a-3f1e8c0a9b11"
# Made by dcslog before links had formats (keys.py of e3eaf05): a raw link handed out then still works.
OLD_RAW_TOKEN = ("eyJmIjoiMGI3ZDJhNjQtNWMxZS00ZjU3LTlkMmEtM2YxZThjMGE5YjExIiwiZSI6MTkwMDAwMDAwMH0"
                 ".iHAXZhd2Tl9iZ7gqLPVv6vDD9p9SjFqa5Msp82Y7cVM")


def test_raw_tokens_are_what_they_were_and_formats_do_not_cross():
    keyring = Keyring(KEY)
    assert keyring.sign_link(FILE, 1_900_000_000) == OLD_RAW_TOKEN
    assert keyring.sign_link(FILE, 1_900_000_000, "raw") == OLD_RAW_TOKEN
    assert keyring.verify_link(OLD_RAW_TOKEN, now=1_800_000_000) == FILE
    assert keyring.verify_link(OLD_RAW_TOKEN, now=1_800_000_000, link_format="raw") == FILE
    assert keyring.verify_link(OLD_RAW_TOKEN, now=1_800_000_000, link_format="ndjson") is None
    records = keyring.sign_link(FILE, 1_900_000_000, "ndjson")
    assert records != OLD_RAW_TOKEN
    assert keyring.verify_link(records, now=1_800_000_000, link_format="ndjson") == FILE
    assert keyring.verify_link(records, now=1_800_000_000) is None
    assert keyring.verify_link(records, now=1_900_000_000, link_format="ndjson") is None  # expired
    assert Keyring(b"b3RoZXIta2V5LW9mLTMyLWJ5dGVzLWxvbmctLS0tLS0=").verify_link(
        records, now=1_800_000_000, link_format="ndjson") is None  # another server key

