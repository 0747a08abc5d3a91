"""Every error path answers with the DCS envelope and the documented status and code."""

from __future__ import annotations

import json
import logging
import socket
from datetime import UTC, datetime

import httpx
import pytest

from dcslog.services import instances as instance_service
from dcslog.signing import sign_request

UNKNOWN_INSTANCE = "3f1d2c4e-0000-4000-8000-000000000000"


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    assert response.headers["x-request-id"]
    body = response.json()
    assert set(body) == {"error_code", "error_msg", "error_ext_msg"}
    assert body["error_code"] == code and body["error_msg"]
    # DCS's own words in error_msg; what would be accepted, when we can say it, in error_ext_msg.
    assert body["error_ext_msg"] is None or (isinstance(body["error_ext_msg"], str) and body["error_ext_msg"])
    if code == "DCS.4800" and body["error_msg"].startswith("Invalid "):
        name = body["error_msg"].removeprefix("Invalid ").removesuffix(" in the request.")
        assert body["error_msg"] == f"Invalid {name} in the request." and name in body["error_ext_msg"], body
    assert "Traceback" not in response.text
    return body


@pytest.fixture
def api(dcslog_server, redis_replicated):
    admin = dcslog_server.cli("token", "create", "--project-id", "proj-a")["token"]
    viewer = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
    instance = dcslog_server.import_instance(redis_replicated.primary.url)
    base = f"{dcslog_server.url}/v2/proj-a/instances/{instance['instance_id']}"

    def call(method, path, token=admin, headers=None, **kwargs):
        url = path if path.startswith("http") else base + path
        headers = {**({"X-Auth-Token": token} if token else {}), **(headers or {})}
        return httpx.request(method, url, headers=headers, **kwargs)
    call.base, call.root, call.viewer = base, dcslog_server.url, viewer
    return call


CASES = [
    # (name, method, path relative to the instance (or absolute under root), query, status, code)
    ("log_type missing", "POST", "/redislog", {}, 400, "DCS.4800"),
    ("log_type unknown", "GET", "/redislog", {"log_type": "slow"}, 400, "DCS.4800"),
    ("query_time not allowed", "POST", "/redislog", {"log_type": "run", "query_time": "2"}, 400, "DCS.4800"),
    ("query_time not a number", "POST", "/redislog", {"log_type": "run", "query_time": "x"}, 400, "DCS.4800"),
    ("replication_id missing on ha", "POST", "/redislog", {"log_type": "run"}, 400, "DCS.4800"),
    ("replication_id unknown", "POST", "/redislog", {"log_type": "run", "replication_id": "nope"}, 400, "DCS.4800"),
    ("offset negative", "GET", "/redislog", {"log_type": "run", "offset": "-1"}, 400, "DCS.4800"),
    ("limit zero", "GET", "/redislog", {"log_type": "run", "limit": "0"}, 400, "DCS.4800"),
    ("limit too big", "GET", "/redislog", {"log_type": "run", "limit": "1001"}, 400, "DCS.4800"),
    ("unknown file", "POST", "/redislog/nope/links", {}, 404, "DCS.4001"),
    ("tasks end before start", "GET", "/tasks", {"start_time": "20261127000000", "end_time": "20261126000000"},
     400, "DCS.4025"),
    ("tasks bad time", "GET", "/tasks", {"start_time": "yesterday"}, 400, "DCS.4800"),
    ("slowlog top unknown group_by", "GET", "/slowlog/top", {"group_by": "client"}, 400, "DCS.4800"),
    ("slowlog top end before start", "GET", "/slowlog/top", {"start_time": "2000", "end_time": "1999"}, 400,
     "DCS.4025"),
    ("tasks time of 12 digits", "GET", "/tasks", {"start_time": "202611270000"}, 400, "DCS.4800"),
    ("tasks time with a sign", "GET", "/tasks", {"start_time": "+2026112700000"}, 400, "DCS.4800"),
    ("instances bad limit", "GET", "ROOT/v2/proj-a/instances", {"limit": "abc"}, 400, "DCS.4800"),
    ("offset beyond int32", "GET", "/redislog", {"log_type": "run", "offset": "99999999999999999999"}, 400, "DCS.4800"),
    ("limit with underscore", "GET", "ROOT/v2/proj-a/instances", {"limit": "1_0"}, 400, "DCS.4800"),
    ("limit with plus", "GET", "ROOT/v2/proj-a/instances", {"limit": "+5"}, 400, "DCS.4800"),
    ("limit in arabic digits", "GET", "ROOT/v2/proj-a/instances", {"limit": "٥"}, 400, "DCS.4800"),
    ("non-ascii link mac", "GET", "ROOT/downloads/abc.%C3%A9", {}, 403, "DCS.2004"),
    ("bad project id", "GET", "ROOT/v2/proj!a/instances", {}, 400, "DCS.4002"),
    ("bad instance id", "GET", "ROOT/v2/proj-a/instances/not-a-uuid", {}, 400, "DCS.4061"),
    ("unknown instance", "GET", f"ROOT/v2/proj-a/instances/{UNKNOWN_INSTANCE}", {}, 404, "DCS.3022"),
    ("unknown instance groups", "GET", f"ROOT/v2/proj-a/instance/{UNKNOWN_INSTANCE}/groups", {}, 404, "DCS.3022"),
    ("another project in the path", "GET", "ROOT/v2/proj-b/instances", {}, 401, "DCS.1004"),
    ("unknown url", "GET", "ROOT/v2/proj-a/nothing-here", {}, 404, "DCS.4001"),
    ("unknown root url", "GET", "ROOT/", {}, 404, "DCS.4001"),
    ("method not allowed", "DELETE", "ROOT/v2/proj-a/instances", {}, 405, "DCS.4001"),
    ("method not allowed on redislog", "PUT", "/redislog", {}, 405, "DCS.4001"),
    ("bad download token", "GET", "ROOT/downloads/abc.def", {}, 403, "DCS.2004"),
]


@pytest.mark.parametrize("name,method,path,query,status,code", CASES, ids=[c[0] for c in CASES])
def test_error_paths(api, name, method, path, query, status, code):
    url = path.replace("ROOT", api.root) if path.startswith("ROOT") else path
    assert_envelope(api(method, url, params=query), status, code)


def test_refused_values_say_what_would_be_accepted(api):
    """DCS's error_msg stays exact; error_ext_msg says how to fix the request."""
    groups = api("GET", api.base.replace("/instances/", "/instance/") + "/groups").json()["group_list"]
    nodes = [n for g in groups for n in g["replication_list"]]
    assert len(nodes) == 3
    missing = assert_envelope(api("POST", "/redislog", params={"log_type": "run"}), 400, "DCS.4800")
    assert missing["error_msg"] == "Invalid replication_id in the request."
    assert "required" in missing["error_ext_msg"]
    for node in nodes:  # every node, so that the user can pick one
        assert f"{node['replication_id']} ({node['replication_ip']}:" in missing["error_ext_msg"]
    unknown = assert_envelope(api("POST", "/redislog", params={"log_type": "run", "replication_id": "nope"}),
                              400, "DCS.4800")
    assert all(node["replication_id"] in unknown["error_ext_msg"] for node in nodes)
    query_time = assert_envelope(api("POST", "/redislog", params={"log_type": "run", "query_time": "2"}),
                                 400, "DCS.4800")
    assert query_time["error_msg"] == "Invalid query_time in the request."
    assert query_time["error_ext_msg"] == "query_time must be one of 0, 1, 3, 7."
    limit = assert_envelope(api("GET", "/redislog", params={"log_type": "run", "limit": "0"}), 400, "DCS.4800")
    assert limit["error_ext_msg"] == "limit must be an integer from 1 to 1000."
    log_type = assert_envelope(api("GET", "/redislog"), 400, "DCS.4800")
    assert log_type["error_ext_msg"] == "log_type is required: one of run."


def test_method_not_allowed_names_the_allowed_methods(api):
    response = api("DELETE", f"{api.root}/v2/proj-a/instances")
    assert_envelope(response, 405, "DCS.4001")
    assert "GET" in [method.strip() for method in response.headers["Allow"].split(",")]


def test_no_credentials(api):
    assert_envelope(api("GET", "", token=None), 401, "DCS.1003")


def test_bad_token(api):
    assert_envelope(api("GET", "", token="dcslog-nope"), 401, "DCS.1001")


def test_bad_signature_header(api):
    response = httpx.get(api.base, headers={"Authorization": "SDK-HMAC-SHA256 garbage"})
    assert_envelope(response, 401, "DCS.1001")


def test_non_ascii_signature(api):
    auth = "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=\u00e9abc"
    date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    response = httpx.get(api.base, headers={"Authorization": auth.encode("utf-8"), "X-Sdk-Date": date})
    assert_envelope(response, 401, "DCS.1001")


# Found by tests/test_fuzz.py: header bytes that are not UTF-8 (Latin-1, what requests sends) reached the
# token hash and the signer as lone surrogates and failed with 500.
def test_latin1_token(api):
    assert_envelope(api("GET", "", token=b"dcslog-\xe9\xff"), 401, "DCS.1001")


def test_latin1_access_key(api):
    date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    auth = b"SDK-HMAC-SHA256 Access=\xe9, SignedHeaders=host;x-sdk-date, Signature=abc"
    assert_envelope(httpx.get(api.base, headers={"Authorization": auth, "X-Sdk-Date": date}), 401, "DCS.1001")


def test_latin1_signed_header(api):
    date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    auth = "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-foo;x-sdk-date, Signature=abc"
    response = httpx.get(api.base, headers={"Authorization": auth, "X-Foo": b"\xe9", "X-Sdk-Date": date})
    assert_envelope(response, 401, "DCS.1001")


def test_signed_latin1_header_verifies(dcslog_server):
    """What requests (and so the SDK) sends for a header value it signed as text: its Latin-1 bytes."""
    credential = dcslog_server.credentials()
    url = f"{dcslog_server.url}/v2/proj-a/instances"
    headers = sign_request(credential["access_key"], credential["secret_key"], "GET", url, {"X-Note": "caf\u00e9"})
    headers["X-Note"] = "caf\u00e9".encode("latin-1")
    assert httpx.get(url, headers=headers).status_code == 200


def test_role_forbidden(api):
    response = api("POST", "/redislog", token=api.viewer, params={"log_type": "run"})
    assert_envelope(response, 403, "DCS.2003")


def test_body_too_large(api):
    response = api("POST", "/redislog", params={"log_type": "run"}, content=b"x" * (1 << 20))
    assert_envelope(response, 413, "DCS.4800")


def test_unexpected_error_is_500_without_details(api, monkeypatch, caplog):
    async def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")
    monkeypatch.setattr(instance_service, "instance_view", broken)
    with caplog.at_level(logging.ERROR, logger="dcslog"):
        response = api("GET", "")
    body = assert_envelope(response, 500, "DCS.5000")
    assert "secret internal detail" not in response.text and body["error_msg"] == "Internal server error."
    assert response.headers["x-request-id"] in caplog.text


def test_request_id_on_success(api):
    response = api("GET", "/redislog", params={"log_type": "run"})
    assert response.status_code == 204 and response.headers["x-request-id"]


def test_health(api):
    response = httpx.get(api.root + "/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_oversized_url_and_headers_get_the_envelope(api):
    long_query = {"log_type": "run", "pad": "x" * 9000}
    assert_envelope(api("GET", "/redislog", params=long_query), 414, "DCS.4800")
    big_headers = {f"X-Pad-{i}": "y" * 1000 for i in range(20)}
    assert_envelope(api("GET", "/redislog", params={"log_type": "run"}, headers=big_headers), 431, "DCS.4800")


def raw_exchange(url: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes no HTTP client would, read until the server closes: (status, headers, body)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


MALFORMED = {
    "not HTTP": b"GARBAGE\r\n\r\n",
    "bad Content-Length": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "bad chunk size": b"POST /v2/p/instances HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
    "space in a header name": b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    "control byte in the path": b"GET /he\x01alth HTTP/1.1\r\nHost: x\r\n\r\n",
    "request line over 64 KiB": b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header over 64 KiB": b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_what_the_http_parser_rejects_gets_the_envelope(dcslog_server, data, caplog):
    """aiohttp answers these itself, before any middleware, in plain text; DcsRequestHandler
    answers them in the envelope, echoes none of the client's bytes, and closes the connection
    (``raw_exchange`` reads until it is closed)."""
    with caplog.at_level(logging.INFO, logger="dcslog"):
        status, headers, body = raw_exchange(dcslog_server.url, data)
    assert status == 400
    assert headers["content-type"] == "application/json;charset=UTF-8" and headers["x-request-id"]
    envelope = json.loads(body)
    assert set(envelope) == {"error_code", "error_msg", "error_ext_msg"} and envelope["error_code"] == "DCS.4800"
    assert envelope["error_msg"].startswith("Malformed HTTP request: ") and len(envelope["error_msg"]) < 300
    assert b"aaaa" not in body and b"bbbb" not in body and b"GARBAGE" not in body
    assert any(headers["x-request-id"] in r.getMessage() for r in caplog.records)  # logged, findable by its id
    # a client's fault, not ours (the access log too)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert httpx.get(dcslog_server.url + "/health").status_code == 200  # and the server goes on


@pytest.mark.parametrize("path", [
    "ROOT/v2/proj-a/instances/..%2F..%2Fetc%2Fpasswd",
    "ROOT/v2/proj-a/instances/%2e%2e/redislog",
    "ROOT/v2/proj-a%2Finstances/instances",
    "ROOT/downloads/..%2F..%2Fdcslog.db",
    "ROOT/downloads/%2e%2e",
    "ROOT/console/static/..%2F..%2F..%2Fkeys.py",
])
def test_traversal_and_encoded_slashes_are_refused_in_the_envelope(api, path):
    response = api("GET", path.replace("ROOT", api.root))
    assert 400 <= response.status_code < 500
    assert set(response.json()) == {"error_code", "error_msg", "error_ext_msg"}
    assert b"root:" not in response.content and b"SQLite" not in response.content


def test_deleted_credential_no_longer_works(dcslog_server):
    credential = dcslog_server.credentials()
    client = dcslog_server.sdk(credential=credential)
    from huaweicloudsdkdcs.v2 import ListInstancesRequest
    client.list_instances(ListInstancesRequest())
    dcslog_server.cli("credentials", "delete", credential["access_key"])
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
    with pytest.raises(ClientRequestException) as caught:
        client.list_instances(ListInstancesRequest())
    assert (caught.value.status_code, caught.value.error_code) == (401, "DCS.1001")
