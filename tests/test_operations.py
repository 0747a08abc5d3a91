"""Operations are declared once (``api/operations.py``): what the declarations say is what the service does.

In-process tests of parameter reading (no server: a stand-in context), of the declaration
checks that fail at import, and, against a live server, of the order of the checks.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiohttp import web
from multidict import MultiDict

from dcslog import errors
from dcslog.api.operations import OPERATIONS, DeclarationError, Operation, Reply, operation, registered
from dcslog.api.params import LIMIT, OFFSET, integer, text

UNKNOWN_INSTANCE = "3f1d2c4e-0000-4000-8000-000000000000"
INSTANCE = "/v2/{project_id}/instances/{instance_id}"


def _operation(name: str) -> Operation:
    return next(op for op in registered() if op.name == name)


class _Session:
    """Answers the one look-up a parameter check makes (ListSlowlog's replication_id): no such node."""

    async def scalar(self, statement: Any) -> None:
        return None


def _read(name: str, query: dict[str, str] | None = None, **path: str) -> dict[str, Any]:
    op = _operation(name)
    assert op.read_arguments is not None
    ctx = SimpleNamespace(request=SimpleNamespace(query=MultiDict(query or {}), match_info=path),
                          session=_Session(), instance=SimpleNamespace(id=UNKNOWN_INSTANCE))
    return asyncio.run(op.read_arguments(ctx))  # type: ignore[arg-type]


def _refused(name: str, query: dict[str, str]) -> errors.DcsError:
    with pytest.raises(errors.DcsError) as refused:
        _read(name, query)
    return refused.value


def test_values_and_defaults():
    assert _read("list_redislog", {"log_type": "run"}) == {"log_type": "run", "offset": 0, "limit": 10}
    assert _read("create_redislog", {"log_type": "run", "query_time": "7", "replication_id": ""}) == \
        {"log_type": "run", "query_time": 7, "replication_id": None}
    assert _read("list_background_task", {"start_time": "20261205143000", "limit": "1000"}) == \
        {"start_time": datetime(2026, 12, 5, 14, 30), "end_time": None, "offset": 0, "limit": 1000}
    assert _read("list_slowlog", {"start_time": "1", "end_time": "2", "min_duration": "0.5"}) == {
        "start_time": 1, "end_time": 2, "offset": 0, "limit": 10, "sort_key": "start_time", "sort_dir": "desc",
        "role": "server", "replication_id": None, "command": None, "min_duration": "0.5"}
    assert _read("create_redislog_download_link", id="f1") == {"file_id": "f1", "link_format": "raw"}
    assert _read("create_redislog_download_link", {"format": "ndjson"}, id="f1") == \
        {"file_id": "f1", "link_format": "ndjson"}


HINTS = [
    ("list_redislog", {}, "log_type", "log_type is required: one of run."),
    ("list_redislog", {"log_type": "slow"}, "log_type", "log_type must be one of run."),
    ("list_redislog", {"log_type": "run", "offset": "-1"}, "offset", "offset must be an integer from 0 to 2147483647."),
    ("list_redislog", {"log_type": "run", "limit": "1_0"}, "limit", "limit must be an integer from 1 to 1000."),
    ("create_redislog", {"log_type": "run", "query_time": "2"}, "query_time", "query_time must be one of 0, 1, 3, 7."),
    ("list_instances", {"limit": "٥"}, "limit", "limit must be an integer from 1 to 1000."),
    ("list_slowlog", {"end_time": "1"}, "start_time",
     "start_time is required: milliseconds since the epoch (UTC), e.g. 1764576000000."),
    ("list_slowlog", {"start_time": "1", "end_time": "x"}, "end_time",
     "end_time is required: milliseconds since the epoch (UTC), e.g. 1764576000000."),
    ("list_slowlog", {"start_time": "1", "end_time": "2", "sort_dir": "up"}, "sort_dir",
     "sort_dir must be one of desc, asc."),
    ("list_slowlog", {"start_time": "1", "end_time": "2", "command": "GET KEY"}, "command",
     "command must be a command name: 1 to 64 of A-Z a-z 0-9 _ | . -"),
    ("list_slowlog", {"start_time": "1", "end_time": "2", "min_duration": "1.2345"}, "min_duration",
     "min_duration must be milliseconds with at most 3 decimals, e.g. 10 or 0.5."),
    ("list_background_task", {"start_time": "202611270000"}, "start_time",
     "start_time must be yyyyMMddHHmmss in UTC, e.g. 20261205143000."),
    ("list_background_task", {"end_time": "20261332000000"}, "end_time",
     "end_time must be yyyyMMddHHmmss in UTC, e.g. 20261205143000."),
]


@pytest.mark.parametrize("name,query,param,hint", HINTS, ids=[f"{h[0]}-{h[2]}-{i}" for i, h in enumerate(HINTS)])
def test_a_bad_value_says_what_would_be_accepted(name, query, param, hint):
    error = _refused(name, query)
    assert (error.status, error.error_code) == (400, "DCS.4800")
    assert error.error_msg == f"Invalid {param} in the request." and error.error_ext_msg == hint


def test_the_first_bad_parameter_answers():
    assert _refused("list_redislog", {"log_type": "x", "limit": "0"}).error_msg == "Invalid log_type in the request."
    # The node is looked up where it is declared: before command and min_duration are read.
    error = _refused("list_slowlog", {"start_time": "1", "end_time": "2", "replication_id": "nope", "command": "a b"})
    assert error.error_msg == "Invalid replication_id in the request." and "ListGroupReplicationInfo" in \
        error.error_ext_msg


@pytest.mark.parametrize("name,start,end", [("list_slowlog", "2", "1"),
                                            ("list_background_task", "20261127000000", "20261126000000")])
def test_a_reversed_range_answers_as_soon_as_both_ends_are_read(name, start, end):
    error = _refused(name, {"start_time": start, "end_time": end, "offset": "-1"})
    assert (error.status, error.error_code) == (400, "DCS.4025")
    assert _read(name, {"start_time": start, "end_time": start})["end_time"] is not None


def test_every_parameter_is_documented_as_it_is_read():
    """The document's parameters are the declared ones; what a parameter can answer is declared by its operation."""
    from dcslog.api.openapi import document

    for op in registered():
        spec = document()["paths"][op.path][op.method.lower()]
        names = [p["name"] for p in spec["parameters"] if "name" in p]
        assert names[:len(op.params)] == [p.name for p in op.params]
        if op.role is not None:
            codes = spec["responses"]["400"]["content"]["application/json"]["schema"]["properties"]["error_code"]
            assert set(codes["enum"]) >= {code for p in op.params for code in p.codes}


# -- declarations that cannot be right fail at import ------------------------------------------------------------

async def _handler(ctx: Any, offset: int, limit: int) -> web.Response:
    return web.Response()


MISTAKES = [
    ("a 400 it can answer is not declared", dict(errors=["DCS.4002"])),
    ("a role that does not exist", dict(role="root")),
    ("the handler does not take its parameters", dict(params=[OFFSET])),
    ("the same parameter twice", dict(params=[OFFSET, OFFSET])),
    ("an undeclared path parameter", dict(path="/v2/{project_id}/things/{thing_id}")),
    ("not_before names a later parameter", dict(params=[text("a", not_before="b"), text("b")])),
    ("an unknown response schema", dict(ok={200: "NoSuchSchema"})),
    ("a public operation with a query parameter", dict(role=None, path="/things")),
    ("a path and method declared twice", dict(path="/v2/{project_id}/instances")),
]


@pytest.mark.parametrize("what,change", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_wrong_declaration_is_refused(what, change):
    declaration: dict[str, Any] = dict(method="GET", path="/v2/{project_id}/things", role="viewer", summary="x",
                                       params=[OFFSET, LIMIT], ok={200: Reply(None)}, errors=["DCS.4800", "DCS.4002"])
    declaration.update(change)
    registered()  # every real declaration first
    before = len(OPERATIONS)
    with pytest.raises(DeclarationError):
        operation(declaration.pop("method"), declaration.pop("path"), **declaration)(_handler)
    assert len(OPERATIONS) == before  # nothing registered


def test_integer_hint_is_built_with_the_parameter():
    assert integer("n", 1, minimum=2).hint == "n must be an integer from 2 to 2147483647."


# -- through a live server: the order of the checks, HEAD and 405 ------------------------------------------------

@pytest.fixture
def live(dcslog_server):
    tokens = {role: dcslog_server.cli("token", "create", "--project-id", "proj-a", "--role", role)["token"]
              for role in ("viewer", "admin")}

    def call(method: str, path: str, role: str | None = "admin", **kwargs: Any) -> httpx.Response:
        headers = {"X-Auth-Token": tokens[role]} if role else {}
        return httpx.request(method, dcslog_server.url + path, headers=headers, **kwargs)
    return call


CHECK_ORDER = [
    # auth → project → role → instance → parameters: each case is wrong at every later step too
    ("credentials first", None, "/v2/proj!a/instances/nope/redislog", 401, "DCS.1003"),
    ("then the project id", "viewer", "/v2/proj!a/instances/nope/redislog", 400, "DCS.4002"),
    ("then the project", "viewer", "/v2/proj-b/instances/nope/redislog", 401, "DCS.1004"),
    ("then the role", "viewer", f"/v2/proj-a/instances/{UNKNOWN_INSTANCE}/redislog", 403, "DCS.2003"),
    ("then the instance id", "admin", "/v2/proj-a/instances/nope/redislog", 400, "DCS.4061"),
    ("then the instance", "admin", f"/v2/proj-a/instances/{UNKNOWN_INSTANCE}/redislog", 404, "DCS.3022"),
]


@pytest.mark.parametrize("what,role,path,status,code", CHECK_ORDER, ids=[c[0] for c in CHECK_ORDER])
def test_checks_come_in_dcs_order(live, what, role, path, status, code):
    response = live("POST", path, role, params={"log_type": "nope", "query_time": "2"})
    assert (response.status_code, response.json()["error_code"]) == (status, code), response.text


def test_parameters_come_last(live):
    response = live("GET", "/v2/proj-a/instances", params={"limit": "0"})
    assert response.status_code == 400 and response.json()["error_msg"] == "Invalid limit in the request."


def test_every_get_answers_head_and_other_methods_get_405_with_allow(live):
    for op in registered():
        if op.method != "GET" or "{" in op.path.removeprefix("/v2/{project_id}"):
            continue
        path = op.path.replace("{project_id}", "proj-a")
        head = live("HEAD", path)
        assert head.status_code == live("GET", path).status_code and head.content == b"", path
    response = live("DELETE", f"/v2/proj-a/instances/{UNKNOWN_INSTANCE}/redislog")
    assert response.status_code == 405 and response.json()["error_code"] == "DCS.4001"
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "HEAD", "POST"}
