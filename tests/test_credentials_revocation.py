"""Named, listable, revocable credentials and tokens (SPEC §8): names and lists that never show a
secret, and a revocation that every API process honours from its very next request, on SQLite
(each process's read cache warm) and on PostgreSQL, with several `dcslog serve` processes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkdcs.v2 import DcsClient, ListInstancesRequest

from dcslog import cli
from dcslog.signing import sign_request
from dcslog.testing.ports import free_port
from dcslog.testing.processes import stop_processes
from dcslog.testing.waiting import answers, wait_for
from tests.dcslog_fixtures import started_server

DCSLOG = [sys.executable, "-m", "dcslog.cli"]
PROCESSES = 2


def cli_json(*args: str) -> tuple[int, dict | list]:
    """``dcslog ARGS --json`` in-process: (exit status, parsed stdout), failures included."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = cli.main([*args, "--json"])
        except SystemExit as exit:  # a usage error, from argparse
            code = int(exit.code or 0)
    return code, json.loads(out.getvalue())


def cli_text(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(list(args)) == 0
    return out.getvalue()


def run_cli(env: dict, *args: str) -> dict | list:
    """``dcslog ARGS --json`` in a process of its own, as an operator runs it."""
    done = subprocess.run([*DCSLOG, *args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error_code", "error_msg", "error_ext_msg"}, body
    return response.status_code, body["error_code"]


def sdk(endpoint: str, credential: dict) -> DcsClient:
    config = HttpConfig.get_default_config()
    config.timeout = (5, 30)
    return (DcsClient.new_builder().with_http_config(config)
            .with_credentials(BasicCredentials(credential["access_key"], credential["secret_key"],
                                               credential["project_id"]))
            .with_endpoint(endpoint).build())


def sdk_error(client: DcsClient) -> tuple[int, str, str]:
    with pytest.raises(ClientRequestException) as caught:
        client.list_instances(ListInstancesRequest())
    return caught.value.status_code, caught.value.error_code, caught.value.error_msg


# --- names and lists ---------------------------------------------------------------------------------------


def test_lists_show_names_and_never_a_secret(dcslog_server):
    key = dcslog_server.cli("credentials", "create", "--project-id", "proj-a", "--role", "viewer",
                            "--name", "grafana on host7")
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--name", "nightly export")
    unnamed = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--role", "operator")
    dcslog_server.cli("credentials", "create", "--project-id", "proj-b", "--name", "other project")
    # create answers with the CLI contract's keys (SPEC §4), a token's id added; the names are in list.
    assert set(key) == {"access_key", "secret_key", "project_id", "role"}
    assert set(token) == {"token", "id", "expires_at", "project_id", "role"}

    keys = dcslog_server.cli("credentials", "list", "--project-id", "proj-a")
    assert keys == [{"access_key": key["access_key"], "name": "grafana on host7", "role": "viewer",
                     "project_id": "proj-a", "created_at": keys[0]["created_at"], "revoked_at": None}]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", keys[0]["created_at"])
    tokens = dcslog_server.cli("token", "list", "--project-id", "proj-a")
    assert [(t["id"], t["name"], t["role"], t["project_id"]) for t in tokens] == [
        (token["id"], "nightly export", "admin", "proj-a"), (unnamed["id"], None, "operator", "proj-a")]
    assert set(tokens[0]) == {"id", "name", "role", "project_id", "created_at", "expires_at", "revoked_at"}
    assert tokens[0]["expires_at"] == token["expires_at"]

    # The id names the token and nothing more: not the token, not in it, not its hash.
    for made in (token, unnamed):
        assert re.fullmatch(r"tok-[0-9a-f]{16}", made["id"])
        assert made["id"] not in made["token"] and made["id"][4:] not in hashlib.sha256(
            made["token"].encode()).hexdigest()
    shown = json.dumps([keys, tokens]) + cli_text("credentials", "list") + cli_text("token", "list", "--all")
    assert "grafana on host7" in shown and "nightly export" in shown
    token_hash = hashlib.sha256(token["token"].encode()).hexdigest()
    for secret in (key["secret_key"], token["token"], unnamed["token"], token_hash):
        assert secret not in shown
    assert "secret" not in shown.lower()


def test_revoked_ones_are_listed_only_with_all(dcslog_server):
    key = dcslog_server.cli("credentials", "create", "--project-id", "proj-a", "--name", "old")
    kept = dcslog_server.cli("credentials", "create", "--project-id", "proj-a", "--name", "kept")
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--name", "old")
    revoked = dcslog_server.cli("credentials", "revoke", "--project-id", "proj-a", key["access_key"])
    assert revoked["access_key"] == key["access_key"] and revoked["name"] == "old" and revoked["revoked_at"]
    assert "secret_key" not in revoked
    assert dcslog_server.cli("token", "revoke", "--project-id", "proj-a", token["id"])["revoked_at"]

    assert [k["access_key"] for k in dcslog_server.cli("credentials", "list", "--project-id", "proj-a")] \
        == [kept["access_key"]]
    everything = dcslog_server.cli("credentials", "list", "--project-id", "proj-a", "--all")
    assert [(k["access_key"], bool(k["revoked_at"])) for k in everything] == [(key["access_key"], True),
                                                                            (kept["access_key"], False)]
    assert dcslog_server.cli("token", "list", "--project-id", "proj-a") == []
    assert [t["id"] for t in dcslog_server.cli("token", "list", "--project-id", "proj-a", "--all")] == [token["id"]]

    # Revoking again changes nothing: the first revocation's time stays.
    again = dcslog_server.cli("credentials", "revoke", "--project-id", "proj-a", key["access_key"])
    assert again["revoked_at"] == revoked["revoked_at"]


def test_an_expired_token_is_listed_only_with_all(dcslog_server):
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a")
    db = sqlite3.connect(dcslog_server.settings.data_dir / "dcslog.db")
    with db:  # expired an hour ago, without waiting for it
        db.execute("UPDATE tokens SET expires_at = ? WHERE id = ?",
                   ((datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat(" "), token["id"]))
    assert dcslog_server.cli("token", "list", "--project-id", "proj-a") == []
    assert [t["id"] for t in dcslog_server.cli("token", "list", "--project-id", "proj-a", "--all")] == [token["id"]]


def test_revoking_what_is_not_there(dcslog_server):
    key = dcslog_server.cli("credentials", "create", "--project-id", "proj-b")
    token = dcslog_server.cli("token", "create", "--project-id", "proj-b")
    # Unknown, or another project's (no existence leak across projects): exit status 1, DCS.4001.
    for args in (("credentials", "revoke", "--project-id", "proj-a", "NOSUCHKEY"),
                 ("credentials", "revoke", "--project-id", "proj-a", key["access_key"]),
                 ("token", "revoke", "--project-id", "proj-a", "tok-0000000000000000"),
                 ("token", "revoke", "--project-id", "proj-a", token["id"]),
                 ("token", "revoke", "--project-id", "proj-b", token["token"])):  # the token is not its id
        code, out = cli_json(*args)
        assert code == 1, args
        assert out["error"]["exit_status"] == 1 and out["error"]["error_code"] == "DCS.4001", out
        assert "proj-a" in out["error"]["error_msg"] or "proj-b" in out["error"]["error_msg"]
    assert token["token"] not in json.dumps(out)  # a token given for an id is not said back
    # Nothing was revoked by those.
    url = dcslog_server.url + "/v2/proj-b/instances"
    assert httpx.get(url, headers={"X-Auth-Token": token["token"]}).status_code == 200
    assert httpx.get(url, headers=sign_request(key["access_key"], key["secret_key"], "GET", url)).status_code == 200
    code, out = cli_json("token", "revoke", token["id"])  # --project-id is required
    assert code == 2


def test_a_name_is_checked(dcslog_server):
    for bad in ("", "   ", "x" * 129, "tab\there"):
        code, out = cli_json("token", "create", "--project-id", "proj-a", "--name", bad)
        assert code == 2 and "name" in out["error"]["error_msg"], bad
    dcslog_server.cli("token", "create", "--project-id", "proj-a", "--name", " ünïcode ok ")
    assert [t["name"] for t in dcslog_server.cli("token", "list")] == ["ünïcode ok"]


# --- revocation, on every endpoint --------------------------------------------------------------------------


def test_a_revoked_token_and_key_are_refused_by_every_operation(dcslog_server):
    from dcslog.api.operations import registered

    token = dcslog_server.cli("token", "create", "--project-id", "proj-a")
    key = dcslog_server.credentials()
    url = dcslog_server.url + "/v2/proj-a/instances"
    assert httpx.get(url, headers={"X-Auth-Token": token["token"]}).status_code == 200  # the cache holds both
    assert httpx.get(url, headers=sign_request(key["access_key"], key["secret_key"], "GET", url)).status_code == 200
    dcslog_server.cli("token", "revoke", "--project-id", "proj-a", token["id"])
    dcslog_server.cli("credentials", "revoke", "--project-id", "proj-a", key["access_key"])

    values = {"project_id": "proj-a", "instance_id": "3f1d2c4e-0000-4000-8000-000000000000"}
    checked = 0
    for op in registered():
        if op.role is None:
            continue
        path = re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), "x1"), op.path)
        target = dcslog_server.url + path
        for headers in ({"X-Auth-Token": token["token"]},
                        sign_request(key["access_key"], key["secret_key"], op.method, target)):
            response = httpx.request(op.method, target, headers=headers)
            assert error_of(response) == (401, "DCS.1001"), (op.method, op.path, response.text)
        checked += 1
    assert checked >= 10


def test_the_reason_is_said_to_the_holder(dcslog_server):
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a")
    key = dcslog_server.credentials()
    dcslog_server.cli("token", "revoke", "--project-id", "proj-a", token["id"])
    dcslog_server.cli("credentials", "revoke", "--project-id", "proj-a", key["access_key"])
    url = dcslog_server.url + "/v2/proj-a/instances"
    assert httpx.get(url, headers={"X-Auth-Token": token["token"]}).json()["error_msg"] == "The token has been revoked."
    signed = httpx.get(url, headers=sign_request(key["access_key"], key["secret_key"], "GET", url))
    assert signed.json()["error_msg"] == "The access key has been revoked."
    # Without its secret key, a revoked access key is as unknown as any other.
    forged = httpx.get(url, headers=sign_request(key["access_key"], "not-its-secret", "GET", url))
    assert (error_of(forged), forged.json()["error_msg"]) == ((401, "DCS.1001"), "Invalid signature.")
    # An expired token that is also revoked says revoked: that is final, expiry is not.
    expired = dcslog_server.cli("token", "create", "--project-id", "proj-a")
    db = sqlite3.connect(dcslog_server.settings.data_dir / "dcslog.db")
    with db:
        db.execute("UPDATE tokens SET expires_at = '2000-01-01 00:00:00' WHERE id = ?", (expired["id"],))
    assert error_of(httpx.get(url, headers={"X-Auth-Token": expired["token"]})) == (401, "DCS.1002")
    dcslog_server.cli("token", "revoke", "--project-id", "proj-a", expired["id"])
    response = httpx.get(url, headers={"X-Auth-Token": expired["token"]})
    assert (error_of(response), response.json()["error_msg"]) == ((401, "DCS.1001"), "The token has been revoked.")


# --- revocation, on several processes at once, SQLite and PostgreSQL -------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def service_env(request, tmp_path) -> dict:
    env = {**os.environ, "DCSLOG_DATA_DIR": str(tmp_path / "data"), "DCSLOG_SLOWLOG_INTERVAL": "3600"}
    env.pop("DCSLOG_DATABASE_URL", None)
    if request.param == "postgresql":
        env["DCSLOG_DATABASE_URL"] = request.getfixturevalue("postgres").create_database()
    run_cli(env, "db", "upgrade")
    return env


@pytest.fixture
def api_processes(service_env):
    """PROCESSES `dcslog serve --no-worker` processes on the one database."""
    ports = [free_port() for _ in range(PROCESSES)]
    procs = [subprocess.Popen([*DCSLOG, "serve", "--no-worker", "--port", str(port)], env=service_env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in ports]
    try:
        apis = [f"http://127.0.0.1:{port}" for port in ports]
        for api, proc in zip(apis, procs, strict=True):
            wait_for(lambda api=api, proc=proc: proc.poll() is not None or answers(api), timeout=60,
                     what=f"{api} to answer")
            assert proc.poll() is None, f"{api} exited"
        yield apis
    finally:
        stop_processes(*procs)


def test_revocation_takes_effect_on_every_process_at_once(service_env, api_processes):
    env, apis = service_env, api_processes
    token = run_cli(env, "token", "create", "--project-id", "proj-a", "--name", "leaked", "--role", "viewer")
    kept_token = run_cli(env, "token", "create", "--project-id", "proj-a", "--name", "kept")
    key = run_cli(env, "credentials", "create", "--project-id", "proj-a", "--name", "leaked")
    kept_key = run_cli(env, "credentials", "create", "--project-id", "proj-a", "--name", "kept")
    clients = {api: sdk(api, key) for api in apis}
    kept_clients = {api: sdk(api, kept_key) for api in apis}

    def with_token(api: str, which: dict) -> httpx.Response:
        return httpx.get(f"{api}/v2/proj-a/instances", headers={"X-Auth-Token": which["token"]})

    for api in apis:
        for _ in range(3):  # on SQLite, every process's read cache now holds both
            assert with_token(api, token).status_code == 200
            assert clients[api].list_instances(ListInstancesRequest()).instance_num == 0

    run_cli(env, "token", "revoke", "--project-id", "proj-a", token["id"])
    for api in apis:  # the very next request, on each process
        assert error_of(with_token(api, token)) == (401, "DCS.1001"), api
        assert with_token(api, kept_token).status_code == 200, api
        assert clients[api].list_instances(ListInstancesRequest()).instance_num == 0, api

    run_cli(env, "credentials", "revoke", "--project-id", "proj-a", key["access_key"])
    for api in apis:
        assert sdk_error(clients[api]) == (401, "DCS.1001", "The access key has been revoked."), api
        assert kept_clients[api].list_instances(ListInstancesRequest()).instance_num == 0, api
        assert with_token(api, kept_token).status_code == 200, api
        assert error_of(with_token(api, token)) == (401, "DCS.1001"), api

    listed = run_cli(env, "credentials", "list", "--project-id", "proj-a", "--all")
    assert {(k["name"], bool(k["revoked_at"])) for k in listed} == {("leaked", True), ("kept", False)}
    assert key["secret_key"] not in json.dumps(listed)
    listed = run_cli(env, "token", "list", "--project-id", "proj-a")
    assert [(t["id"], t["name"]) for t in listed] == [(kept_token["id"], "kept")]
    assert kept_token["token"] not in json.dumps(listed)


# --- the migration ------------------------------------------------------------------------------------------


def test_credentials_and_tokens_made_before_names_keep_working(dcslog_env, monkeypatch):
    """A database at 0010 with a token and a key in it: after the upgrade both still authenticate,
    the token has an id of its own, and either can be revoked."""
    from alembic import command

    from dcslog.config import Settings
    from dcslog.db.session import alembic_config
    from dcslog.keys import Keyring, hash_token, load_server_key

    settings = Settings()
    settings.prepare_data_dir(create=True)
    url = settings.effective_database_url
    command.upgrade(alembic_config(url), "0010")
    keyring = Keyring(load_server_key(settings))
    now = datetime.now(UTC).replace(tzinfo=None)
    db = sqlite3.connect(settings.data_dir / "dcslog.db")
    with db:
        db.execute("INSERT INTO tokens (token_hash, project_id, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                   (hash_token("dcslog-old-token"), "proj-a", "admin", now, now + timedelta(hours=1)))
        db.execute("INSERT INTO credentials (access_key, secret_encrypted, project_id, role, created_at) "
                   "VALUES (?, ?, ?, ?, ?)", ("OLDKEY", keyring.encrypt("old-secret"), "proj-a", "viewer", now))
    db.close()

    with started_server(monkeypatch) as server:  # upgrades the schema to the head
        url = server.url + "/v2/proj-a/instances"
        assert httpx.get(url, headers={"X-Auth-Token": "dcslog-old-token"}).status_code == 200
        assert httpx.get(url, headers=sign_request("OLDKEY", "old-secret", "GET", url)).status_code == 200
        [token] = server.cli("token", "list", "--project-id", "proj-a")
        assert re.fullmatch(r"tok-[0-9a-f]{16}", token["id"]) and token["name"] is None
        [key] = server.cli("credentials", "list", "--project-id", "proj-a")
        assert (key["access_key"], key["name"], key["role"]) == ("OLDKEY", None, "viewer")
        server.cli("token", "revoke", "--project-id", "proj-a", token["id"])
        server.cli("credentials", "revoke", "--project-id", "proj-a", "OLDKEY")
        assert error_of(httpx.get(url, headers={"X-Auth-Token": "dcslog-old-token"})) == (401, "DCS.1001")
        assert error_of(httpx.get(url, headers=sign_request("OLDKEY", "old-secret", "GET", url))) == (401, "DCS.1001")


def test_credentials_delete_still_works_and_now_revokes(dcslog_server):
    key = dcslog_server.credentials()
    assert dcslog_server.cli("credentials", "delete", key["access_key"])["revoked_at"]
    url = dcslog_server.url + "/v2/proj-a/instances"
    assert error_of(httpx.get(url, headers=sign_request(key["access_key"], key["secret_key"], "GET", url))) \
        == (401, "DCS.1001")
    assert [k["access_key"] for k in dcslog_server.cli("credentials", "list", "--all")] == [key["access_key"]]


def test_what_a_token_does_is_told_by_its_id(dcslog_server, redis_standalone):
    """A task made with a token names the token's id (as one made with a key names the access key):
    once revoked, it is still clear whose it was, and the token itself is nowhere."""
    instance_id = dcslog_server.import_instance(redis_standalone.url)["instance_id"]
    token = dcslog_server.cli("token", "create", "--project-id", "proj-a", "--name", "nightly export")
    api = f"{dcslog_server.url}/v2/proj-a/instances/{instance_id}"
    headers = {"X-Auth-Token": token["token"]}
    assert httpx.post(f"{api}/redislog", params={"log_type": "run"}, headers=headers).status_code == 204
    [task] = httpx.get(f"{api}/tasks", headers=headers).json()["tasks"]
    assert (task["user_id"], task["user_name"]) == (token["id"], token["id"])
    assert token["token"] not in json.dumps(task)
