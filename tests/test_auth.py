"""AK/SK signatures and tokens: what the SDK signs verifies; anything changed does not."""

from __future__ import annotations

import hashlib
import urllib.parse
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkdcs.v2 import CreateRedislogRequest, ListInstancesRequest, ShowInstanceRequest

from dcslog import errors
from dcslog.signing import SignedRequest, canonical_query, canonical_uri, verify_signature


def sdk_signed(credential: dict, method: str, url: str, path: str, query: list[tuple[str, str]] | None = None,
               body: bytes = b"", date: datetime | None = None, extra_headers: dict | None = None) -> dict:
    """Headers the official SDK signer produces for this request."""
    host = url.split("://", 1)[1]
    headers = {"Content-Type": "application/json", "X-Project-Id": credential["project_id"], **(extra_headers or {})}
    if date is not None:
        headers["X-Sdk-Date"] = date.strftime("%Y%m%dT%H%M%SZ")
    request = SdkRequest(method=method, schema="http", host=host, resource_path=path, query_params=query or [],
                         header_params=headers, body=body)
    Signer(BasicCredentials(credential["access_key"], credential["secret_key"], credential["project_id"])).sign(request)
    return dict(request.header_params)


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error_code", "error_msg", "error_ext_msg"}, body
    return response.status_code, body["error_code"]


@pytest.fixture
def signed(dcslog_server):
    credential = dcslog_server.credentials("proj-a", "admin")

    def call(method="GET", path="/v2/proj-a/instances", query=None, send_query=None, send_path=None, body=b"",
             send_body=None, date=None, credential_=None, headers_update=None):
        cred = credential_ or credential
        headers = sdk_signed(cred, method, dcslog_server.url, path, query, body, date)
        headers.update(headers_update or {})
        q = send_query if send_query is not None else query
        return httpx.request(method, dcslog_server.url + (send_path or path), params=q, headers=headers,
                             content=send_body if send_body is not None else body)
    return call


def test_sdk_signature_is_accepted(signed):
    assert signed().status_code == 200
    assert signed(query=[("limit", "5"), ("name", "a b/ü~")]).status_code == 200


def test_wrong_secret_key(dcslog_server, signed):
    credential = dcslog_server.credentials("proj-a", "admin")
    forged = {**credential, "secret_key": credential["secret_key"] + "x"}
    assert error_of(signed(credential_=forged)) == (401, "DCS.1001")


def test_unknown_access_key(signed):
    forged = {"access_key": "NOSUCHKEY", "secret_key": "whatever", "project_id": "proj-a"}
    assert error_of(signed(credential_=forged)) == (401, "DCS.1001")


@pytest.mark.parametrize("minutes", [16, -16])
def test_stale_or_future_sdk_date(signed, minutes):
    date = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=minutes)
    assert error_of(signed(date=date)) == (401, "DCS.1002")


def test_date_within_window_is_accepted(signed):
    date = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=14)
    assert signed(date=date).status_code == 200


def test_tampered_query(signed):
    assert error_of(signed(query=[("limit", "5")], send_query=[("limit", "6")])) == (401, "DCS.1001")


def test_tampered_path(dcslog_server, signed):
    other = dcslog_server.credentials("proj-b", "admin")
    # Signed for proj-a's list, sent to proj-b's path by proj-b's key holder? No: the path is the one changed.
    response = signed(path="/v2/proj-a/instances", send_path="/v2/proj-b/instances")
    assert error_of(response) == (401, "DCS.1001")
    assert other  # proj-b exists, the signature alone decides


def test_tampered_body(signed):
    # Authentication comes before the instance lookup, so any instance id will do.
    path = "/v2/proj-a/instances/3f1d2c4e-0000-4000-8000-000000000000/redislog"
    response = signed(method="POST", path=path, query=[("log_type", "run")], body=b'{"a":1}', send_body=b'{"a":2}')
    assert error_of(response) == (401, "DCS.1001")
    untampered = signed(method="POST", path=path, query=[("log_type", "run")], body=b'{"a":1}')
    assert error_of(untampered) == (404, "DCS.3022")


def test_signed_headers_must_include_host(signed, dcslog_server):
    credential = dcslog_server.credentials("proj-a", "admin")
    headers = sdk_signed(credential, "GET", dcslog_server.url, "/v2/proj-a/instances")
    auth = headers["Authorization"].replace("SignedHeaders=content-type;host;", "SignedHeaders=content-type;")
    headers["Authorization"] = auth
    response = httpx.get(dcslog_server.url + "/v2/proj-a/instances", headers=headers)
    assert error_of(response) == (401, "DCS.1001")


def test_tampered_signed_header(signed):
    assert error_of(signed(headers_update={"X-Project-Id": "other"})) == (401, "DCS.1001")


def test_no_credentials(dcslog_server):
    assert error_of(httpx.get(dcslog_server.url + "/v2/proj-a/instances")) == (401, "DCS.1003")


def test_another_projects_key(dcslog_server):
    credential = dcslog_server.credentials("proj-b", "admin")
    headers = sdk_signed(credential, "GET", dcslog_server.url, "/v2/proj-a/instances")
    response = httpx.get(dcslog_server.url + "/v2/proj-a/instances", headers=headers)
    assert error_of(response) == (401, "DCS.1004")


def test_another_projects_instance_is_not_found(dcslog_server, redis_standalone):
    imported = dcslog_server.import_instance(redis_standalone.url, "proj-a")
    client_b = dcslog_server.sdk("proj-b")
    with pytest.raises(ClientRequestException) as caught:
        client_b.show_instance(ShowInstanceRequest(instance_id=imported["instance_id"]))
    assert (caught.value.status_code, caught.value.error_code) == (404, "DCS.3022")
    assert client_b.list_instances(ListInstancesRequest()).instance_num == 0


def test_tokens(dcslog_server):
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")
    assert token["project_id"] == "proj-a" and token["expires_at"].endswith("Z")
    url = dcslog_server.url + "/v2/proj-a/instances"
    assert httpx.get(url, headers={"X-Auth-Token": token["token"]}).status_code == 200
    assert error_of(httpx.get(url, headers={"X-Auth-Token": token["token"] + "x"})) == (401, "DCS.1001")
    other = dcslog_server.url + "/v2/proj-b/instances"
    assert error_of(httpx.get(other, headers={"X-Auth-Token": token["token"]})) == (401, "DCS.1004")


def test_expired_token(dcslog_server):
    dcslog_server.monkeypatch.setenv("DCSLOG_TOKEN_TTL", "1")
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a")
    import time
    time.sleep(1.1)
    response = httpx.get(dcslog_server.url + "/v2/proj-a/instances", headers={"X-Auth-Token": token["token"]})
    assert error_of(response) == (401, "DCS.1002")


def test_tokens_are_stored_hashed(dcslog_server):
    import sqlite3
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a")
    credential = dcslog_server.credentials()
    db = sqlite3.connect(dcslog_server.settings.data_dir / "dcslog.db")
    dump = "\n".join(db.iterdump())
    assert token["token"] not in dump
    assert hashlib.sha256(token["token"].encode()).hexdigest() in dump
    assert credential["secret_key"] not in dump
    key_file = dcslog_server.settings.data_dir / "server.key"
    assert key_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("role,can_collect", [("viewer", False), ("operator", True), ("admin", True)])
def test_roles(dcslog_server, redis_standalone, role, can_collect):
    imported = dcslog_server.import_instance(redis_standalone.url)
    client = dcslog_server.sdk(role=role)
    assert client.show_instance(ShowInstanceRequest(instance_id=imported["instance_id"])).name == "cache"
    request = CreateRedislogRequest(instance_id=imported["instance_id"], log_type="run", query_time=0)
    if can_collect:
        client.create_redislog(request)
    else:
        with pytest.raises(ClientRequestException) as caught:
            client.create_redislog(request)
        assert (caught.value.status_code, caught.value.error_code) == (403, "DCS.2003")


def test_canonical_forms_match_the_sdk():
    request = SdkRequest(method="GET", resource_path="/v2/p/a b/ü", query_params=[("b", "2"), ("a", "x y"), ("a", "1")])
    signer = Signer(BasicCredentials("ak", "sk", "p"))
    assert canonical_uri("/v2/p/a%20b/%C3%BC") == signer._process_canonical_uri(request)
    assert canonical_query("b=2&a=x%20y&a=1") == Signer._process_canonical_query_string(request)


@pytest.mark.parametrize("path", ["/v2/p/instances/3f0b2a8e-1111-2222-3333-444455556666/redislog/x/links",
                                  "/v2/p/instances/", "/", "/v2/a.b_c~d-e", "/v2/p/a%7Eb", "/v2/p/a%2Fb"])
def test_plain_paths_skip_only_a_no_op(path):
    # The fast path (no unquote/quote) must give what the SDK's signer gives.
    request = SdkRequest(method="GET", resource_path=urllib.parse.unquote(path))
    assert canonical_uri(path) == Signer(BasicCredentials("ak", "sk", "p"))._process_canonical_uri(request)


@pytest.mark.parametrize("sdk_date", ["2026-11-27T10:00:00Z", "20261127T100000", "20261327T100000Z",
                                      "20261127T250000Z", "２０２６1127T100000Z", "20261127T100000Z ", ""])
def test_malformed_sdk_date(sdk_date):
    headers = {"host": "h", "x-sdk-date": sdk_date}
    request = SignedRequest("GET", "/v2/p/instances", "", headers, b"")
    with pytest.raises(errors.Unauthorized, match="Malformed X-Sdk-Date"):
        verify_signature(request, (["host", "x-sdk-date"], "0" * 64), "sk", 900)


def test_our_client_signer_verifies_here(dcslog_server):
    from dcslog.signing import sign_request
    credential = dcslog_server.credentials("proj-a", "viewer")
    url = dcslog_server.url + "/v2/proj-a/instances?limit=5&name=a%20b"
    headers = sign_request(credential["access_key"], credential["secret_key"], "GET", url,
                           {"Content-Type": "application/json"})
    assert httpx.get(url, headers=headers).status_code == 200
    tampered = dcslog_server.url + "/v2/proj-a/instances?limit=6&name=a%20b"
    assert error_of(httpx.get(tampered, headers=headers)) == (401, "DCS.1001")


def test_our_client_signer_matches_the_sdk():
    from dcslog.signing import sign_request
    date = datetime(2026, 11, 27, 12, 0, 0)
    credential = {"access_key": "AK", "secret_key": "SK", "project_id": "p"}
    ours = sign_request("AK", "SK", "POST", "http://h:1/v2/p/instances/x/redislog?log_type=run&query_time=3",
                        {"Content-Type": "application/json", "X-Project-Id": "p"}, now=date)
    theirs = sdk_signed(credential, "POST", "http://h:1", "/v2/p/instances/x/redislog",
                        [("query_time", 3), ("log_type", "run")], date=date)
    assert ours["Authorization"] == theirs["Authorization"]
