"""The response objects of the API (OpenAPI component schemas), each declared once.

Operations name them (``ok={200: "ListRedislogResponse"}``); ``openapi.py`` puts them in the
document. They say what the item builders of the services produce: DCS field names and types
(those of ``huaweicloudsdkdcs.v2.model``) and dcslog's documented extension fields. Objects are
closed (``additionalProperties: false``): a field not named here is drift, and the fuzz test
(``tests/test_fuzz.py``) fails on it.
"""

from __future__ import annotations

from typing import Any

from dcslog.api.params import anchored
from dcslog.roles import ROLES as CALLER_ROLES
from dcslog.roles import TOKEN_ID
from dcslog.runlog.grammar import FORMATS, LEVELS, ROLES
from dcslog.services.audit import ACTIONS, ACTOR_TYPES, OUTCOMES
from dcslog.services.common import PROJECT_ID
from dcslog.services.jobs import AUTO_COLLECT_RUN_LOG, COLLECT_RUN_LOG
from dcslog.services.node_state import EVENT_TYPES
from dcslog.services.tasks import STEP_STATUSES, SUB_STEP_NAME
from dcslog.statuses import FileStatus, TaskStatus

UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
DCS_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"  # 2017-03-31T12:24:46.297Z
UTC_SECONDS = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"  # 2020-06-19T07:06:07Z
DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def string(**extra: Any) -> Schema:
    return {"type": "string", **extra}


def nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


def integer(**extra: Any) -> Schema:
    return {"type": "integer", **extra}


def closed_object(properties: dict[str, Schema], *, optional: tuple[str, ...] = (),
                  description: str | None = None) -> Schema:
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


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


# -- components ---------------------------------------------------------------------------------------------------

SCHEMAS: dict[str, Schema] = {
    "Error": closed_object({
        "error_code": string(pattern=r"^DCS\.[0-9]{4}$"),
        "error_msg": string(minLength=1),
        "error_ext_msg": nullable(string(minLength=1, description="How to fix the request, when dcslog can say.")),
    }, description="The DCS error envelope: the body of every non-2xx response."),
    "Instance": closed_object({
        "instance_id": string(format="uuid", pattern=UUID_PATTERN),
        "name": string(),
        "engine": string(enum=["Redis"]),
        "engine_version": string(),
        "status": string(enum=["RUNNING", "ERROR"]),
        "ip": string(),
        "port": integer(),
        "domain_name": string(),
        "cache_mode": string(enum=["single", "ha", "cluster"]),
        "max_memory": integer(minimum=0, description="MB"),
        "used_memory": integer(minimum=0, description="MB"),
        "capacity": integer(minimum=0, description="whole GB of maxmemory, 0 when unlimited"),
        "capacity_minor": string(description="extension: GB with decimals, e.g. \"0.25\""),
        "replica_count": integer(minimum=0),
        "sharding_count": integer(minimum=0),
        "description": string(),
        "created_at": string(pattern=DCS_TIME),
        "updated_at": string(pattern=DCS_TIME),
        "project_id": string(pattern=anchored(PROJECT_ID.pattern)),
        "access_user": string(),
        "no_password_access": string(enum=["true", "false"]),
        "enable_ssl": {"type": "boolean"},
        "support_slow_log_flag": string(enum=["true"]),
        "db_number": integer(minimum=0),
        "timezone": string(description="extension: the instance's time zone (IANA name)"),
        "error_msg": nullable(string(description="extension: why the last discovery failed")),
    }, description="DCS ShowInstance (the subset dcslog fills) plus extensions."),
    "ListInstancesResponse": closed_object({
        "instance_num": integer(minimum=0),
        "instances": array(ref("Instance")),
    }),
    "Dimension": closed_object({
        "name": string(enum=["dcs_instance_id", "dcs_cluster_redis_node"]),
        "value": string(),
    }),
    "Replication": closed_object({
        "replication_id": string(),
        "replication_role": string(enum=["master", "slave"]),
        "replication_ip": string(),
        "is_replication": {"type": "boolean"},
        "node_id": string(),
        "status": string(enum=["Active", "Inactive"]),
        "az_code": string(),
        "dimensions": array(ref("Dimension")),
        "replication_port": integer(description="extension"),
        "agent": nullable(string(description="extension: URL of the `dcslog agent` that reads this node's log")),
        "log_file": nullable(string(description="extension: the path dcslog reads")),
        "log_file_error": nullable(string(description="extension: why there is no log file")),
        "address_error": nullable(string(description="extension: why the node at this address is not known "
                                                       "to be this replica, and how to fix it")),
    }),
    "Group": closed_object({
        "group_id": string(),
        "group_name": string(pattern="^group-[0-9]+$"),
        "replication_list": array(ref("Replication")),
    }),
    "ListGroupReplicationInfoResponse": closed_object({
        "group_list": array(ref("Group")),
        "group_count": integer(minimum=0),
    }),
    "RunlogItem": closed_object({
        "id": string(),
        "file_name": string(pattern=r"^redis_.+_[0-9]{4}-[0-9]{2}-[0-9]{2}\.log$"),
        "group_name": string(),
        "replication_ip": string(),
        "status": string(enum=[status.value for status in FileStatus]),
        "time": string(pattern=DAY),
        "backup_id": string(),
        "size": nullable(integer(minimum=0, description="extension: bytes of the content a link serves "
                                                          "(a succeed file's, or a refreshed file's previous copy)")),
        "sha256": nullable(string(pattern="^[0-9a-f]{64}$", description="extension: of that content")),
        "error_msg": string(description="extension: why the last collection failed (on a succeed file: "
                                         "a refresh failed and the previous copy stayed)"),
        "last_task_id": string(description="extension: the task that last collected the file, or is "
                                            "collecting it (backup_id differs only after a failed refresh)"),
    }, optional=("size", "sha256", "error_msg", "last_task_id")),
    "ListRedislogResponse": closed_object({
        "total_num": integer(minimum=1),
        "file_list": array(ref("RunlogItem")),
    }),
    "DownloadLink": closed_object({
        "id": string(),
        "backup_id": string(),
        "link": string(format="uri"),
        "expires_at": string(pattern=UTC_SECONDS, description="extension: when the link stops working"),
        "link_id": string(pattern="^[0-9a-f]{32}$", description="extension: names the link to revoke it "
                          "(DELETE …/redislog/{id}/links/{link_id})"),
    }),
    "SlowlogItem": closed_object({
        "id": integer(),
        "command": string(),
        "start_time": string(pattern=UTC_SECONDS),
        "duration": string(pattern=r"^[0-9]+(\.[0-9]{1,3})?$", description="milliseconds"),
        "shard_name": nullable(string()),
        "database_id": nullable(integer()),
        "username": nullable(string()),
        "node_role": string(enum=["master", "slave"]),
        "client_ip": nullable(string()),
        "replication_id": string(description="extension"),
        "node_ip": string(description="extension"),
        "node_port": integer(description="extension"),
        "client_addr": nullable(string(description="extension: ip:port")),
        "client_name": nullable(string(description="extension")),
        "fingerprint": string(description="extension: the command with its arguments replaced by ?"),
    }),
    "ListSlowlogResponse": closed_object({
        "total_num": integer(minimum=0),
        "count": integer(minimum=0),
        "slowlogs": array(ref("SlowlogItem")),
        "lost_entries": integer(minimum=0, description="extension: entries the nodes dropped before a harvest"),
    }),
    "SlowlogTopGroup": closed_object({
        "key": string(description="the fingerprint (SET ? ?), the command name (SET) or the node's replication_id"),
        "count": integer(minimum=1),
        "total_ms": {"type": "number", "minimum": 0, "description": "milliseconds, to the microsecond"},
        "max_ms": {"type": "number", "minimum": 0},
        "avg_ms": {"type": "number", "minimum": 0, "description": "total_ms / count, to the microsecond"},
        "p99_ms": {"type": "number", "minimum": 0, "description": "nearest rank: the smallest duration that at "
                                                                  "least 99 % of the group's entries do not exceed"},
        "first_time": string(pattern=UTC_SECONDS, description="the group's first entry in the window"),
        "last_time": string(pattern=UTC_SECONDS, description="its last"),
        "sample_id": integer(description="a ListSlowlog id: the group's slowest entry in the window"),
    }),
    "ListSlowlogTopResponse": closed_object({
        "total_num": integer(minimum=0, description="groups in the window"),
        "groups": array(ref("SlowlogTopGroup")),
        "start_time": integer(minimum=0, description="the window read, ms since the epoch (its defaults filled in)"),
        "end_time": integer(minimum=0),
    }),
    "HarvestNode": closed_object({
        "replication_id": string(),
        "replication_ip": string(),
        "replication_port": integer(),
        "replication_role": string(enum=["master", "slave"]),
        "group_name": string(),
        "run_id": nullable(string()),
        "last_entry_id": nullable(integer(minimum=0)),
        "harvested_entries": integer(minimum=0),
        "lost_entries": integer(minimum=0),
        "last_harvest_at": nullable(string(pattern=UTC_SECONDS)),
        "last_error": nullable(string()),
    }),
    "SlowlogHarvestStatusResponse": closed_object({
        "nodes": array(ref("HarvestNode")),
        "node_count": integer(minimum=0),
    }),
    "TaskDetails": closed_object({
        "group_name": string(),
        "replica_ip": string(),
        "replication_id": string(),
        "days": array(string(pattern=DAY)),
    }),
    "BackgroundTask": closed_object({
        "id": string(),
        "name": string(enum=[COLLECT_RUN_LOG, AUTO_COLLECT_RUN_LOG]),
        "details": ref("TaskDetails"),
        "user_name": string(),
        "user_id": string(),
        "params": string(description="a JSON string of the request's query"),
        "status": string(enum=[status.value for status in TaskStatus]),
        "created_at": string(pattern=DCS_TIME),
        "updated_at": string(pattern=DCS_TIME),
        "enable_show": {"type": "boolean"},
        "error_msg": nullable(string(description="extension: why the task failed")),
    }),
    "AuditRecord": closed_object({
        "id": string(pattern="^[0-9a-f]{24}$", description="made when written, ordered by time; opaque otherwise"),
        "time": string(pattern=DCS_TIME),
        "project_id": string(pattern=anchored(PROJECT_ID.pattern)),
        "actor": string(description="access key, token id (tok-…), link id, or the system user"),
        "actor_type": string(enum=list(ACTOR_TYPES)),
        "action": string(enum=list(ACTIONS)),
        "instance_id": nullable(string()),
        "target": nullable(string()),
        "source_ip": nullable(string()),
        "request_id": nullable(string()),
        "outcome": string(enum=list(OUTCOMES)),
        "link_created_by": nullable(string(description="link.download: who made the link (extension)")),
        "link_created_by_type": nullable(string(enum=list(ACTOR_TYPES))),
    }, optional=("link_created_by", "link_created_by_type")),
    "ListAuditResponse": closed_object({
        "total_num": integer(minimum=0),
        "records": array(ref("AuditRecord")),
    }),
    "Credential": closed_object({
        "access_key": string(),
        "name": nullable(string(description="what it is for, or who holds it (`--name`); null if made without")),
        "role": string(enum=list(CALLER_ROLES)),
        "project_id": string(pattern=anchored(PROJECT_ID.pattern)),
        "created_at": string(pattern=UTC_SECONDS),
    }, description="An access key, never its secret key (dcslog extension)."),
    "ListCredentialsResponse": closed_object({"credentials": array(ref("Credential"))}),
    "Token": closed_object({
        "id": string(pattern=anchored(TOKEN_ID.pattern), description="names the token; gives nothing of it"),
        "name": nullable(string()),
        "role": string(enum=list(CALLER_ROLES)),
        "project_id": string(pattern=anchored(PROJECT_ID.pattern)),
        "created_at": string(pattern=UTC_SECONDS),
        "expires_at": string(pattern=UTC_SECONDS),
    }, description="A token by its id, never the token (dcslog extension)."),
    "ListTokensResponse": closed_object({"tokens": array(ref("Token"))}),
    "ListBackgroundTaskResponse": closed_object({
        "task_count": string(pattern="^[0-9]+$", description="a string, as in DCS"),
        "tasks": array(ref("BackgroundTask")),
    }),
    "SubStepDetail": closed_object({
        "sub_step_id": string(),
        "sub_step_name": string(enum=[SUB_STEP_NAME]),
        "sub_step_status": string(enum=list(STEP_STATUSES)),
        "begin_time": nullable(string(pattern=DCS_TIME)),
        "end_time": nullable(string(pattern=DCS_TIME)),
        "detail": string(description="bytes published, bytes cut so far, or why it failed"),
        "error_code": nullable(string()),
    }),
    "StepDetail": closed_object({
        "step_id": string(description="the file's id (RunlogItem id)"),
        "step_name": string(),
        "step_status": string(enum=list(STEP_STATUSES)),
        "begin_time": nullable(string(pattern=DCS_TIME)),
        "end_time": nullable(string(pattern=DCS_TIME)),
        "error_code": nullable(string()),
        "sub_step_details": array(ref("SubStepDetail")),
    }),
    "ShowBackgroundTaskProgressResponse": closed_object({
        "progress": integer(minimum=0, maximum=100, description="percent; 100 once the task ended"),
        "remain_time": integer(minimum=-1, description="seconds left (estimate); 0 once ended; -1 unknown"),
        "step_details": array(ref("StepDetail")),
    }),
    "DeleteBackgroundTaskResponse": closed_object({"message": string()}),
    "Health": closed_object({"status": string(enum=["ok"])}),
    "Record": closed_object({
        "id": string(description="stable: the same entry always has the same id"),
        "time": string(description="ISO 8601 in the instance's time zone, milliseconds"),
        "time_ms": integer(minimum=0),
        "replication_id": string(),
        "replication_ip": string(),
        "replication_port": integer(minimum=0, description="extension: the node's port"),
        "group_name": string(),
        "role": string(enum=list(ROLES)),
        "pid": integer(minimum=0),
        "level": string(enum=list(LEVELS)),
        "message": string(),
        "lines": array(string()),
        "format": string(enum=list(FORMATS)),
    }),
    "RecordSources": closed_object({
        "replication_id": string(),
        "replication_ip": string(),
        "live": nullable(string(enum=["file", "agent"], description="where the host's log is read")),
        "read": {"type": "boolean", "description": "whether the host's log was read"},
        "error": nullable(string(description="why it was not")),
        "collected_days": integer(minimum=0, description="collected days read for the window"),
    }),
    "Event": closed_object({
        "id": string(format="uuid", pattern=UUID_PATTERN, description="stable: a change is recorded once, "
                                                                       "under one id"),
        "type": string(enum=list(EVENT_TYPES)),
        "time": string(description="ISO 8601 in the instance's time zone, milliseconds"),
        "replication_id": string(),
        "replication_ip": string(description="the node's address when it happened"),
        "group_name": string(),
        "details": {"type": "object", "description": "message (what happened, in words) and the type's "
                                                      "own fields", "additionalProperties": {"type": "string"},
                    "required": ["message"]},
        "time_ms": integer(minimum=0, description="extension: ms since the epoch"),
        "replication_port": integer(minimum=0, description="extension: the node's port when it happened"),
    }),
    "ListEventsResponse": closed_object({
        "total_num": integer(minimum=0),
        "events": array(ref("Event")),
    }),
    "ListRecordsResponse": closed_object({
        "records": array(ref("Record")),
        "next_cursor": nullable(string(description="null once the window is read to its end")),
        "scanned_bytes": integer(minimum=0),
        "sources": array(ref("RecordSources")),
    }),
    "TimelineItem": closed_object({
        "kind": string(enum=["event", "runlog", "slowlog"]),
        "time": string(description="ISO 8601 in the instance's time zone, milliseconds"),
        "time_ms": integer(minimum=0),
        "replication_id": string(),
        "replication_ip": string(),
        "replication_port": integer(minimum=0),
        "group_name": nullable(string()),
        "role": nullable(string(enum=list(ROLES), description="the node's role as the item tells it (none for "
                                                              "an event)")),
        "cursor": string(description="continue strictly after this item"),
        "record": ref("Record"),
        "slowlog": ref("SlowlogItem"),
        "event": ref("Event"),
    }, optional=("record", "slowlog", "event"), description="one of record, slowlog, event: the one its kind names"),
    "ListTimelineResponse": closed_object({
        "items": array(ref("TimelineItem")),
        "next_cursor": nullable(string(description="null once the window is read to its end")),
        "sources": array(ref("RecordSources")),
    }),
}
