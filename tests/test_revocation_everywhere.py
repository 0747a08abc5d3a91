"""Revocation everywhere (SPEC §3, §8; issue #16 item 6): a revoked token, access key or link tried
on every endpoint, on both backends, on two API processes at once.

* Every DCS operation of the registry (``api/operations.registered()``, what the router and
  ``/openapi.json`` are built from: a new endpoint is covered without being listed here), with
  its path filled with real ids (the imported instance, its collected file, a link of it, a task)
  and its required query parameters with valid values, and HEAD with every GET and the other
  media types an operation answers in (NDJSON, the ``follow=true`` event stream): a revoked token
  (``X-Auth-Token``) and a revoked access key (AK/SK signed) answer 401 ``DCS.1001`` in the DCS
  envelope on each API process, from the very first request after ``dcslog token|credentials
  revoke`` (a third process) returns, while each process's read cache held them; the same
  request with a live token and a live key answers what the operation declares it answers on
  success (so it got past authentication, and the refusal above is the revocation's).
* A link revoked by its id (``DELETE …/redislog/{id}/links/{link_id}``) or with all the file's
  links (``DELETE …/redislog/{id}/links``) answers 403 ``DCS.2004`` on each API process within
  a second (SPEC §8), whatever is asked: GET, HEAD, a Range, a resumed Range (If-Range), each
  conditional header, for raw and records (``format=ndjson``) links; links not revoked, and links
  made after, keep serving the same requests with their usual answers. On S3 the raw link is the
  store's presigned URL: it stops working (the store refuses it, the object was re-keyed).

Real redis-server; the backends as an operator runs them: SQLite + a local directory, and
PostgreSQL + S3 (moto_server), each with two ``dcslog serve`` processes (one also the worker),
set up once per backend for the module.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import boto3
import httpx
import pytest

from dcslog import cli
from dcslog.api.operations import Operation, registered
from dcslog.app import create_app
from dcslog.config import Settings
from dcslog.signing import sign_request
from dcslog.testing.ports import free_port
from dcslog.testing.processes import stop_processes
from dcslog.testing.redis_servers import NodeSet
from dcslog.testing.waiting import answers, wait_for
from tests.test_redislog import day_lines, today_utc

DCSLOG = [sys.executable, "-m", "dcslog.cli"]
PROJECT = "proj-a"
LINES = 40
# Every process must share the server key: set once, as an operator would.
SERVER_KEY = "4d2yIHNGdcI2O8sGc1XyM7YQ3ZhfJm7XvAD5KJ8HBNc="
# SPEC §8: "A revoked link answers 403 on every API process within a second."
WITHIN = 1.0
JSON_TYPE = "application/json;charset=UTF-8"
NDJSON = "application/x-ndjson"
EVENT_STREAM = "text/event-stream"
LINK_REVOKED = {"error_code": "DCS.2004", "error_msg": "The download link has been revoked.", "error_ext_msg": None}
# What an S3 store answers a presigned GET of a key that is gone: 404 NoSuchKey, or 403 where it hides
# existence (AWS without ListBucket; moto_server answers 403 too). Its own XML error, never the bytes.
STORE_REFUSES = (403, 404)


# --- credentials and calls ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    """A token or an access key, sent as a client sends it: X-Auth-Token, or the AK/SK signature."""

    name: str
    token: str | None = None
    access_key: str | None = None
    secret_key: str | None = None

    def headers(self, method: str, url: str) -> dict[str, str]:
        if self.token is not None:
            return {"X-Auth-Token": self.token}
        assert self.access_key is not None and self.secret_key is not None
        return sign_request(self.access_key, self.secret_key, method, url)


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self):
        return json.loads(self.body)


def call(client: httpx.Client, method: str, url: str, headers: dict[str, str]) -> Answer:
    """One request; an event stream's body is not waited for (it never ends), only its status and headers."""
    with client.stream(method, url, headers=headers) as response:
        streaming = response.headers.get("content-type", "").startswith(EVENT_STREAM)
        return Answer(response.status_code, response.headers, b"" if streaming else response.read())


def assert_revoked_credential(answer: Answer, method: str, what: str) -> None:
    """401 DCS.1001 in the DCS envelope (SPEC §2 "Errors", §8); a HEAD answer has the status alone."""
    assert answer.status == 401, (what, answer.status, answer.body[:300])
    assert answer.headers.get("x-request-id"), what
    if method == "HEAD":
        assert answer.body == b"", what
        return
    assert answer.headers.get("content-type") == JSON_TYPE, (what, answer.headers)
    body = answer.json()
    assert set(body) == {"error_code", "error_msg", "error_ext_msg"}, (what, body)
    assert body["error_code"] == "DCS.1001" and body["error_ext_msg"] is None, (what, body)
    # Said to the holder: revoked, not merely unknown (docs/design.md, "Revocation").
    assert "revoked" in body["error_msg"], (what, body)


def cli_json(*args: str) -> dict | list:
    """``dcslog ARGS --json`` in this process, on the deployment's settings (set in os.environ)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([*args, "--json"])
    assert code == 0, f"dcslog {' '.join(args)} failed"
    return json.loads(out.getvalue())


# --- the deployment: a backend, two API processes, one instance with a collected file ------------------------


@dataclass
class Deployment:
    backend: str
    env: dict[str, str]  # DCSLOG_* as every process of this deployment has them (plus the rest of os.environ)
    apis: list[str]  # two `dcslog serve` processes: [0] also runs the worker, [1] is --no-worker
    instance_id: str = ""
    file_id: str = ""
    task_id: str = ""  # the first collection's
    content: bytes = b""
    token: Credential = field(default_factory=lambda: Credential("token"))  # live, admin
    key: Credential = field(default_factory=lambda: Credential("key"))  # live, admin
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def on_s3(self) -> bool:
        return self.backend == "postgres-s3"

    @property
    def base(self) -> str:
        return f"/v2/{PROJECT}/instances/{self.instance_id}"

    def cli(self, *args: str) -> dict | list:
        return cli_json(*args)

    def run_cli(self, *args: str) -> dict | list:
        """``dcslog ARGS --json`` in a process of its own, as an operator runs it."""
        done = subprocess.run([*DCSLOG, *args, "--json"], env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def api(self, method: str, path: str, api: str | None = None, credential: Credential | None = None,
            **params: str) -> httpx.Response:
        url = f"{api or self.apis[0]}{path}" + (f"?{urlencode(params)}" if params else "")
        credential = credential or self.token
        return self.client.request(method, url, headers=credential.headers(method, url))

    def tasks(self) -> list[dict]:
        answer = self.api("GET", f"{self.base}/tasks", limit="1000")
        assert answer.status_code == 200, answer.text
        return answer.json()["tasks"]

    def settle(self) -> None:
        """Wait until no collection runs (a new one would be DCS.4017, a refresh in flight re-keys under us)."""
        def quiet() -> bool:
            files = self.api("GET", f"{self.base}/redislog", log_type="run", limit="1000")
            return all(t["status"] != "running" for t in self.tasks()) and (
                files.status_code == 204 or all(f["status"] != "creating" for f in files.json()["file_list"]))
        wait_for(quiet, timeout=60, interval=0.05, what="the collections to finish")

    def collect(self) -> str:
        """A collection of today, run to its end; returns its task's id."""
        before = {t["id"] for t in self.tasks()}
        answer = self.api("POST", f"{self.base}/redislog", log_type="run")
        assert answer.status_code == 204, answer.text
        self.settle()
        [task] = [t for t in self.tasks() if t["id"] not in before]
        assert task["status"] == "succeed", task
        return task["id"]

    def link(self, link_format: str = "raw", api: int = 0, credential: Credential | None = None) -> dict:
        params = {"format": link_format} if link_format != "raw" else {}
        answer = self.api("POST", f"{self.base}/redislog/{self.file_id}/links", self.apis[api], credential, **params)
        assert answer.status_code == 200, answer.text
        made = answer.json()
        assert made["id"] == self.file_id and re.fullmatch(r"[0-9a-f]{32}", made["link_id"]), made
        return made

    def revoke_link(self, link_id: str | None, api: int) -> None:
        path = f"{self.base}/redislog/{self.file_id}/links" + (f"/{link_id}" if link_id else "")
        answer = self.api("DELETE", path, self.apis[api])
        assert answer.status_code == 204 and answer.content == b"", answer.text

    def stored_keys(self) -> set[str]:
        """The keys in the deployment's bucket (S3 only)."""
        store = self.env["DCSLOG_OBJECT_STORE"]
        s3 = boto3.client("s3", endpoint_url=store.split("endpoint=")[1].split("&")[0], region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
        listed = s3.list_objects_v2(Bucket=urlsplit(store).netloc).get("Contents", [])
        return {item["Key"] for item in listed}


@contextlib.contextmanager
def api_processes(env: dict[str, str], logs: Path) -> Iterator[list[str]]:
    ports = [free_port(), free_port()]
    commands = [["serve", "--port", str(ports[0])], ["serve", "--no-worker", "--port", str(ports[1])]]
    procs = []
    try:
        for n, command in enumerate(commands):
            with open(logs / f"api{n}.log", "wb") as log:
                procs.append(subprocess.Popen([*DCSLOG, *command], env=env, stdout=log, stderr=subprocess.STDOUT))
        apis = [f"http://127.0.0.1:{port}" for port in ports]
        for api, proc in zip(apis, procs, strict=True):
            wait_for(lambda api=api, proc=proc: proc.poll() is not None or answers(api), timeout=60,
                     what=f"{api} to answer")
            assert proc.poll() is None, f"{api} exited: see {logs}"
        yield apis
    finally:
        stop_processes(*procs)


@pytest.fixture(scope="module", params=["embedded", "postgres-s3"])
def deployment(request, tmp_path_factory, redis_available) -> Iterator[Deployment]:
    backend = request.param
    base = tmp_path_factory.mktemp(f"revocation-{backend}")
    settings = {"DCSLOG_DATA_DIR": str(base / "data"), "DCSLOG_HOST": "127.0.0.1", "DCSLOG_SERVER_KEY": SERVER_KEY,
                "DCSLOG_WORKER_POLL_INTERVAL": "0.2", "DCSLOG_SLOWLOG_INTERVAL": "3600"}
    if backend == "postgres-s3":
        postgres, s3 = request.getfixturevalue("postgres"), request.getfixturevalue("s3_server")
        settings |= {"DCSLOG_DATABASE_URL": postgres.create_database(),
                     "DCSLOG_OBJECT_STORE": s3.store_url(s3.create_bucket()),
                     "DCSLOG_S3_ACCESS_KEY_ID": "test", "DCSLOG_S3_SECRET_ACCESS_KEY": "test"}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DCSLOG_")}, **settings}
    nodes = NodeSet(base / "redis")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("DCSLOG_"):
                mp.delenv(name)
        for name, value in settings.items():
            mp.setenv(name, value)
        try:
            node = nodes.new("127.0.0.2")
            log_file = base / "redis.log"
            log_file.write_bytes(day_lines(today_utc(), LINES))
            cli_json("db", "upgrade")  # a new database: only serve and `db upgrade` make one
            with api_processes(env, base) as apis:
                d = Deployment(backend, env, apis)
                imported = d.cli("instances", "import", "--project-id", PROJECT, "--name", "revocation",
                                 "--redis", node.url, "--log-file", f"{node.address}={log_file}")
                d.instance_id = imported["instance_id"]
                token = d.cli("token", "create", "--project-id", PROJECT, "--name", "live")
                key = d.cli("credentials", "create", "--project-id", PROJECT, "--name", "live")
                d.token = Credential("live token", token=token["token"])
                d.key = Credential("live key", access_key=key["access_key"], secret_key=key["secret_key"])
                d.task_id = d.collect()
                [item] = d.api("GET", f"{d.base}/redislog", log_type="run").json()["file_list"]
                assert item["status"] == "succeed" and item["size"] == log_file.stat().st_size, item
                d.file_id, d.content = item["id"], log_file.read_bytes()
                try:
                    yield d
                finally:
                    d.client.close()
        finally:
            nodes.close()


# --- a revoked token or access key, on every endpoint --------------------------------------------------------


# Values for required query parameters, by name; each is checked against the parameter's schema. A new
# operation with a required parameter not here fails with a message saying to add it.
def _required_query_value(op: Operation, name: str, schema: dict) -> str:
    now_ms = int(time.time() * 1000)
    known = {"start_time": str(now_ms - 3_600_000), "end_time": str(now_ms)}
    value = schema["enum"][0] if "enum" in schema else known.get(name)
    if value is None or ("pattern" in schema and not re.search(schema["pattern"], value)):
        pytest.fail(f"{op.method} {op.path}: no valid value for its required query parameter {name!r} "
                    f"({schema}): add one to _required_query_value", pytrace=False)
    return str(value)


@dataclass(frozen=True)
class Form:
    """One way of asking an operation: its method (HEAD for a GET too), and a media type it answers in."""

    op: Operation
    method: str
    accept: str | None = None

    def headers(self, credential: Credential, url: str) -> dict[str, str]:
        return {**credential.headers(self.method, url), **({"Accept": self.accept} if self.accept else {})}

    @property
    def label(self) -> str:
        return f"{self.method} {self.op.path}" + (f" (Accept: {self.accept})" if self.accept else "")


def forms() -> list[Form]:
    """Every authenticated operation of the registry, with HEAD for each GET (the router adds it), and
    each other media type its success may come in (records as NDJSON, and as an event stream)."""
    out = []
    for op in registered():
        if op.role is None:
            continue
        out.append(Form(op, op.method))
        if op.method == "GET":
            out.append(Form(op, "HEAD"))
        for reply in op.ok.values():
            out.extend(Form(op, op.method, media_type) for media_type in (reply.also or {}))
    return out


def test_the_registry_is_what_is_served(deployment):
    """The operations walked below are all that is served with credentials: the application's router
    holds the registry's operations (and HEAD with each GET), the console's static pages and nothing
    else, and /openapi.json of a running process lists the same authenticated operations."""
    d = deployment
    registry = registered()
    declared = {(op.method, op.path) for op in registry} | {("HEAD", op.path) for op in registry if op.method == "GET"}
    routes = {(route.method, route.resource.canonical) for route in create_app(Settings()).router.routes()
              if route.resource is not None}
    assert {route for route in routes if not route[1].startswith("/console")} == declared
    document = httpx.get(f"{d.apis[1]}/openapi.json").json()
    served = {(method.upper(), path) for path, item in document["paths"].items() for method in item
              if method.upper() in ("GET", "POST", "PUT", "DELETE", "PATCH") and item[method].get("security") != []}
    walked = {(form.op.method, form.op.path) for form in forms()}
    assert served == walked, (served ^ walked)
    assert {op.path for op in registry if op.role is None} == {
        "/downloads/{token}", "/health", "/livez", "/metrics", "/openapi.json"}  # no credentials taken there
    assert len(walked) >= 19


class Requests:
    """Real requests for each form: the path filled with the deployment's real ids, the required query
    parameters with valid values. A DELETE of a task gets a task of its own each time (one per request
    that succeeds); a collection is asked only when none is running (else DCS.4017)."""

    def __init__(self, d: Deployment, victim_tasks: list[str], link_id: str):
        self.d, self.victim_tasks, self.link_id = d, victim_tasks, link_id

    def url(self, form: Form, api: str) -> str:
        op = form.op
        values = {"project_id": PROJECT, "instance_id": self.d.instance_id, "id": self.d.file_id,
                  "link_id": self.link_id, "task_id": self.d.task_id}
        if op.method == "DELETE" and "{task_id}" in op.path:
            values["task_id"] = self.victim_tasks.pop()
        # Revoking an access key or a token (the admin API): one made for the request each time.
        if "{access_key}" in op.path:
            values["access_key"] = self.d.cli("credentials", "create", "--project-id", PROJECT)["access_key"]
        if "{token_id}" in op.path:
            values["token_id"] = self.d.cli("token", "create", "--project-id", PROJECT)["id"]
        if op.method == "POST" and op.path.endswith("/redislog"):
            self.d.settle()

        def fill(match: re.Match) -> str:
            if match.group(1) not in values:
                pytest.fail(f"{op.method} {op.path}: no real value for the path parameter {{{match.group(1)}}}: "
                            "add one to Requests.url", pytrace=False)
            return values[match.group(1)]
        path = re.sub(r"{(\w+)}", fill, op.path)
        query = {p.name: _required_query_value(op, p.name, p.schema) for p in op.params
                 if p.location == "query" and p.required}
        if form.accept == EVENT_STREAM:
            assert any(p.name == "follow" for p in op.params), form.label
            query["follow"] = "true"
        return f"{api}{path}" + (f"?{urlencode(query)}" if query else "")


def test_a_revoked_token_and_key_are_refused_by_every_endpoint_on_every_process(deployment):
    d = deployment
    d.settle()
    doomed_token = d.cli("token", "create", "--project-id", PROJECT, "--name", "leaked token")
    doomed_key = d.cli("credentials", "create", "--project-id", PROJECT, "--name", "leaked key")
    token = Credential("revoked token", token=doomed_token["token"])
    key = Credential("revoked key", access_key=doomed_key["access_key"], secret_key=doomed_key["secret_key"])
    live = [d.token, d.key]
    forms_ = forms()
    # Each DELETE of a task that succeeds deletes one: a task each, collected now.
    deletes = sum(1 for form in forms_ if form.op.method == "DELETE" and "{task_id}" in form.op.path)
    victims = [d.collect() for _ in range(deletes * len(d.apis) * len(live))]
    requests = Requests(d, victims, d.link()["link_id"])

    # Every process has used the two, and (SQLite) holds them, the instance and the file in its read cache.
    warm = [f"/v2/{PROJECT}/instances", d.base, f"{d.base}/redislog?log_type=run"]
    for api in d.apis:
        for credential in (token, key, *live):
            for path in warm:
                url = api + path
                answer = d.client.get(url, headers=credential.headers("GET", url))
                assert answer.status_code == 200, (credential.name, url, answer.text)

    # Revoked by the CLI in a process of its own; the very next request on each process is refused.
    d.run_cli("token", "revoke", "--project-id", PROJECT, doomed_token["id"])
    for api in d.apis:
        url = api + d.base
        assert_revoked_credential(call(d.client, "GET", url, token.headers("GET", url)), "GET", f"{api}: token")
        assert d.client.get(url, headers=key.headers("GET", url)).status_code == 200  # not revoked yet
    d.run_cli("credentials", "revoke", "--project-id", PROJECT, doomed_key["access_key"])
    for api in d.apis:
        url = api + d.base
        assert_revoked_credential(call(d.client, "GET", url, key.headers("GET", url)), "GET", f"{api}: key")
        for credential in live:
            assert d.client.get(url, headers=credential.headers("GET", url)).status_code == 200

    # Every operation, every form, on every process: refused with the revoked ones; the same request
    # with a live token or key gets past authentication to what the operation answers on success.
    for form in forms_:
        ok = set(form.op.ok)
        for api in d.apis:
            for credential in live:
                url = requests.url(form, api)
                what = f"{form.label} on {api}"
                for revoked in (token, key):
                    assert_revoked_credential(call(d.client, form.method, url, form.headers(revoked, url)),
                                              form.method, f"{what}: {revoked.name}")
                answer = call(d.client, form.method, url, form.headers(credential, url))
                assert answer.status in ok, (f"{what}: {credential.name}", answer.status, answer.body[:300])
                if form.accept is not None:
                    assert answer.headers["content-type"].startswith(form.accept), (what, answer.headers)
    assert not victims  # each was deleted by a request that succeeded
    d.settle()

    # Nothing was done in their name: the audit trail holds no action of either (and holds the live ones').
    trail = {actor: d.api("GET", f"/v2/{PROJECT}/audit", actor=actor, limit="1000").json()
             for actor in (doomed_token["id"], doomed_key["access_key"], d.key.access_key)}
    assert trail[doomed_token["id"]] == trail[doomed_key["access_key"]] == {"total_num": 0, "records": []}
    assert {r["action"] for r in trail[str(d.key.access_key)]["records"]} >= {
        "runlog.collect", "link.create", "link.revoke", "task.delete"}


# --- a revoked link, on every link-served path ---------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    """One request to a link: method, headers, and what a link that is not revoked answers."""

    name: str
    method: str
    headers: dict[str, str]
    status: int | tuple[int, ...]
    body: bytes | None = None  # the exact body expected, when known


def raw_asks(content: bytes, etag: str, last_modified: str) -> list[Ask]:
    """A dcslog raw link (SPEC §2 "Download"; RFC 9110 for the conditions)."""
    return [Ask("GET", "GET", {}, 200, content),
            Ask("HEAD", "HEAD", {}, 200, b""),
            Ask("Range", "GET", {"Range": "bytes=0-9"}, 206, content[:10]),
            Ask("resumed Range", "GET", {"Range": "bytes=10-", "If-Range": etag}, 206, content[10:]),
            Ask("If-None-Match", "GET", {"If-None-Match": etag}, 304, b""),
            Ask("If-Modified-Since", "GET", {"If-Modified-Since": last_modified}, 304, b""),
            Ask("If-Match", "GET", {"If-Match": etag}, 200, content),
            Ask("If-Unmodified-Since", "GET", {"If-Unmodified-Since": last_modified}, 200, content),
            # RFC 9110 §14.2 defines ranges for GET alone (a HEAD's Range is to be ignored: 200); dcslog
            # answers 206, as aiohttp's FileResponse does. Either is a served link here.
            Ask("HEAD with Range", "HEAD", {"Range": "bytes=0-9"}, (200, 206), b"")]


def records_asks() -> list[Ask]:
    """A records link (its documented answers: the whole body for a Range, 304 for If-None-Match: *)."""
    return [Ask("GET", "GET", {}, 200),
            Ask("HEAD", "HEAD", {}, 200, b""),
            Ask("Range", "GET", {"Range": "bytes=0-9"}, 200),
            Ask("If-None-Match", "GET", {"If-None-Match": "*"}, 304, b""),
            Ask("If-Match", "GET", {"If-Match": "*"}, 200)]


def presigned_asks(content: bytes) -> list[Ask]:
    """The store's presigned URL of a raw link on S3 (for GET alone)."""
    return [Ask("GET", "GET", {}, 200, content), Ask("Range", "GET", {"Range": "bytes=0-9"}, 206, content[:10])]


class Links:
    """Links of the deployment's file, and every way of asking each on every process."""

    def __init__(self, d: Deployment):
        self.d = d
        self.d.settle()
        probe = d.link()  # the validators every raw ask uses (the same on every process: the content's)
        if d.on_s3:
            self.etag = self.last_modified = ""
        else:
            head = httpx.head(probe["link"])
            self.etag, self.last_modified = head.headers["etag"], head.headers["last-modified"]

    def urls(self, made: dict) -> list[str]:
        """The link as each API process serves it (dcslog's), or the store's presigned URL."""
        parts = urlsplit(made["link"])
        if not parts.path.startswith("/downloads/"):
            return [made["link"]]
        return [f"{api}{parts.path}" + (f"?{parts.query}" if parts.query else "") for api in self.d.apis]

    def asks(self, made: dict) -> list[Ask]:
        if "format=ndjson" in made["link"]:
            return records_asks()
        if self.d.on_s3:
            return presigned_asks(self.d.content)
        return raw_asks(self.d.content, self.etag, self.last_modified)

    def served(self, *links: dict) -> None:
        for made in links:
            for url in self.urls(made):
                for ask in self.asks(made):
                    answer = self.d.client.request(ask.method, url, headers=ask.headers)
                    what = (ask.name, url, answer.status_code, answer.text[:200])
                    assert answer.status_code in (ask.status if isinstance(ask.status, tuple) else (ask.status,)), what
                    if ask.body is not None:
                        assert answer.content == ask.body, what
                    if "format=ndjson" in url and ask.status == 200 and ask.method == "GET":
                        assert answer.headers["content-type"].startswith(NDJSON), what
                        lines = [json.loads(line) for line in answer.content.splitlines()]
                        assert len(lines) == LINES and lines[0]["message"].startswith("entry 0 of"), what

    def refused(self, *links: dict) -> None:
        """Every ask of every link refused on every process, within WITHIN seconds of now (the first
        GET of each URL polled until then), then each ask refused."""
        urls = [(made, url) for made in links for url in self.urls(made)]
        deadline = time.monotonic() + WITHIN
        for _, url in urls:
            while self.d.client.get(url).status_code == 200:
                assert time.monotonic() < deadline, f"{url} still served {WITHIN} s after the revocation"
                time.sleep(0.02)
        for made, url in urls:
            for ask in self.asks(made):
                answer = self.d.client.request(ask.method, url, headers=ask.headers)
                what = (ask.name, url, answer.status_code, answer.text[:200])
                if url.startswith(tuple(self.d.apis)):
                    assert answer.status_code == 403, what
                    if ask.method != "HEAD":
                        assert answer.headers["content-type"] == JSON_TYPE and answer.json() == LINK_REVOKED, what
                else:  # the store's URL: the store's own error, never the bytes
                    assert answer.status_code in STORE_REFUSES and answer.content.startswith(b"<?xml"), what
                    assert self.d.content[:40] not in answer.content, what


def test_a_link_revoked_by_its_id_is_refused_on_every_path_and_process(deployment):
    d = deployment
    links = Links(d)
    # Made on either process, with a token or an access key.
    raw = [d.link(), d.link(api=1, credential=d.key)]
    records = [d.link("ndjson", api=1), d.link("ndjson", credential=d.key)]
    links.served(*raw, *records)

    # One records link revoked on the second process: refused on both, the other links serve.
    d.revoke_link(records[0]["link_id"], api=1)
    links.refused(records[0])
    links.served(records[1], *raw)

    # One raw link revoked on the first process.
    keys = d.stored_keys() if d.on_s3 else set()
    d.revoke_link(raw[0]["link_id"], api=0)
    if d.on_s3:
        # The store's URL cannot be refused alone: the object is re-keyed, which ends every raw link
        # of the file made before (docs/api.md); the records link, dcslog's, serves on.
        links.refused(*raw)
        after = d.stored_keys()
        assert len(keys) == len(after) == 1 and keys != after, (keys, after)
    else:
        links.refused(raw[0])
        links.served(raw[1])
    links.served(records[1], d.link(), d.link("ndjson", api=1))  # links made after serve


def test_all_links_revoked_are_refused_on_every_path_and_process(deployment):
    d = deployment
    links = Links(d)
    made = [d.link(), d.link(api=1, credential=d.key), d.link("ndjson"), d.link("ndjson", api=1)]
    links.served(*made)
    keys = d.stored_keys() if d.on_s3 else set()
    d.revoke_link(None, api=1)
    links.refused(*made)
    if d.on_s3:
        after = d.stored_keys()
        assert len(keys) == len(after) == 1 and keys != after, (keys, after)
    links.served(d.link(), d.link(api=1), d.link("ndjson"), d.link("ndjson", api=1, credential=d.key))
