"""Every route of the service, URI templates verbatim from the DCS API reference."""

from __future__ import annotations

from aiohttp import web

from dcslog.api import downloads, health, instances, metrics, openapi, redislog, slowlog, tasks

ROUTES = [
    ("GET", "/v2/{project_id}/instances", instances.list_instances),
    ("GET", "/v2/{project_id}/instances/{instance_id}", instances.show_instance),
    ("GET", "/v2/{project_id}/instance/{instance_id}/groups", instances.list_group_replication_info),
    ("POST", "/v2/{project_id}/instances/{instance_id}/redislog", redislog.create_redislog),
    ("GET", "/v2/{project_id}/instances/{instance_id}/redislog", redislog.list_redislog),
    ("POST", "/v2/{project_id}/instances/{instance_id}/redislog/{id}/links", redislog.create_redislog_download_link),
    ("GET", "/v2/{project_id}/instances/{instance_id}/slowlog", slowlog.list_slowlog),
    ("GET", "/v2/{project_id}/instances/{instance_id}/slowlog/harvest", slowlog.list_slowlog_harvest_status),
    ("GET", "/v2/{project_id}/instances/{instance_id}/tasks", tasks.list_background_task),
    ("GET", "/downloads/{token}", downloads.download_redislog),
    ("GET", "/health", health.health),
    ("GET", "/livez", health.livez),
    ("GET", "/metrics", metrics.metrics),
    ("GET", "/openapi.json", openapi.openapi_json),
]


def add_routes(app: web.Application) -> None:
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
        if method == "GET":
            app.router.add_route("HEAD", path, handler)
