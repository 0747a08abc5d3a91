"""Tables. Times are naive UTC ``datetime`` values (the same on SQLite and PostgreSQL)."""

from __future__ import annotations

import secrets
import time
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Credential(Base):
    """An AK/SK pair. The SK is kept encrypted with the server key: HMAC checks need it back."""

    __tablename__ = "credentials"
    access_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    name: Mapped[str | None] = mapped_column(String(128), nullable=True)  # None: made before names existed
    # Revoked rows are kept (who held what, for the audit trail); they authenticate nothing.
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Token(Base):
    """An X-Auth-Token, stored only as its SHA-256; ``id`` names it (lists, revocation) and is
    random, so it tells nothing of the token."""

    __tablename__ = "tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    id: Mapped[str] = mapped_column(String(40), unique=True, index=True)
    name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Instance(Base):
    __tablename__ = "instances"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    # The connection URL may hold a password: encrypted like secret keys.
    redis_url_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    log_file_overrides: Mapped[str] = mapped_column(Text, default="{}")  # JSON {"host:port": path}
    # JSON {"host:port": agent URL}: nodes read through `dcslog agent`
    agents: Mapped[str] = mapped_column(Text, default="{}")
    agent_key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # JSON {"host:port as the primary reports a replica": "host:port that reaches it"} (--replica-address)
    replica_addresses: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    status: Mapped[str] = mapped_column(String(16))
    cache_mode: Mapped[str] = mapped_column(String(16))
    engine_version: Mapped[str] = mapped_column(String(16))
    ip: Mapped[str] = mapped_column(String(64))
    port: Mapped[int] = mapped_column(Integer)
    max_memory_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    used_memory_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    db_number: Mapped[int] = mapped_column(Integer, default=16)
    access_user: Mapped[str] = mapped_column(String(128), default="")
    no_password_access: Mapped[bool]
    enable_ssl: Mapped[bool]
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Replication(Base):
    """A Redis node of an instance. Ids are derived from the instance and address, so they survive re-discovery."""

    __tablename__ = "replications"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[str] = mapped_column(String(36))
    group_name: Mapped[str] = mapped_column(String(32))
    group_index: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)  # order inside the group: master first
    role: Mapped[str] = mapped_column(String(8))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    log_file: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_file_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Why the node at this address is not known to be this replica (nothing answers, or another node does)
    address_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Task(Base):
    """A background task (DCS ListBackgroundTask); for CollectRunLog it is also the worker's job."""

    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    replication_id: Mapped[str] = mapped_column(String(36))
    details: Mapped[str] = mapped_column(Text)  # JSON
    params: Mapped[str] = mapped_column(Text)  # JSON string of the request's query
    user_name: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # running | succeed | failed
    error_msg: Mapped[str | None] = mapped_column(Text, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims so far
    handed_back: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # of them, stopped gracefully
    # ShowBackgroundTaskProgress, as the run holding the lease last reported it (services/jobs.py,
    # "Progress"): percent (never lower than before), bytes cut so far, its estimate of the seconds left.
    progress: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cut_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    remain_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: no estimate yet
    progress_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_tasks_instance_created", "instance_id", "created_at"),
        Index("ix_tasks_status", "status"),
    )


class LogFile(Base):
    """One collected run-log file: one per (replica, day).

    A refresh never destroys a good copy: the published content (``object_key``, ``size``,
    ``sha256``, ``content_task_id``, ``content_expires_at``) changes only when a collection
    publishes a complete new one. While a refresh runs, ``status`` is ``creating`` and
    ``task_id`` names the refreshing task; if it fails, the file goes back to ``succeed`` with
    that content (``task_id`` and ``error_msg`` then say which task failed it, and why).
    """

    __tablename__ = "log_files"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(String(64))
    replication_id: Mapped[str] = mapped_column(String(36))
    group_name: Mapped[str] = mapped_column(String(32))
    group_index: Mapped[int] = mapped_column(Integer)  # sorts group-2 before group-10
    replication_ip: Mapped[str] = mapped_column(String(255))
    day: Mapped[str] = mapped_column(String(10))  # yyyy-MM-dd
    status: Mapped[str] = mapped_column(String(16))  # creating | succeed | failed
    task_id: Mapped[str] = mapped_column(String(36))  # the task that last collected it (or is collecting it)
    # Each collection run publishes under a key of its own, so a run that lost its
    # lease can never overwrite the bytes another run recorded as succeed.
    object_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The task that produced the published content (DCS backup_id of a succeed file), and when
    # that content goes; None while the file has no complete copy (first collection, or failed).
    content_task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    content_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    error_msg: Mapped[str | None] = mapped_column(Text, nullable=True)  # why the last collection failed
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    # Signed into every link of the file; revoking all its links moves it on, and a link of an
    # earlier generation is refused (services/redislog.py, "Revocable links").
    link_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        UniqueConstraint("instance_id", "replication_id", "day", name="uq_log_files_replica_day"),
        Index("ix_log_files_listing", "instance_id", "day"),
    )


class RevokedLink(Base):
    """A download link revoked on its own (links are not recorded when made: a signed token is its
    own authority). Rows go with their file, and when all its links are revoked at once (the
    file's ``link_generation`` then refuses them all)."""

    __tablename__ = "revoked_links"
    link_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    file_id: Mapped[str] = mapped_column(ForeignKey("log_files.id", ondelete="CASCADE"), index=True)
    revoked_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_by: Mapped[str] = mapped_column(String(128))  # the caller's user id (access key, or token)


class SlowlogEntry(Base):
    """One slow command as a node reported it, harvested once.

    (replication_id, run_id, redis_id) is unique: Redis numbers entries per
    process, keeps numbering across SLOWLOG RESET and starts again at 0 when
    the process restarts (new run_id), so this triple names an entry for good.
    """

    __tablename__ = "slowlog_entries"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    replication_id: Mapped[str] = mapped_column(String(36))
    run_id: Mapped[str] = mapped_column(String(40))
    redis_id: Mapped[int] = mapped_column(BigInteger)
    start_time_ms: Mapped[int] = mapped_column(BigInteger)
    duration_us: Mapped[int] = mapped_column(BigInteger)
    command: Mapped[str] = mapped_column(Text)
    command_name: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(Text)
    shard_name: Mapped[str] = mapped_column(String(32))
    node_ip: Mapped[str] = mapped_column(String(255))
    node_port: Mapped[int] = mapped_column(Integer)
    node_role: Mapped[str] = mapped_column(String(8))
    client_addr: Mapped[str] = mapped_column(String(255))
    client_name: Mapped[str] = mapped_column(String(255))

    __table_args__ = (
        UniqueConstraint("replication_id", "run_id", "redis_id", name="uq_slowlog_entries_node_entry"),
        Index("ix_slowlog_entries_time", "instance_id", "start_time_ms"),
        # id right after duration: the duration sort's tie-break comes out of the index in order.
        Index("ix_slowlog_entries_duration_id", "instance_id", "duration_us", "id", "start_time_ms"),
        # Slow-log top's p99 and sample: one group's entries, slowest first, the window checked in the index.
        Index("ix_slowlog_entries_fingerprint_duration", "instance_id", "fingerprint", "duration_us", "id",
              "start_time_ms"),
        Index("ix_slowlog_entries_command_duration", "instance_id", "command_name", "duration_us", "id",
              "start_time_ms"),
        Index("ix_slowlog_entries_node_duration", "instance_id", "replication_id", "duration_us", "id",
              "start_time_ms"),
    )


HOUR_MS = 3_600_000  # the span of a SlowlogHourCount


class SlowlogHourCount(Base):
    """Entries per instance and hour of start time, kept with the entries, so ListSlowlog's
    total over days costs a few rows instead of a scan of every entry in the window."""

    __tablename__ = "slowlog_hour_counts"
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    hour_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # start of the hour, ms since the epoch
    entries: Mapped[int] = mapped_column(BigInteger)


class SlowlogHourGroup(Base):
    """Slow-log top's rollup: per instance, hour of start time, node and command shape, how many
    entries, their total and largest duration and their first and last start, kept with the
    entries (same transaction) and swept with them, so a top over days reads a few rows per hour
    instead of every entry (docs/design.md, "Slow-log top")."""

    __tablename__ = "slowlog_hour_groups"
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    hour_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # start of the hour, ms since the epoch
    replication_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    command_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(Text, primary_key=True)
    entries: Mapped[int] = mapped_column(BigInteger)
    total_us: Mapped[int] = mapped_column(BigInteger)
    max_us: Mapped[int] = mapped_column(BigInteger)
    first_ms: Mapped[int] = mapped_column(BigInteger)  # earliest start_time_ms of those entries
    last_ms: Mapped[int] = mapped_column(BigInteger)  # latest


class SlowlogCursor(Base):
    """How far the harvester has read a node's slow log, and what it could not read."""

    __tablename__ = "slowlog_cursors"
    replication_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=-1)  # highest Redis entry id stored for run_id
    lost_entries: Mapped[int] = mapped_column(BigInteger, default=0)  # overflowed (or reset) before a harvest saw them
    harvested_entries: Mapped[int] = mapped_column(BigInteger, default=0)
    last_harvest_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    harvest_claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # a harvester's round began
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class NodeState(Base):
    """What the last harvest round saw of a node: whether it answered, and its run id, role and
    master as last known (kept while it does not answer, so its return is compared with them).

    ``version`` counts the changes recorded so far: a round that sees a change moves it on with a
    conditional UPDATE from the value it read, and the change's events are named after the new
    value, so two harvesters that see the same change record it once."""

    __tablename__ = "node_states"
    replication_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    reachable: Mapped[bool]
    run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    role: Mapped[str | None] = mapped_column(String(8), nullable=True)  # master | slave
    master: Mapped[str | None] = mapped_column(String(300), nullable=True)  # a replica's master_host:master_port
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # why the last round could not read it
    version: Mapped[int] = mapped_column(Integer, default=0)
    observed_at: Mapped[datetime] = mapped_column(DateTime)  # the last round
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # the last round it answered
    # The first of the rounds in a row that could not read it (None while it answers).
    failing_since: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Where the next round reads its run log on for the events it tells (crash, sync): the key
    # "{time_ms}_{seq}" of a record (``services/runlog_events.py``); None: not read yet.
    runlog_position: Mapped[str | None] = mapped_column(String(40), nullable=True)


class Event(Base):
    """Something that happened to a node: derived from what changed between two harvest rounds
    (restart, role_change, failover, node_down, node_up), or from a run-log entry (crash, sync).

    ``id`` is the UUIDv5 of (instance, node, the change, type), the change being the node's
    ``NodeState.version`` after it or the id of the run-log record that tells it: whoever derives
    the same change inserts the same id, and the primary key keeps one."""

    __tablename__ = "events"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    replication_id: Mapped[str] = mapped_column(String(36))
    type: Mapped[str] = mapped_column(String(16))
    time_ms: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(Integer, default=0)  # order among the node's events of one millisecond
    replication_ip: Mapped[str] = mapped_column(String(255))  # the node's address and group when it happened
    replication_port: Mapped[int] = mapped_column(Integer)
    group_name: Mapped[str] = mapped_column(String(32))
    details: Mapped[str] = mapped_column(Text)  # JSON object

    __table_args__ = (
        Index("ix_events_time", "instance_id", "time_ms"),
    )


def new_audit_id() -> str:
    """24 hex digits: microseconds since the epoch, then 40 random bits (ids sort by when they were made)."""
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(5)}"


class AuditRecord(Base):
    """Who did what (SPEC §8): one row per action that changed state or released data, added in the
    action's own transaction (``services/audit.py``). Never a secret: actors and targets are access
    keys, token ids (``tok-…``), link ids, task, instance and file ids, instance names."""

    __tablename__ = "audit_records"
    __table_args__ = (Index("ix_audit_records_project_time", "project_id", "time", "id"),)
    # Made by the writer, not the database: records of one trail live in two SQLite files on the
    # embedded default (services/audit.Journal), and ids must not collide. Time-ordered.
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_audit_id)
    time: Mapped[datetime] = mapped_column(DateTime, index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    actor_type: Mapped[str] = mapped_column(String(16))  # access_key | token | link | system
    action: Mapped[str] = mapped_column(String(32))
    instance_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    target: Mapped[str | None] = mapped_column(String(256), nullable=True)
    source_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
