"""Query-parameter parsing: every bad value becomes DCS.4800 ``Invalid {name} in the request.``,
with what would be accepted in ``error_ext_msg``."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from dcslog import errors

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
INTEGER = re.compile(r"-?[0-9]+")
MAX_INT = 2**31 - 1  # what the databases' integers (and DCS's int32 fields) hold


def int_param(query: MultiMapping[str], name: str, default: int, *, minimum: int | None = None,
              maximum: int | None = None, allowed: tuple[int, ...] | None = None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    # int() would also take "1_0", "+5", " 5" and non-ASCII digits.
    value = int(raw) if INTEGER.fullmatch(raw) and len(raw) <= 12 else None
    if value is None or value > MAX_INT or (minimum is not None and value < minimum) \
            or (maximum is not None and value > maximum) or (allowed is not None and value not in allowed):
        raise errors.InvalidParameter(name, _int_hint(name, minimum, maximum, allowed))
    return value


def _int_hint(name: str, minimum: int | None, maximum: int | None, allowed: tuple[int, ...] | None) -> str:
    if allowed is not None:
        return f"{name} must be one of {', '.join(map(str, allowed))}."
    low = minimum if minimum is not None else -MAX_INT - 1
    return f"{name} must be an integer from {low} to {maximum if maximum is not None else MAX_INT}."


def choice_param(query: MultiMapping[str], name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    raw = query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise errors.InvalidParameter(name, f"{name} is required: one of {', '.join(allowed)}.")
        return default
    if raw not in allowed:
        raise errors.InvalidParameter(name, f"{name} must be one of {', '.join(allowed)}.")
    return raw


_encode = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per response


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encode(body).encode(), headers={"Content-Type": JSON_CONTENT_TYPE})
