"""The OpenAPI 3.0 document of the service, built in one place and served at ``GET /openapi.json``.

It describes every route of ``routes.ROUTES`` as the handlers behave: parameter
constraints as they are enforced, every status an operation can answer, DCS
field names and types (those of ``huaweicloudsdkdcs.v2.model``), dcslog's
documented extension fields, and the DCS error envelope. Response objects are
closed (``additionalProperties: false``): a field the document does not name is
drift, and the fuzz test (``tests/test_fuzz.py``) fails on it; it also checks
that the document lists exactly the routes of ``ROUTES``.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web

from dcslog.api import slowlog as slowlog_api
from dcslog.api.params import MAX_INT
from dcslog.services.common import PROJECT_ID
from dcslog.services.redislog import QUERY_TIMES

JSON = "application/json"
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
DCS_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"  # 2017-03-31T12:24:46.297Z
UTC_SECONDS = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"  # 2020-06-19T07:06:07Z
DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
TASK_TIME = r"^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]$"


def _anchored(pattern: str) -> str:
    """A handler's ``fullmatch`` regex as a JSON-schema pattern (which matches anywhere unless anchored)."""
    return f"^(?:{pattern})$"


# -- schema helpers ----------------------------------------------------------------------------------------------

def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _string(**extra: Any) -> dict:
    return {"type": "string", **extra}


def _nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


def _integer(**extra: Any) -> dict:
    return {"type": "integer", **extra}


def _object(properties: dict[str, dict], *, optional: tuple[str, ...] = (), description: str | None = None) -> dict:
    """A closed object: every property not in ``optional`` is required, no other property allowed."""
    schema: dict[str, Any] = {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _array(items: dict) -> dict:
    return {"type": "array", "items": items}


# -- components ---------------------------------------------------------------------------------------------------

SCHEMAS: dict[str, dict] = {
    "Error": _object({
        "error_code": _string(pattern=r"^DCS\.[0-9]{4}$"),
        "error_msg": _string(minLength=1),
        "error_ext_msg": _nullable(_string(minLength=1, description="How to fix the request, when dcslog can say.")),
    }, description="The DCS error envelope: the body of every non-2xx response."),
    "Instance": _object({
        "instance_id": _string(format="uuid", pattern=UUID_PATTERN),
        "name": _string(),
        "engine": _string(enum=["Redis"]),
        "engine_version": _string(),
        "status": _string(enum=["RUNNING", "ERROR"]),
        "ip": _string(),
        "port": _integer(),
        "domain_name": _string(),
        "cache_mode": _string(enum=["single", "ha", "cluster"]),
        "max_memory": _integer(minimum=0, description="MB"),
        "used_memory": _integer(minimum=0, description="MB"),
        "capacity": _integer(minimum=0, description="whole GB of maxmemory, 0 when unlimited"),
        "capacity_minor": _string(description="extension: GB with decimals, e.g. \"0.25\""),
        "replica_count": _integer(minimum=0),
        "sharding_count": _integer(minimum=0),
        "description": _string(),
        "created_at": _string(pattern=DCS_TIME),
        "updated_at": _string(pattern=DCS_TIME),
        "project_id": _string(pattern=_anchored(PROJECT_ID.pattern)),
        "access_user": _string(),
        "no_password_access": _string(enum=["true", "false"]),
        "enable_ssl": {"type": "boolean"},
        "support_slow_log_flag": _string(enum=["true"]),
        "db_number": _integer(minimum=0),
        "timezone": _string(description="extension: the instance's time zone (IANA name)"),
        "error_msg": _nullable(_string(description="extension: why the last discovery failed")),
    }, description="DCS ShowInstance (the subset dcslog fills) plus extensions."),
    "ListInstancesResponse": _object({
        "instance_num": _integer(minimum=0),
        "instances": _array(_ref("Instance")),
    }),
    "Dimension": _object({
        "name": _string(enum=["dcs_instance_id", "dcs_cluster_redis_node"]),
        "value": _string(),
    }),
    "Replication": _object({
        "replication_id": _string(),
        "replication_role": _string(enum=["master", "slave"]),
        "replication_ip": _string(),
        "is_replication": {"type": "boolean"},
        "node_id": _string(),
        "status": _string(enum=["Active", "Inactive"]),
        "az_code": _string(),
        "dimensions": _array(_ref("Dimension")),
        "replication_port": _integer(description="extension"),
        "agent": _nullable(_string(description="extension: URL of the `dcslog agent` that reads this node's log")),
        "log_file": _nullable(_string(description="extension: the path dcslog reads")),
        "log_file_error": _nullable(_string(description="extension: why there is no log file")),
        "address_error": _nullable(_string(description="extension: why the node at this address is not known "
                                                       "to be this replica, and how to fix it")),
    }),
    "Group": _object({
        "group_id": _string(),
        "group_name": _string(pattern="^group-[0-9]+$"),
        "replication_list": _array(_ref("Replication")),
    }),
    "ListGroupReplicationInfoResponse": _object({
        "group_list": _array(_ref("Group")),
        "group_count": _integer(minimum=0),
    }),
    "RunlogItem": _object({
        "id": _string(),
        "file_name": _string(pattern=r"^redis_.+_[0-9]{4}-[0-9]{2}-[0-9]{2}\.log$"),
        "group_name": _string(),
        "replication_ip": _string(),
        "status": _string(enum=["creating", "succeed", "failed"]),
        "time": _string(pattern=DAY),
        "backup_id": _string(),
        "size": _nullable(_integer(minimum=0, description="extension: bytes of the content a link serves "
                                                          "(a succeed file's, or a refreshed file's previous copy)")),
        "sha256": _nullable(_string(pattern="^[0-9a-f]{64}$", description="extension: of that content")),
        "error_msg": _string(description="extension: why the last collection failed (on a succeed file: "
                                         "a refresh failed and the previous copy stayed)"),
        "last_task_id": _string(description="extension: the task that last collected the file, or is "
                                            "collecting it (backup_id differs only after a failed refresh)"),
    }, optional=("size", "sha256", "error_msg", "last_task_id")),
    "ListRedislogResponse": _object({
        "total_num": _integer(minimum=1),
        "file_list": _array(_ref("RunlogItem")),
    }),
    "DownloadLink": _object({
        "id": _string(),
        "backup_id": _string(),
        "link": _string(format="uri"),
        "expires_at": _string(pattern=UTC_SECONDS, description="extension: when the link stops working"),
    }),
    "SlowlogItem": _object({
        "id": _integer(),
        "command": _string(),
        "start_time": _string(pattern=UTC_SECONDS),
        "duration": _string(pattern=r"^[0-9]+(\.[0-9]{1,3})?$", description="milliseconds"),
        "shard_name": _nullable(_string()),
        "database_id": _nullable(_integer()),
        "username": _nullable(_string()),
        "node_role": _string(enum=["master", "slave"]),
        "client_ip": _nullable(_string()),
        "replication_id": _string(description="extension"),
        "node_ip": _string(description="extension"),
        "node_port": _integer(description="extension"),
        "client_addr": _nullable(_string(description="extension: ip:port")),
        "client_name": _nullable(_string(description="extension")),
        "fingerprint": _string(description="extension: the command with its arguments replaced by ?"),
    }),
    "ListSlowlogResponse": _object({
        "total_num": _integer(minimum=0),
        "count": _integer(minimum=0),
        "slowlogs": _array(_ref("SlowlogItem")),
        "lost_entries": _integer(minimum=0, description="extension: entries the nodes dropped before a harvest"),
    }),
    "HarvestNode": _object({
        "replication_id": _string(),
        "replication_ip": _string(),
        "replication_port": _integer(),
        "replication_role": _string(enum=["master", "slave"]),
        "group_name": _string(),
        "run_id": _nullable(_string()),
        "last_entry_id": _nullable(_integer(minimum=0)),
        "harvested_entries": _integer(minimum=0),
        "lost_entries": _integer(minimum=0),
        "last_harvest_at": _nullable(_string(pattern=UTC_SECONDS)),
        "last_error": _nullable(_string()),
    }),
    "SlowlogHarvestStatusResponse": _object({
        "nodes": _array(_ref("HarvestNode")),
        "node_count": _integer(minimum=0),
    }),
    "TaskDetails": _object({
        "group_name": _string(),
        "replica_ip": _string(),
        "replication_id": _string(),
        "days": _array(_string(pattern=DAY)),
    }),
    "BackgroundTask": _object({
        "id": _string(),
        "name": _string(enum=["CollectRunLog"]),
        "details": _ref("TaskDetails"),
        "user_name": _string(),
        "user_id": _string(),
        "params": _string(description="a JSON string of the request's query"),
        "status": _string(enum=["running", "succeed", "failed"]),
        "created_at": _string(pattern=DCS_TIME),
        "updated_at": _string(pattern=DCS_TIME),
        "enable_show": {"type": "boolean"},
        "error_msg": _nullable(_string(description="extension: why the task failed")),
    }),
    "ListBackgroundTaskResponse": _object({
        "task_count": _string(pattern="^[0-9]+$", description="a string, as in DCS"),
        "tasks": _array(_ref("BackgroundTask")),
    }),
    "Health": _object({"status": _string(enum=["ok"])}),
}

REQUEST_ID_HEADER = {"X-Request-Id": {
    "description": "The request id (the caller's own X-Request-Id when it sent a tame one).",
    "required": True, "schema": _string(minLength=1)}}

PARAMETERS: dict[str, dict] = {
    "project_id": {"name": "project_id", "in": "path", "required": True,
                   "description": "1-64 of [A-Za-z0-9_-] (else 400 DCS.4002)",
                   "schema": _string(pattern=_anchored(PROJECT_ID.pattern))},
    "instance_id": {"name": "instance_id", "in": "path", "required": True,
                    "description": "a UUID (else 400 DCS.4061)",
                    "schema": _string(format="uuid", pattern=UUID_PATTERN)},
    "offset": {"name": "offset", "in": "query", "required": False, "description": "items to skip (default 0)",
               "schema": _integer(minimum=0, maximum=MAX_INT)},
    "limit": {"name": "limit", "in": "query", "required": False, "description": "page size (default 10)",
              "schema": _integer(minimum=1, maximum=1000)},
    "X-Sdk-Date": {"name": "X-Sdk-Date", "in": "header", "required": False,
                   "description": "with SDK-HMAC-SHA256 signing: the signing time, within ±15 min of the server clock",
                   "schema": _string(pattern="^[0-9]{8}T[0-9]{6}Z$")},
    "X-Request-Id": {"name": "X-Request-Id", "in": "header", "required": False,
                     "description": "echoed back when it is 1-128 of [A-Za-z0-9._-], else replaced",
                     "schema": _string()},
}


def _p(name: str) -> dict:
    return {"$ref": f"#/components/parameters/{name}"}


def _query(name: str, schema: dict, *, required: bool = False, description: str | None = None) -> dict:
    parameter = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


def _header(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "header", "required": False, "schema": schema, "description": description}


# -- responses ----------------------------------------------------------------------------------------------------

def _error(status_description: str, codes: list[str], *, body: bool = True, headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": f"{status_description} ({', '.join(codes)})",
                                "headers": {**REQUEST_ID_HEADER, **(headers or {})}}
    if body:
        error = SCHEMAS["Error"]
        response["content"] = {JSON: {"schema": {**error, "properties": {
            **error["properties"], "error_code": _string(enum=codes)}}}}
    return response


def _ok(description: str, schema: dict | None = None, *, media_type: str = JSON, headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description, "headers": {**REQUEST_ID_HEADER, **(headers or {})}}
    if schema is not None:
        response["content"] = {media_type: {"schema": schema}}
    return response


UNAUTHORIZED = ("Unauthorized: no, bad or expired credentials, or another project in the path",
                ["DCS.1001", "DCS.1002", "DCS.1003", "DCS.1004"])
INTERNAL = ("Unexpected failure (logged with the request id)", ["DCS.5000"])


def _limits(*, body: bool = True) -> dict[str, dict]:
    """What the middleware answers on any route before the handler runs (app.MAX_URL, app.MAX_HEADERS)."""
    return {"414": _error("URL over 8 KiB", ["DCS.4800"], body=body),
            "431": _error("Request headers over 16 KiB", ["DCS.4800"], body=body)}
ROUTE_NOT_FOUND = "DCS.4001"  # a path parameter that makes the URL no route's (e.g. "." or "..")


def _dcs_errors(bad_request: list[str], *, instance: bool, not_found: tuple[str, ...] = ()) -> dict[str, dict]:
    """The errors every DCS operation can answer, in the order they are checked."""
    return {
        "400": _error("Invalid parameter", bad_request),
        "401": _error(*UNAUTHORIZED),
        "403": _error("The credential's role may not perform this operation", ["DCS.2003"]),
        "404": _error("Not found", (["DCS.3022"] if instance else []) + [ROUTE_NOT_FOUND, *not_found]),
        "413": _error("Request body over 64 KiB (no endpoint takes a body)", ["DCS.4800"]),
        **_limits(),
        "500": _error(*INTERNAL),
    }


def _dcs_operation(operation_id: str, summary: str, role: str, parameters: list[dict], responses: dict[str, dict],
                   *, instance: bool = True) -> dict:
    path_parameters = [_p("project_id")] + ([_p("instance_id")] if instance else [])
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": f"Role: {role} or above.",
        "tags": ["DCS" if not operation_id.endswith("_harvest_status") else "dcslog extensions"],
        "security": [{"token": []}, {"sdk_hmac_sha256": []}],
        "parameters": path_parameters + parameters + [_p("X-Sdk-Date"), _p("X-Request-Id")],
        "responses": responses,
    }


def _download_operation(method: str) -> dict:
    body = method == "get"
    file_headers = {
        "Content-Disposition": {"required": True, "schema": _string(pattern='^attachment; filename="redis_.+\\.log"$')},
        "Content-Length": {"required": True, "schema": _integer(minimum=0)},
        "ETag": {"required": True, "schema": _string()},
        "Last-Modified": {"required": True, "schema": _string()},
        "Accept-Ranges": {"required": True, "schema": _string(enum=["bytes"])},
    }
    text = {"type": "string"} if body else None
    media = "text/plain"
    return {
        "operationId": f"{method}_download",
        "summary": ("Download" if body else "Headers of") + " a collected run-log file through its signed link",
        "tags": ["links"],
        "security": [],
        "parameters": [
            {"name": "token", "in": "path", "required": True, "description": "the signed token of the link",
             "schema": _string(minLength=1)},
            _header("Range", _string(), "a byte range (206 partial content)"),
            _header("If-Range", _string(), "an ETag or date: the range only if the file is unchanged"),
            _header("If-Match", _string(), "412 unless the ETag matches"),
            _header("If-Unmodified-Since", _string(), "412 if the file changed since"),
            _header("If-None-Match", _string(), "304 if the ETag matches"),
            _header("If-Modified-Since", _string(), "304 unless the file changed since"),
            _p("X-Request-Id"),
        ],
        "responses": {
            "200": _ok("The file (text/plain; charset=utf-8)", text, media_type=media, headers=file_headers),
            "206": _ok("Part of the file", text, media_type=media, headers={
                **file_headers, "Content-Range": {"required": True, "schema": _string(pattern="^bytes [0-9]+-[0-9]+/[0-9]+$")}}),
            "304": _ok("Not modified (If-None-Match / If-Modified-Since)"),
            "403": _error("The link is invalid, tampered with or expired", ["DCS.2004"], body=body),
            "404": _error("The file is gone (retention) or being collected again", ["DCS.4001"], body=body),
            "412": _error("If-Match / If-Unmodified-Since failed", ["DCS.4800"], body=body),
            "416": _error("Range not satisfiable", ["DCS.4800"], body=body, headers={
                "Content-Range": {"required": False, "schema": _string(pattern="^bytes \\*/[0-9]+$")}}),
            **_limits(body=body),
            "500": _error(*INTERNAL, body=body),
        },
    }


INSTANCE_PATH = "/v2/{project_id}/instances/{instance_id}"

PATHS: dict[str, dict] = {
    "/v2/{project_id}/instances": {"get": _dcs_operation(
        "list_instances", "ListInstances: the project's instances, newest first", "viewer", [
            _p("offset"), _p("limit"),
            _query("name", _string(), description="substring of the name"),
            _query("status", _string(), description="RUNNING or ERROR (any other value matches nothing)"),
        ], {"200": _ok("The instances", _ref("ListInstancesResponse")),
            **_dcs_errors(["DCS.4800", "DCS.4002"], instance=False)}, instance=False)},
    INSTANCE_PATH: {"get": _dcs_operation(
        "show_instance", "ShowInstance", "viewer", [],
        {"200": _ok("The instance", _ref("Instance")),
         **_dcs_errors(["DCS.4002", "DCS.4061"], instance=True)})},
    "/v2/{project_id}/instance/{instance_id}/groups": {"get": _dcs_operation(
        "list_group_replication_info", "ListGroupReplicationInfo: shards and replicas", "viewer", [],
        {"200": _ok("The groups", _ref("ListGroupReplicationInfoResponse")),
         **_dcs_errors(["DCS.4002", "DCS.4061"], instance=True)})},
    INSTANCE_PATH + "/redislog": {
        "post": _dcs_operation(
            "create_redislog", "CreateRedislog: collect run logs in the background", "operator", [
                _query("log_type", _string(enum=["run"]), required=True),
                _query("query_time", _integer(enum=list(QUERY_TIMES)),
                       description="days ending today (0 and 1: today only; default 0)"),
                _query("replication_id", _string(), description="required unless the instance is a single node"),
            ], {"204": _ok("Collection queued (no body)"),
                **_dcs_errors(["DCS.4800", "DCS.4002", "DCS.4061", "DCS.4017"], instance=True)}),
        "get": _dcs_operation(
            "list_redislog", "ListRedislog: collected run-log files", "viewer", [
                _query("log_type", _string(enum=["run"]), required=True), _p("offset"), _p("limit"),
            ], {"200": _ok("The files", _ref("ListRedislogResponse")),
                "204": _ok("No files (no body, as DCS)"),
                **_dcs_errors(["DCS.4800", "DCS.4002", "DCS.4061"], instance=True)}),
    },
    INSTANCE_PATH + "/redislog/{id}/links": {"post": _dcs_operation(
        "create_redislog_download_link", "CreateRedislogDownloadLink: an expiring link to a succeed file", "viewer", [
            {"name": "id", "in": "path", "required": True, "description": "the file id",
             "schema": _string(minLength=1)},
        ], {"200": _ok("The link", _ref("DownloadLink")),
            **_dcs_errors(["DCS.4800", "DCS.4002", "DCS.4061"], instance=True)})},
    INSTANCE_PATH + "/slowlog": {"get": _dcs_operation(
        "list_slowlog", "ListSlowlog: slow commands of every node, harvested", "viewer", [
            _query("start_time", _string(pattern=_anchored(slowlog_api.EPOCH_MS.pattern)), required=True,
                   description="ms since the epoch, UTC"),
            _query("end_time", _string(pattern=_anchored(slowlog_api.EPOCH_MS.pattern)), required=True,
                   description="ms since the epoch, UTC; before start_time → 400 DCS.4025"),
            _p("offset"), _p("limit"),
            _query("sort_key", _string(enum=["start_time", "duration"])),
            _query("sort_dir", _string(enum=["desc", "asc"])),
            _query("role", _string(enum=list(slowlog_api.ROLES)),
                   description="server (default: every node), proxy (none here), or extension master/slave"),
            _query("replication_id", _string(), description="extension: one node (unknown → 400)"),
            _query("command", _string(pattern=_anchored(slowlog_api.COMMAND_NAME.pattern)),
                   description="extension: command name, case-insensitive"),
            _query("min_duration", _string(pattern=_anchored(slowlog_api.MILLISECONDS.pattern)),
                   description="extension: milliseconds, decimals allowed"),
        ], {"200": _ok("The slow-log entries", _ref("ListSlowlogResponse")),
            **_dcs_errors(["DCS.4800", "DCS.4002", "DCS.4061", "DCS.4025"], instance=True)})},
    INSTANCE_PATH + "/slowlog/harvest": {"get": _dcs_operation(
        "list_slowlog_harvest_status", "Slow-log harvest status per node (dcslog extension)", "viewer", [],
        {"200": _ok("Per-node harvest status", _ref("SlowlogHarvestStatusResponse")),
         **_dcs_errors(["DCS.4002", "DCS.4061"], instance=True)})},
    INSTANCE_PATH + "/tasks": {"get": _dcs_operation(
        "list_background_task", "ListBackgroundTask: collection tasks, newest first", "viewer", [
            _p("offset"), _p("limit"),
            _query("start_time", _string(pattern=TASK_TIME), description="yyyyMMddHHmmss, UTC"),
            _query("end_time", _string(pattern=TASK_TIME),
                   description="yyyyMMddHHmmss, UTC; before start_time → 400 DCS.4025"),
        ], {"200": _ok("The tasks", _ref("ListBackgroundTaskResponse")),
            **_dcs_errors(["DCS.4800", "DCS.4002", "DCS.4061", "DCS.4025"], instance=True)})},
    "/downloads/{token}": {"get": _download_operation("get"), "head": _download_operation("head")},
    "/health": {"get": {
        "operationId": "health", "summary": "Readiness probe: the database answers", "tags": ["operations"],
        "security": [], "parameters": [_p("X-Request-Id")],
        "responses": {"200": _ok("Healthy", _ref("Health")), **_limits(), "500": _error(*INTERNAL)}}},
    "/livez": {"get": {
        "operationId": "livez", "summary": "Liveness probe: the process answers (no database)",
        "tags": ["operations"], "security": [], "parameters": [_p("X-Request-Id")],
        "responses": {"200": _ok("Alive", _ref("Health")), **_limits(), "500": _error(*INTERNAL)}}},
    "/metrics": {"get": {
        "operationId": "metrics", "summary": "Prometheus metrics (text format 0.0.4)", "tags": ["operations"],
        "description": "Without DCSLOG_METRICS_TOKEN: totals only, no instance or replica ids. With it: "
                       "`Authorization: Bearer <token>` required, every series. See docs/api.md.",
        "security": [], "parameters": [_p("X-Request-Id")],
        "responses": {"200": _ok("The metrics", {"type": "string"}, media_type="text/plain"),
                      "401": _error("DCSLOG_METRICS_TOKEN is set and the request does not show it",
                                    ["DCS.1001", "DCS.1003"], headers={
                                        "WWW-Authenticate": {"required": True, "schema": _string()}}),
                      **_limits(), "500": _error(*INTERNAL)}}},
    "/openapi.json": {"get": {
        "operationId": "openapi", "summary": "This document", "tags": ["operations"],
        "security": [], "parameters": [_p("X-Request-Id")],
        "responses": {"200": _ok("The OpenAPI document", {"type": "object"}), **_limits(), "500": _error(*INTERNAL)}}},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "dcslog",
        "version": "0.1.0",
        "description": "The Log Management part of the Huawei Cloud / Open Telekom Cloud DCS v2 API, on self-run "
                       "Redis. JSON bodies are sent as application/json;charset=UTF-8; every non-2xx response "
                       "carries the DCS error envelope. See docs/api.md.",
    },
    "tags": [{"name": "DCS"}, {"name": "dcslog extensions"}, {"name": "links"}, {"name": "operations"}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "parameters": PARAMETERS,
        "securitySchemes": {
            "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                      "description": "a token from `dcslog token create` (24 h)"},
            "sdk_hmac_sha256": {"type": "apiKey", "in": "header", "name": "Authorization",
                                "description": "`SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`, signed "
                                               "as the official SDKs sign (SignedHeaders must include host and "
                                               "x-sdk-date; send X-Sdk-Date)"},
        },
    },
}


@functools.cache
def _document_bytes() -> bytes:
    return json.dumps(DOCUMENT, separators=(",", ":")).encode()


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), headers={"Content-Type": "application/json;charset=UTF-8"})
