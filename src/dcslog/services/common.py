"""Small helpers shared by the services: clock, ids, DCS time formats, instance lookup."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dcslog import errors
from dcslog.db import queries
from dcslog.db.models import Instance

# Derived ids (replications, nodes, groups) live under this namespace, so the
# same node of the same instance always gets the same id.
ID_NAMESPACE = uuid.UUID("5b0f0b52-3c38-4c42-9d0b-6f0a5d1e0c11")


def utcnow() -> datetime:
    """Naive UTC, as stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, "/".join(parts)))


def new_id() -> str:
    return str(uuid.uuid4())


def dcs_time(value: datetime) -> str:
    """``2017-03-31T12:24:46.297Z``"""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


PROJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def validate_project_id(project_id: str) -> str:
    if not PROJECT_ID.fullmatch(project_id):
        raise errors.InvalidProjectId()
    return project_id


CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def validate_instance_id(instance_id: str) -> str:
    """The canonical (lower-case, hyphenated) form of a UUID, else DCS.4061."""
    if CANONICAL_UUID.fullmatch(instance_id):  # what our own ids look like: no parsing needed
        return instance_id
    try:
        parsed = uuid.UUID(instance_id)
    except ValueError:
        raise errors.InvalidInstanceId() from None
    if len(instance_id) != 36:  # uuid.UUID also takes "{…}", "urn:uuid:…" and bare hex
        raise errors.InvalidInstanceId()
    return str(parsed)


async def get_instance(session: AsyncSession, project_id: str, instance_id: str) -> Instance:
    """The instance, only if it belongs to the project: another project's gets the same 404 as a missing one."""
    instance_id = validate_instance_id(instance_id)
    instance = await queries.instance_in_project(session, project_id, instance_id)
    if instance is None:
        raise errors.InstanceNotFound()
    return instance
