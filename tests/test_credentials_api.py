"""The project's access keys and tokens over HTTP (SPEC §8, issue #16 item 5; dcslog extensions, admin
only): ``GET /v2/{project_id}/credentials|tokens`` list them without a secret, ``DELETE …/{access_key}``
and ``DELETE …/tokens/{token_id}`` revoke them, recorded in the audit trail with the API caller as
actor. Real server; keys and tokens made with the CLI (making one stays the CLI's); requests with a
token and signed with AK/SK as the SDK signs them."""

from __future__ import annotations

import hashlib
import json
import logging

import httpx

from dcslog.signing import sign_request
from dcslog.testing.waiting import wait_for
from tests.test_audit import records, trail

LOOPBACK = "127.0.0.1"


def token_headers(token: dict) -> dict[str, str]:
    return {"X-Auth-Token": token["token"]}


def ask(server, method: str, path: str, *, token: dict | None = None, key: dict | None = None) -> httpx.Response:
    """``method`` on ``/v2/…path`` with a token, or signed with an access key."""
    url = f"{server.url}/v2/{path}"
    headers = token_headers(token) if token else sign_request(key["access_key"], key["secret_key"], method, url) \
        if key else {}
    return httpx.request(method, url, headers=headers)


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error_code", "error_msg", "error_ext_msg"}, body
    return response.status_code, body["error_code"]


def can_list_instances(server, *, token: dict | None = None, key: dict | None = None) -> httpx.Response:
    return ask(server, "GET", f"{(token or key)['project_id']}/instances", token=token, key=key)


def test_lists_show_the_projects_keys_and_tokens_and_never_a_secret(dcslog_server):
    server = dcslog_server
    admin = server.cli("token", "create", "--project-id", "proj-a", "--name", "console admin")
    key = server.cli("credentials", "create", "--project-id", "proj-a", "--role", "viewer", "--name", "grafana")
    unnamed_key = server.credentials(role="operator")
    operator = server.cli("token", "create", "--project-id", "proj-a", "--role", "operator")
    theirs = server.cli("token", "create", "--project-id", "proj-b", "--name", "other project")
    their_key = server.credentials("proj-b")
    revoked = server.cli("token", "create", "--project-id", "proj-a", "--name", "gone")
    server.cli("token", "revoke", "--project-id", "proj-a", revoked["id"])

    keys = ask(server, "GET", "proj-a/credentials", token=admin)
    assert keys.status_code == 200, keys.text
    cli_keys = server.cli("credentials", "list", "--project-id", "proj-a")
    assert keys.json() == {"credentials": [
        {"access_key": key["access_key"], "name": "grafana", "role": "viewer", "project_id": "proj-a",
         "created_at": cli_keys[0]["created_at"]},
        {"access_key": unnamed_key["access_key"], "name": None, "role": "operator", "project_id": "proj-a",
         "created_at": cli_keys[1]["created_at"]}]}

    tokens = ask(server, "GET", "proj-a/tokens", token=admin)
    assert tokens.status_code == 200, tokens.text
    cli_tokens = {t["id"]: t for t in server.cli("token", "list", "--project-id", "proj-a")}
    assert tokens.json() == {"tokens": [
        {"id": made["id"], "name": name, "role": role, "project_id": "proj-a",
         "created_at": cli_tokens[made["id"]]["created_at"], "expires_at": made["expires_at"]}
        for made, name, role in ((admin, "console admin", "admin"), (operator, None, "operator"))]}

    # Signed with an admin's access key, the same lists.
    admin_key = server.credentials()
    signed = ask(server, "GET", "proj-a/credentials", key=admin_key).json()["credentials"]
    assert [k["access_key"] for k in signed] == [key["access_key"], unnamed_key["access_key"],
                                                 admin_key["access_key"]]
    assert ask(server, "GET", "proj-a/tokens", key=admin_key).json() == tokens.json()

    # No secret in any answer: secret keys, tokens, token hashes; proj-b's keys and tokens are not there.
    shown = keys.text + tokens.text + json.dumps(signed)
    for made in (admin, operator, revoked, theirs):
        assert made["token"] not in shown and hashlib.sha256(made["token"].encode()).hexdigest() not in shown
    for made in (key, unnamed_key, admin_key, their_key):
        assert made["secret_key"] not in shown
    assert "secret" not in shown.lower()
    assert theirs["id"] not in shown and their_key["access_key"] not in shown and "other project" not in shown

    # Making one is the CLI's (its secret is shown once, on a terminal): no method for it here.
    for path in ("proj-a/credentials", "proj-a/tokens"):
        assert error_of(ask(server, "POST", path, token=admin)) == (405, "DCS.4001")


def test_revoking_through_the_api_refuses_the_next_request_and_is_audited(dcslog_server):
    server = dcslog_server
    admin = server.cli("token", "create", "--project-id", "proj-a")
    operator = server.cli("token", "create", "--project-id", "proj-a", "--role", "operator")
    key = server.credentials(role="viewer")
    assert can_list_instances(server, token=operator).status_code == 200  # both in the read cache now
    assert can_list_instances(server, key=key).status_code == 200

    gone = ask(server, "DELETE", f"proj-a/tokens/{operator['id']}", token=admin)
    assert (gone.status_code, gone.content) == (204, b"")
    refused = can_list_instances(server, token=operator)
    assert error_of(refused) == (401, "DCS.1001") and refused.json()["error_msg"] == "The token has been revoked."
    assert operator["id"] not in ask(server, "GET", "proj-a/tokens", token=admin).text

    # An access key, revoked by an admin signing with its own access key.
    admin_key = server.credentials()
    key_gone = ask(server, "DELETE", f"proj-a/credentials/{key['access_key']}", key=admin_key)
    assert (key_gone.status_code, key_gone.content) == (204, b"")
    refused = can_list_instances(server, key=key)
    assert error_of(refused) == (401, "DCS.1001")
    assert refused.json()["error_msg"] == "The access key has been revoked."
    assert key["access_key"] not in ask(server, "GET", "proj-a/credentials", token=admin).text
    [listed] = [k for k in server.cli("credentials", "list", "--project-id", "proj-a", "--all")
                if k["access_key"] == key["access_key"]]
    assert listed["revoked_at"] is not None

    # Again: no error, nothing changes, recorded as unchanged.
    again = ask(server, "DELETE", f"proj-a/tokens/{operator['id']}", token=admin)
    assert again.status_code == 204
    key_again = ask(server, "DELETE", f"proj-a/credentials/{key['access_key']}", token=admin)
    assert key_again.status_code == 204
    assert [k for k in server.cli("credentials", "list", "--project-id", "proj-a", "--all")
            if k["access_key"] == key["access_key"]] == [listed]  # its first revoked_at stays

    # The audit trail: the API caller is the actor, with the request's address and id.
    trail = [(r["actor"], r["actor_type"], r["target"], r["source_ip"], r["request_id"], r["outcome"])
             for r in records(server, admin["token"], action="token.revoke")]
    assert trail == [(admin["id"], "token", operator["id"], LOOPBACK, again.headers["X-Request-Id"], "unchanged"),
                     (admin["id"], "token", operator["id"], LOOPBACK, gone.headers["X-Request-Id"], "succeeded")]
    trail = [(r["actor"], r["actor_type"], r["target"], r["source_ip"], r["request_id"], r["outcome"])
             for r in records(server, admin["token"], action="credential.revoke")]
    assert trail == [
        (admin["id"], "token", key["access_key"], LOOPBACK, key_again.headers["X-Request-Id"], "unchanged"),
        (admin_key["access_key"], "access_key", key["access_key"], LOOPBACK, key_gone.headers["X-Request-Id"],
         "succeeded")]

    # An admin may revoke its own token: the answer comes, the next request is refused.
    assert ask(server, "DELETE", f"proj-a/tokens/{admin['id']}", token=admin).status_code == 204
    assert error_of(can_list_instances(server, token=admin)) == (401, "DCS.1001")


def test_only_an_admin_lists_and_revokes(dcslog_server):
    server = dcslog_server
    target = server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")
    target_key = server.credentials(role="viewer")
    for role in ("viewer", "operator"):
        for caller in ({"token": server.cli("token", "create", "--project-id", "proj-a", "--role", role)},
                       {"key": server.credentials(role=role)}):
            for method, path in (("GET", "proj-a/credentials"), ("GET", "proj-a/tokens"),
                                 ("DELETE", f"proj-a/tokens/{target['id']}"),
                                 ("DELETE", f"proj-a/credentials/{target_key['access_key']}")):
                answer = ask(server, method, path, **caller)
                assert error_of(answer) == (403, "DCS.2003"), (role, method, path)
    for method, path in (("GET", "proj-a/tokens"), ("DELETE", f"proj-a/tokens/{target['id']}")):
        assert error_of(ask(server, method, path)) == (401, "DCS.1003")
    # Nothing was revoked, and nothing recorded.
    assert can_list_instances(server, token=target).status_code == 200
    assert can_list_instances(server, key=target_key).status_code == 200
    admin = server.cli("token", "create", "--project-id", "proj-a")
    assert records(server, admin["token"], action="token.revoke") == []
    assert records(server, admin["token"], action="credential.revoke") == []


def test_another_projects_keys_and_tokens_are_not_found(dcslog_server):
    server = dcslog_server
    ours = server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")
    our_key = server.credentials(role="viewer")
    their_admin = server.cli("token", "create", "--project-id", "proj-b")

    # Theirs to list: nothing of ours.
    assert ask(server, "GET", "proj-b/tokens", token=their_admin).json() == {"tokens": [
        {k: v for k, v in server.cli("token", "list", "--project-id", "proj-b")[0].items() if k != "revoked_at"}]}
    assert ask(server, "GET", "proj-b/credentials", token=their_admin).json() == {"credentials": []}
    # Ours, asked for under their project: 404 exactly as what does not exist (no existence leak).
    for path, unknown in ((f"proj-b/tokens/{ours['id']}", "proj-b/tokens/tok-0123456789abcdef"),
                          (f"proj-b/credentials/{our_key['access_key']}", "proj-b/credentials/AAAABBBBCCCCDDDDEEEE")):
        answer = ask(server, "DELETE", path, token=their_admin)
        assert error_of(answer) == (404, "DCS.4001"), path
        missing = ask(server, "DELETE", unknown, token=their_admin)
        assert error_of(missing) == (404, "DCS.4001")
        assert answer.json()["error_msg"].replace(path.rsplit("/", 1)[1], "X") == \
            missing.json()["error_msg"].replace(unknown.rsplit("/", 1)[1], "X")
    # And under ours, with their credential: the project is not theirs.
    assert error_of(ask(server, "GET", "proj-a/tokens", token=their_admin)) == (401, "DCS.1004")
    assert error_of(ask(server, "DELETE", f"proj-a/tokens/{ours['id']}", token=their_admin)) == (401, "DCS.1004")
    # Ours still work, and no revocation was recorded anywhere.
    assert can_list_instances(server, token=ours).status_code == 200
    assert can_list_instances(server, key=our_key).status_code == 200
    for project_id in ("proj-a", "proj-b"):
        admin = server.cli("token", "create", "--project-id", project_id)
        assert [r for r in trail(server, admin["token"], project_id, limit=1000)["records"]
                if r["action"].endswith(".revoke")] == []


def test_a_token_sent_for_its_id_is_refused_and_not_logged(dcslog_server, caplog):
    server = dcslog_server
    admin = server.cli("token", "create", "--project-id", "proj-a")
    victim = server.cli("token", "create", "--project-id", "proj-a", "--role", "viewer")
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    answer = ask(server, "DELETE", f"proj-a/tokens/{victim['token']}", token=admin)
    assert error_of(answer) == (404, "DCS.4001")
    assert victim["token"] not in answer.text and "token's id" in answer.json()["error_msg"]
    assert ask(server, "DELETE", f"proj-a/tokens/{victim['id']}", token=admin).status_code == 204

    def access_lines() -> list[str]:  # written just after each answer is sent: the last one may still come
        lines = [record.getMessage() for record in caplog.records if record.name == "aiohttp.access"]
        return lines if f"DELETE /v2/proj-a/tokens/{victim['id']} 204" in "\n".join(lines) else []
    lines = wait_for(access_lines, timeout=10, what="the 204's access line")  # an id is logged as it is
    assert "DELETE /v2/proj-a/tokens/<not a token id> 404" in "\n".join(lines)
    assert not any(victim["token"] in line for line in lines)
