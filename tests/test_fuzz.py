"""Fuzzing: schemathesis against the service's own OpenAPI document (``GET /openapi.json``).

Every operation, against a live server with a real imported instance, once with
a valid admin token and once without credentials (nothing, or garbage that
schemathesis makes up for the two security schemes). Checks: no 5xx, every
status documented, every content type documented, every body and header as the
document says (so every error is the DCS envelope with one of the codes the
document lists for that status), plus an envelope check that does not trust
the document. Bounded and seeded: the same requests every run.

Path parameters (and ``replication_id``, ``Range``) are drawn half from what
schemathesis generates and half from the real project, instance, replica, file
and download token, so that requests get past authentication and the 404s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dcslog.api.openapi import document
from dcslog.api.operations import registered
from dcslog.api.routes import add_routes
from dcslog.httpserver import MAX_HEADERS, MAX_URL
from dcslog.testing.waiting import wait_for

PROJECT = "proj-a"
MAX_EXAMPLES = 30
SEED = 20261127


@dataclass
class Target:
    url: str
    token: str
    instance_id: str
    replication_id: str
    file_id: str
    download_token: str
    etag: str


@pytest.fixture
def fuzz_target(dcslog_server, redis_standalone) -> Target:
    """A live server with one imported instance, a collected file, a link to it and harvested slow-log entries."""
    token = dcslog_server.cli("token", "create", "--project-id", PROJECT)["token"]
    instance = dcslog_server.import_instance(redis_standalone.url, PROJECT)
    instance_id = instance["instance_id"]
    replication_id = instance["group_list"][0]["replication_list"][0]["replication_id"]
    headers = {"X-Auth-Token": token}
    base = f"{dcslog_server.url}/v2/{PROJECT}/instances/{instance_id}"

    client = redis_standalone.client()
    client.config_set("slowlog-log-slower-than", 0)
    for i in range(5):
        client.set(f"key:{i}", "value")
    client.config_set("slowlog-log-slower-than", 10000)
    dcslog_server.harvest()

    response = httpx.post(f"{base}/redislog", params={"log_type": "run"}, headers=headers)
    assert response.status_code == 204, response.text

    def collected():
        response = httpx.get(f"{base}/redislog", params={"log_type": "run"}, headers=headers)
        files = response.json()["file_list"] if response.status_code == 200 else []
        return files if files and all(f["status"] == "succeed" for f in files) else None
    file_id = wait_for(collected, what="the collection")[0]["id"]
    link = httpx.post(f"{base}/redislog/{file_id}/links", headers=headers).json()["link"]
    etag = httpx.head(link).headers["ETag"]
    return Target(dcslog_server.url, token, instance_id, replication_id, file_id, link.rsplit("/", 1)[1], etag)


_CURRENT: list[Target] = []  # the running target: strategies are built at collection, drawn while it runs


def _current() -> Target:
    return _CURRENT[-1]


@pytest.fixture
def target(fuzz_target) -> Target:
    _CURRENT.append(fuzz_target)
    yield fuzz_target
    _CURRENT.remove(fuzz_target)


def _real(name: str):
    """A strategy for a real value of the running target, read when drawn."""
    return st.just(name).map(lambda attribute: getattr(_current(), attribute))


def _half_real(strategy, real: dict, declared):
    """``strategy``'s dicts with each declared key of ``real``, half of the time, set to the real value."""
    names = [name for name in real if name in {parameter.name for parameter in declared}]
    if strategy is None or not names:
        return strategy
    keep = st.fixed_dictionaries({name: st.booleans() for name in names})
    values = st.fixed_dictionaries({name: real[name] for name in names})

    def merge(drawn):
        generated, keep, values = drawn
        if not isinstance(generated, dict):  # negative mode may make the container itself invalid
            return generated
        return {**generated, **{name: value for name, value in values.items() if not keep[name]}}
    return st.tuples(strategy, keep, values).map(merge)


def _schema(*, with_security_parameters: bool, codec: str = "utf-8"):
    config = SchemathesisConfig.from_dict({
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "codec": codec,
                       "with-security-parameters": with_security_parameters},
        "phases": {"stateful": {"enabled": False}},
    })
    schema = schemathesis.openapi.from_dict(document(), config=config)

    @schema.hook
    def before_generate_path_parameters(context, strategy):
        return _half_real(strategy, {"project_id": st.just(PROJECT), "instance_id": _real("instance_id"),
                                     "id": _real("file_id"), "token": _real("download_token")},
                          context.operation.path_parameters)

    @schema.hook
    def before_generate_query(context, strategy):
        return _half_real(strategy, {"replication_id": _real("replication_id")}, context.operation.query)

    @schema.hook
    def before_generate_headers(context, strategy):
        return _half_real(strategy, {
            "Range": st.sampled_from(["bytes=0-9", "bytes=-5", "bytes=5-", "bytes=9-2", "bytes=0-0,3-4",
                                      "bytes=999999-"]),
            "If-Match": st.one_of(_real("etag"), st.just('"nope"')),
            "If-None-Match": _real("etag"),
            "If-Range": _real("etag"),
        }, context.operation.headers)

    return schema


def _real_in_coverage(case, target: Target) -> None:
    """The coverage phase (boundary and invalid values, one parameter at a time) bypasses the generation hooks:
    give every other path parameter, and replication_id, its real value so the varied one is what gets judged."""
    if case.meta is None or case.meta.phase.name != TestPhase.COVERAGE:
        return
    varied = case.meta.phase.data.parameter
    real = {"project_id": PROJECT, "instance_id": target.instance_id, "id": target.file_id,
            "token": target.download_token}
    for name, value in real.items():
        if case.path_parameters and name in case.path_parameters and name != varied:
            case.path_parameters[name] = value
    if isinstance(case.query, dict) and "replication_id" in case.query and varied != "replication_id":
        case.query["replication_id"] = target.replication_id


def dcs_envelope(ctx, response, case):
    """Every error is the DCS envelope, whatever the document says (HEAD answers carry no body)."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return None
    assert response.headers.get("content-type") == ["application/json;charset=UTF-8"], response.headers
    body = json.loads(response.content)
    assert set(body) == {"error_code", "error_msg", "error_ext_msg"}, body
    assert body["error_code"].startswith("DCS.") and body["error_msg"], body
    assert body["error_ext_msg"] is None or isinstance(body["error_ext_msg"], str), body
    assert "Traceback" not in response.text
    return None


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, dcs_envelope]
FUZZ_SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))

# One pytest item per operation and credential mode, each against its own live server.
with_token = _schema(with_security_parameters=False)
# Nothing, or garbage X-Auth-Token/Authorization; header values from all of Latin-1 (what requests can send).
without_credentials = _schema(with_security_parameters=True, codec="latin-1")


@with_token.parametrize()
@FUZZ_SETTINGS
def test_fuzz_with_admin_token(case, target):
    _real_in_coverage(case, target)
    headers = {} if case.path.startswith("/downloads/") else {"X-Auth-Token": target.token}
    case.call_and_validate(base_url=target.url, headers=headers, checks=CHECKS, timeout=30)


@without_credentials.parametrize()
@FUZZ_SETTINGS
def test_fuzz_without_credentials(case, target):
    _real_in_coverage(case, target)
    case.call_and_validate(base_url=target.url, checks=CHECKS, timeout=30)


# -- the document itself ----------------------------------------------------------------------------------------

def test_document_lists_exactly_the_routes():
    """The router and the document come from the same declarations; this keeps it so."""
    documented = {(method.upper(), path) for path, operations in document()["paths"].items() for method in operations}
    app = web.Application()
    add_routes(app)
    routed = {(route.method, route.resource.canonical) for route in app.router.routes()}
    # Every GET also answers HEAD; the document names HEAD where it matters (downloads).
    heads = {("HEAD", op.path) for op in registered() if op.method == "GET" and not op.document_head}
    assert routed == documented | heads
    assert {(op.method, op.path) for op in registered()} == {m_p for m_p in documented if m_p[0] != "HEAD"}


@pytest.mark.parametrize("path,method", [("/v2/{project_id}/instances", "GET"), ("/downloads/{token}", "GET"),
                                         ("/health", "GET")])
def test_middleware_limits_are_documented(target, path, method):
    """The 414/431 the middleware answers on any route (the fuzzer does not make URLs or headers that big)."""
    operation = with_token[path][method]
    case = operation.Case(path_parameters={"project_id": PROJECT, "token": target.download_token},
                          query={"pad": "a" * (MAX_URL + 1)})
    response = case.call_and_validate(base_url=target.url, checks=CHECKS, headers={"X-Auth-Token": target.token})
    assert response.status_code == 414
    case = operation.Case(path_parameters={"project_id": PROJECT, "token": target.download_token},
                          headers={"X-Pad": "a" * (MAX_HEADERS + 1)})
    response = case.call_and_validate(base_url=target.url, checks=CHECKS, headers={"X-Auth-Token": target.token})
    assert response.status_code == 431


def test_document_is_served(dcslog_server):
    response = httpx.get(f"{dcslog_server.url}/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json;charset=UTF-8"
    assert response.json() == json.loads(json.dumps(document()))
    assert response.headers["x-request-id"]
