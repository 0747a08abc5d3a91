"""DCS instance endpoints: ListInstances, ShowInstance, ListGroupReplicationInfo."""

from __future__ import annotations

from aiohttp import web

from dcslog.api.context import Context, dcs_operation
from dcslog.api.params import int_param, json_response
from dcslog.services import instances


@dcs_operation("viewer")
async def list_instances(ctx: Context) -> web.Response:
    query = ctx.request.query
    total, views = await instances.list_instances(
        ctx.session, ctx.caller.project_id,
        offset=int_param(query, "offset", 0, minimum=0),
        limit=int_param(query, "limit", 10, minimum=1, maximum=1000),
        name=query.get("name") or None, status=query.get("status") or None)
    return json_response({"instance_num": total, "instances": views})


@dcs_operation("viewer")
async def show_instance(ctx: Context) -> web.Response:
    return json_response(await instances.instance_view(ctx.session, ctx.instance))


@dcs_operation("viewer")
async def list_group_replication_info(ctx: Context) -> web.Response:
    groups = await instances.group_list(ctx.session, ctx.instance)
    return json_response({"group_list": groups, "group_count": len(groups)})
