"""The base of a download link: DCSLOG_PUBLIC_URL, or a Host that is a valid host[:port] — never
whatever a client put in the header (the link carries a bearer token to wherever it points), and
never a scheme taken from a header."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import httpx
import pytest
from huaweicloudsdkdcs.v2 import CreateRedislogRequest, ListRedislogRequest

from dcslog.testing.waiting import wait_for


@pytest.fixture
def link_request(dcslog_server, redis_standalone):
    """``post(headers, host=…)`` → (status, body) of POST …/links for a collected file, with the Host
    header exactly as given (None: no Host header at all)."""
    instance_id = dcslog_server.import_instance(redis_standalone.url)["instance_id"]
    client = dcslog_server.sdk(role="operator")
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))

    def settled():
        [item] = client.list_redislog(ListRedislogRequest(instance_id=instance_id, log_type="run")).file_list
        return item if item.status != "creating" else None
    item = wait_for(settled, what="the collection")
    assert item.status == "succeed"
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
    address = urlsplit(dcslog_server.url)
    path = f"/v2/proj-a/instances/{instance_id}/redislog/{item.id}/links"

    def post(host: str | None, **headers: str) -> tuple[int, dict]:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        try:
            connection.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
            if host is not None:
                connection.putheader("Host", host)
            for name, value in {"X-Auth-Token": token, "Content-Length": "0", **headers}.items():
                connection.putheader(name.replace("_", "-"), value)
            connection.endheaders()
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()
    post.server = dcslog_server
    return post


HOSTILE_HOSTS = ["evil.example/x?", "evil.example/", "evil.example?", "evil.example#", "user@evil.example",
                 "evil.example:80@other", "evil example", "evil.example:", "evil.example:http", "evil.example:99999",
                 "[::1", "[zz::1]", "[::1]x", "evil.example%2f", "evil.example;x", "", "évil.example",
                 "evil.example:80:81", "evil.example\\x"]


def test_a_link_is_never_built_from_an_invalid_host(link_request):
    for host in HOSTILE_HOSTS:
        status, body = link_request(host)
        assert (status, body["error_code"]) == (400, "DCS.4800"), (host, body)
        assert body["error_msg"] == "Invalid Host in the request."
        assert "DCSLOG_PUBLIC_URL" in body["error_ext_msg"]
        assert "link" not in body
    # No Host at all: HTTP/1.1 requires one, and aiohttp refuses the request before dcslog sees it.
    status, body = link_request(None)
    assert (status, body["error_code"]) == (400, "DCS.4800") and "link" not in body


def test_a_valid_host_makes_the_link_and_headers_never_choose_the_scheme(link_request):
    for host in ["logs.example.net:8443", "logs.example.net", "127.0.0.1:8080", "[::1]:8080", "[::ffff:10.0.0.1]",
                 "localhost", "LOGS.Example.NET:0"]:
        status, body = link_request(host, X_Forwarded_Proto="https", Forwarded="proto=https;host=evil.example",
                                    X_Forwarded_Host="evil.example")
        assert status == 200, (host, body)
        assert body["link"].startswith(f"http://{host}/downloads/"), body
    # The link made through the name the client used is the file, fetched where the service listens.
    status, body = link_request("logs.example.net:8443")
    token = body["link"].rsplit("/", 1)[1]
    assert httpx.get(f"{link_request.server.url}/downloads/{token}").status_code == 200


def test_public_url_wins_over_any_host(link_request):
    link_request.server.settings.public_url = "https://logs.example.com/dcs/"
    for host in ["evil.example/x?", "logs.example.net:8443"]:
        status, body = link_request(host)
        assert status == 200 and body["link"].startswith("https://logs.example.com/dcs/downloads/"), (host, body)


@pytest.mark.parametrize("host", ["a", "a.b-c_d~e", "1.2.3.4:65535", "[2001:db8::1]:443", "[::]"])
def test_valid_hosts(host):
    from dcslog.config import is_valid_host

    assert is_valid_host(host)


@pytest.mark.parametrize("host", HOSTILE_HOSTS + ["a:65536", "[v1.x]", "[fe80::1%25eth0]", "a b:1"])
def test_invalid_hosts(host):
    from dcslog.config import is_valid_host

    assert not is_valid_host(host)
