"""Query-parameter parsing: every bad value becomes DCS.4800 ``Invalid {name} in the request.``"""

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
    if not INTEGER.fullmatch(raw) or len(raw) > 12:
        raise errors.InvalidParameter(name)
    value = int(raw)
    if value > MAX_INT or (minimum is not None and value < minimum) or (maximum is not None and value > maximum) \
            or (allowed is not None and value not in allowed):
        raise errors.InvalidParameter(name)
    return value


def choice_param(query: MultiMapping[str], name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    raw = query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise errors.InvalidParameter(name)
        return default
    if raw not in allowed:
        raise errors.InvalidParameter(name)
    return raw


_encode = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per response


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encode(body).encode(), headers={"Content-Type": JSON_CONTENT_TYPE})
