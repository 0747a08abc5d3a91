"""DCS instance endpoints: ListInstances, ShowInstance, ListGroupReplicationInfo."""

from __future__ import annotations

from aiohttp import web

from dcslog.api.context import Context
from dcslog.api.operations import operation
from dcslog.api.params import LIMIT, OFFSET, json_response, text
from dcslog.services import instances

NAME = text("name", description="substring of the name")
STATUS = text("status", description="RUNNING or ERROR (any other value matches nothing)")


@operation("GET", "/v2/{project_id}/instances", role="viewer",
           summary="ListInstances: the project's instances, newest first",
           params=[OFFSET, LIMIT, NAME, STATUS], ok={200: "ListInstancesResponse"}, errors=["DCS.4800", "DCS.4002"])
async def list_instances(ctx: Context, offset: int, limit: int, name: str | None, status: str | None) -> web.Response:
    total, views = await instances.list_instances(ctx.session, ctx.caller.project_id, offset=offset, limit=limit,
                                                  name=name, status=status)
    return json_response({"instance_num": total, "instances": views})


@operation("GET", "/v2/{project_id}/instances/{instance_id}", role="viewer", summary="ShowInstance",
           ok={200: "Instance"}, errors=["DCS.4002", "DCS.4061"])
async def show_instance(ctx: Context) -> web.Response:
    return json_response(await instances.instance_view(ctx.session, ctx.instance))


@operation("GET", "/v2/{project_id}/instance/{instance_id}/groups", role="viewer",
           summary="ListGroupReplicationInfo: shards and replicas",
           ok={200: "ListGroupReplicationInfoResponse"}, errors=["DCS.4002", "DCS.4061"])
async def list_group_replication_info(ctx: Context) -> web.Response:
    groups = await instances.group_list(ctx.session, ctx.instance)
    return json_response({"group_list": groups, "group_count": len(groups)})
