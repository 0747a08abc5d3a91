"""Every endpoint, declared once, beside its handler: routing, parameters, role checks and the
OpenAPI document all come from here.

    @operation("GET", "/v2/{project_id}/instances/{instance_id}/redislog", role="viewer",
               summary="ListRedislog: collected run-log files", params=[LOG_TYPE, OFFSET, LIMIT],
               ok={200: "ListRedislogResponse", 204: Reply(None, "No files (no body, as DCS)")},
               errors=["DCS.4800", "DCS.4002", "DCS.4061"])
    async def list_redislog(ctx: Context, log_type: str, offset: int, limit: int) -> web.Response: ...

The handler's name is the SDK's method name (and the document's ``operationId``); the path is
the URI template verbatim from the DCS reference. A DCS operation (``role`` set) gets a
``Context`` and its parameters, read and checked, as keyword arguments. A public one
(``role=None``: downloads, probes, metrics, this document) is a plain aiohttp handler that reads
its own request; its ``params`` and ``headers`` document what it reads. ``api/routes.py`` adds
every declaration to the router (HEAD with every GET), ``api/openapi.py`` describes them.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dcslog.api.context import Context, Handler, ReadArguments, Route, dcs_route
from dcslog.api.params import Param
from dcslog.api.schemas import SCHEMAS, Schema
from dcslog.errors import InvalidTimeRange
from dcslog.roles import ROLES

JSON = "application/json"  # the document's media type of JSON bodies (sent with ;charset=UTF-8)
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
DCS_CODE = re.compile(r"DCS\.[0-9]{4}")
PLACEHOLDER = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)}")
FRAMEWORK_PATH_PARAMS = ("project_id", "instance_id")  # checked by dcs_route itself (DCS.4002, DCS.4061)


@dataclass(frozen=True)
class Reply:
    """A success answer: a component schema by name, an inline schema, or no body (None)."""

    schema: str | Schema | None
    description: str = ""
    media_type: str = JSON
    headers: Mapping[str, Schema] | None = None  # response headers beyond X-Request-Id
    also: Mapping[str, Schema] | None = None  # other media types the same answer may come in (by request)


@dataclass(frozen=True)
class Fail:
    """An error answer other than the 400s and those every operation of its kind has (see openapi.py)."""

    status: int
    description: str
    codes: tuple[str, ...]
    headers: Mapping[str, Schema] | None = None


@dataclass(frozen=True)
class Header:
    """A request header the handler reads itself (a download's Range, If-Match…): documented, not parsed."""

    name: str
    description: str


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    name: str  # the SDK's method name, the handler's name, the document's operationId
    summary: str
    role: str | None  # None: public, no credentials
    params: tuple[Param, ...]
    headers: tuple[Header, ...]
    ok: Mapping[int, Reply]
    bad_request: tuple[str, ...]  # the codes answered with 400
    fails: tuple[Fail, ...]
    tag: str
    description: str | None
    document_head: bool  # HEAD is answered for every GET; documented where it matters (downloads)
    handler: Handler
    read_arguments: ReadArguments | None  # the parameters' reader, built once (None: no parameters)
    route: Route  # what aiohttp calls

    @property
    def with_instance(self) -> bool:
        return "{instance_id}" in self.path


OPERATIONS: list[Operation] = []

H = TypeVar("H", bound=Handler)


def operation(method: str, path: str, *, role: str | None, summary: str, ok: Mapping[int, str | Reply | None],
              params: Sequence[Param] = (), headers: Sequence[Header] = (), errors: Sequence[str | Fail] = (),
              tag: str = "DCS", description: str | None = None, document_head: bool = False) -> Callable[[H], H]:
    """Declare the decorated handler as the operation ``method path`` and register it.

    ``errors`` lists the DCS codes the operation answers with 400 (strings) and any other error
    answer (``Fail``); a DCS operation's 401, 403, 404, 413 and every operation's 414, 431 and 500
    come with its kind. Mistakes in a declaration fail at import, not on a request."""
    def register(handler: H) -> H:
        read_arguments = _argument_reader(tuple(params)) if role is not None else None
        route: Route = handler if role is None else dcs_route(
            handler, role, with_instance="{instance_id}" in path, read_arguments=read_arguments)
        declared = Operation(
            method=method, path=path, name=handler.__name__, summary=summary, role=role, params=tuple(params),
            headers=tuple(headers), ok={status: _reply(reply) for status, reply in ok.items()},
            bad_request=tuple(code for code in errors if isinstance(code, str)),
            fails=tuple(fail for fail in errors if isinstance(fail, Fail)), tag=tag, description=description,
            document_head=document_head, handler=handler, read_arguments=read_arguments, route=route)
        _validate(declared)
        OPERATIONS.append(declared)
        return handler
    return register


def _reply(reply: str | Reply | None) -> Reply:
    return reply if isinstance(reply, Reply) else Reply(reply)


def _argument_reader(params: tuple[Param, ...]) -> ReadArguments | None:
    """The operation's parameters read in their declared order (the first bad one answers), each
    checked as soon as it is read. Everything but the values is worked out here, once."""
    if not params:
        return None
    steps = tuple((param.read, param.name, param.arg, param.location == "query", param.check,
                   next((p.arg for p in params if p.name == param.not_before), None)) for param in params)

    async def read_arguments(ctx: Context) -> dict[str, Any]:
        request = ctx.request
        query, match_info = request.query, request.match_info
        values: dict[str, Any] = {}
        for read, name, arg, in_query, check, not_before in steps:
            value = read(query.get(name) if in_query else match_info.get(name))
            if not_before is not None and value is not None and values[not_before] is not None \
                    and value < values[not_before]:
                raise InvalidTimeRange()
            if check is not None and value is not None:
                await check(ctx, value)
            values[arg] = value
        return values
    return read_arguments


class DeclarationError(ValueError):
    """A declaration that cannot be right: raised at import, so it never reaches a request."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise DeclarationError(message)


def _validate(op: Operation) -> None:
    where = f"{op.method} {op.path} ({op.name})"
    _require(op.method in METHODS, f"{where}: unknown method")
    _require(all(o.name != op.name and (o.method, o.path) != (op.method, op.path) for o in OPERATIONS),
             f"{where}: declared twice")
    _require(op.role is None or op.role in ROLES, f"{where}: role {op.role!r} is none of {ROLES}")
    placeholders = set(PLACEHOLDER.findall(op.path))
    framework = set(FRAMEWORK_PATH_PARAMS) if op.role is not None else set()
    path_params = {p.name for p in op.params if p.location == "path"}
    _require(op.role is None or "project_id" in placeholders, f"{where}: a DCS path has {{project_id}}")
    _require(path_params == placeholders - framework,
             f"{where}: declare the path parameters {sorted(placeholders - framework)}, no other")
    names = [p.name for p in op.params]
    _require(len(set(names)) == len(names), f"{where}: a parameter declared twice")
    for i, param in enumerate(op.params):
        _require(param.not_before is None or param.not_before in names[:i],
                 f"{where}: {param.name} is not_before {param.not_before}, which must be declared before it")
    for reply in op.ok.values():
        _require(not isinstance(reply.schema, str) or reply.schema in SCHEMAS, f"{where}: no schema {reply.schema}")
    _require(all(DCS_CODE.fullmatch(code) for code in op.bad_request), f"{where}: a code is not DCS.NNNN")
    if op.role is None:
        _require(path_params == set(names),
                 f"{where}: a public handler reads its own request; declare only its path parameters")
        return
    implied = {"DCS.4002"} | ({"DCS.4061"} if op.with_instance else set())
    implied |= {code for param in op.params for code in param.codes}
    _require(implied <= set(op.bad_request), f"{where}: declare errors {sorted(implied - set(op.bad_request))}")
    args = [p.arg for p in op.params]
    _require(list(inspect.signature(op.handler).parameters)[1:] == args,
             f"{where}: the handler takes (ctx, {', '.join(args)}), in the declared order")


@functools.cache
def registered() -> tuple[Operation, ...]:
    """Every declared operation. Every module of ``dcslog.api`` is imported first, so that a
    declaration is found wherever it is, a new module's too, without being listed anywhere else.
    DCS operations first, then by path: the order of the router and of the document."""
    package = importlib.import_module("dcslog.api")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return tuple(sorted(OPERATIONS, key=lambda op: (op.role is None, op.path, op.method)))

