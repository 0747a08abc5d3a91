"""The OpenAPI 3.0 document, written from the declarations (``operations.registered()``) and the
component schemas (``schemas.SCHEMAS``), served at ``GET /openapi.json``.

Nothing here describes an endpoint: parameters are documented as they are read, statuses as
the declaration and the operation's kind (DCS or public) answer them. What this module adds is
what every operation of a kind shares: the path parameters and headers the framework reads, the
errors it answers before the handler runs, the security schemes, the DCS error envelope.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web

from dcslog.api.operations import JSON, Fail, Operation, Reply, operation, registered
from dcslog.api.params import JSON_CONTENT_TYPE, anchored
from dcslog.api.schemas import SCHEMAS, UUID_PATTERN, Schema, ref, string
from dcslog.services.common import PROJECT_ID

REQUEST_ID_HEADER = {"X-Request-Id": {
    "description": "The request id (the caller's own X-Request-Id when it sent a tame one).",
    "required": True, "schema": string(minLength=1)}}

# Read by the framework (dcs_route, the signer, the middleware), not declared by operations.
PARAMETERS: dict[str, dict[str, Any]] = {
    "project_id": {"name": "project_id", "in": "path", "required": True,
                   "description": "1-64 of [A-Za-z0-9_-] (else 400 DCS.4002)",
                   "schema": string(pattern=anchored(PROJECT_ID.pattern))},
    "instance_id": {"name": "instance_id", "in": "path", "required": True,
                    "description": "a UUID (else 400 DCS.4061)",
                    "schema": string(format="uuid", pattern=UUID_PATTERN)},
    "X-Sdk-Date": {"name": "X-Sdk-Date", "in": "header", "required": False,
                   "description": "with SDK-HMAC-SHA256 signing: the signing time, within ±15 min of the server clock",
                   "schema": string(pattern="^[0-9]{8}T[0-9]{6}Z$")},
    "X-Request-Id": {"name": "X-Request-Id", "in": "header", "required": False,
                     "description": "echoed back when it is 1-128 of [A-Za-z0-9._-], else replaced",
                     "schema": string()},
}

SECURITY_SCHEMES = {
    "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
              "description": "a token from `dcslog token create` (24 h)"},
    "sdk_hmac_sha256": {"type": "apiKey", "in": "header", "name": "Authorization",
                        "description": "`SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`, signed as the "
                                       "official SDKs sign (SignedHeaders must include host and x-sdk-date; send "
                                       "X-Sdk-Date)"},
}


def _p(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


# -- errors every operation of a kind answers, in the order they are checked --------------------------------------

ROUTE_NOT_FOUND = "DCS.4001"  # a path parameter that makes the URL no route's (e.g. "." or "..")
# What the envelope middleware answers on any route before the handler runs (MAX_URL, MAX_HEADERS).
LIMITS = (Fail(414, "URL over 8 KiB", ("DCS.4800",)), Fail(431, "Request headers over 16 KiB", ("DCS.4800",)))
INTERNAL = Fail(500, "Unexpected failure (logged with the request id)", ("DCS.5000",))


def _dcs_fails(op: Operation) -> list[Fail]:
    return [
        *([Fail(400, "Invalid parameter", op.bad_request)] if op.bad_request else []),
        Fail(401, "Unauthorized: no, bad or expired credentials, or another project in the path",
             ("DCS.1001", "DCS.1002", "DCS.1003", "DCS.1004")),
        Fail(403, "The credential's role may not perform this operation", ("DCS.2003",)),
        Fail(404, "Not found", (("DCS.3022",) if op.with_instance else ()) + (ROUTE_NOT_FOUND,)),
        Fail(413, "Request body over 64 KiB (no endpoint takes a body)", ("DCS.4800",)),
    ]


def _fails(op: Operation) -> list[Fail]:
    """The operation's error answers by status: its kind's, then its own (a status both have gets both's codes)."""
    by_status: dict[int, Fail] = {}
    for fail in [*(_dcs_fails(op) if op.role is not None else []), *LIMITS, INTERNAL, *op.fails]:
        if fail.status in by_status:
            known = by_status[fail.status]
            codes = known.codes + tuple(code for code in fail.codes if code not in known.codes)
            fail = Fail(fail.status, fail.description, codes, {**(known.headers or {}), **(fail.headers or {})})
        by_status[fail.status] = fail
    return sorted(by_status.values(), key=lambda fail: fail.status)


# -- responses ----------------------------------------------------------------------------------------------------

def _headers(extra: Mapping[str, Schema] | None) -> dict[str, Any]:
    return {**REQUEST_ID_HEADER, **(extra or {})}


def _ok(status: int, reply: Reply) -> dict[str, Any]:
    response: dict[str, Any] = {"description": reply.description or HTTPStatus(status).phrase,
                                "headers": _headers(reply.headers)}
    if reply.schema is not None:
        schema = ref(reply.schema) if isinstance(reply.schema, str) else reply.schema
        response["content"] = {reply.media_type: {"schema": schema}}
        response["content"].update({media: {"schema": other} for media, other in (reply.also or {}).items()})
    return response


def _error(fail: Fail) -> dict[str, Any]:
    error = SCHEMAS["Error"]
    return {"description": f"{fail.description} ({', '.join(fail.codes)})", "headers": _headers(fail.headers),
            "content": {JSON: {"schema": {**error, "properties": {
                **error["properties"], "error_code": string(enum=list(fail.codes))}}}}}


# -- operations ---------------------------------------------------------------------------------------------------

def _operation(op: Operation) -> dict[str, Any]:
    declared = [param.openapi() for param in op.params]
    headers = [{"name": h.name, "in": "header", "required": False, "schema": string(), "description": h.description}
               for h in op.headers]
    if op.role is not None:
        framework = [_p("project_id")] + ([_p("instance_id")] if op.with_instance else [])
        parameters = framework + declared + headers + [_p("X-Sdk-Date"), _p("X-Request-Id")]
        security: list[dict[str, list[str]]] = [{"token": []}, {"sdk_hmac_sha256": []}]
        description: str | None = f"Role: {op.role} or above." + (f" {op.description}" if op.description else "")
    else:
        parameters, security, description = declared + headers + [_p("X-Request-Id")], [], op.description
    spec: dict[str, Any] = {"operationId": op.name, "summary": op.summary}
    if description:
        spec["description"] = description
    spec.update({
        "tags": [op.tag], "security": security, "parameters": parameters,
        "responses": {str(status): _ok(status, reply) for status, reply in sorted(op.ok.items())}
        | {str(fail.status): _error(fail) for fail in _fails(op)},
    })
    return spec


def _head(get: dict[str, Any]) -> dict[str, Any]:
    """The HEAD of a GET: the same answers without their bodies."""
    responses = {status: {k: v for k, v in response.items() if k != "content"}
                 for status, response in get["responses"].items()}
    return {**get, "operationId": f"{get['operationId']}_head", "summary": f"{get['summary']} (HEAD: headers only)",
            "responses": responses}


def _tags(operations: Iterable[Operation]) -> list[dict[str, str]]:
    return [{"name": tag} for tag in dict.fromkeys(op.tag for op in operations)]


@functools.cache
def document() -> dict[str, Any]:
    operations = registered()
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        spec = _operation(op)
        paths.setdefault(op.path, {})[op.method.lower()] = spec
        if op.document_head:
            paths[op.path]["head"] = _head(spec)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "dcslog",
            "version": "0.1.0",
            "description": "The Log Management part of the Huawei Cloud / Open Telekom Cloud DCS v2 API, on "
                           "self-run Redis. JSON bodies are sent as application/json;charset=UTF-8; every non-2xx "
                           "response carries the DCS error envelope. See docs/api.md.",
        },
        "tags": _tags(operations),
        "paths": paths,
        "components": {"schemas": SCHEMAS, "parameters": PARAMETERS, "securitySchemes": SECURITY_SCHEMES},
    }


@functools.cache
def _document_bytes() -> bytes:
    return json.dumps(document(), separators=(",", ":")).encode()


@operation("GET", "/openapi.json", role=None, tag="operations", summary="This document",
           ok={200: Reply({"type": "object"}, "The OpenAPI document")})
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), headers={"Content-Type": JSON_CONTENT_TYPE})
