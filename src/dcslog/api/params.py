"""Request parameters, each declared once: how it is read, what a bad value answers, how it is documented.

A bad value becomes DCS.4800 ``Invalid {name} in the request.``, with what would be
accepted in ``error_ext_msg``; an empty value counts as an absent one. Everything a
parameter needs per request (its converter, its hints) is built when it is declared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from dcslog import errors

if TYPE_CHECKING:
    from dcslog.api.context import Context

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
INTEGER = re.compile(r"-?[0-9]+")
MAX_INT = 2**31 - 1  # what the databases' integers (and DCS's int32 fields) hold
EPOCH_MS = re.compile(r"[0-9]{1,15}")
# What yyyyMMddHHmmss can look like (the document's pattern); strptime has the last word.
COMPACT_UTC = r"^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]$"

Check = Callable[["Context", Any], Awaitable[None]]


def anchored(pattern: str) -> str:
    """A ``fullmatch`` regex as a JSON-schema pattern (which matches anywhere unless anchored)."""
    return f"^(?:{pattern})$"


@dataclass(frozen=True, kw_only=True)
class Param:
    """One query or path parameter. Build it with ``integer``, ``choice`` or ``text``.

    ``convert`` turns a present value into the handler's and raises ``ValueError`` for a bad
    one (answered with ``hint``); without it the value is the string as sent. An absent (or
    empty) one is ``default``, or, when ``required``, refused with ``missing_hint``.
    ``not_before`` names an earlier parameter this one may not be less than (DCS.4025, checked
    as soon as both are read); ``check`` is an async rule that needs the request's context (a
    database look-up), run in the parameters' order.
    """

    name: str
    convert: Callable[[str], Any] | None = None
    schema: dict[str, Any]
    hint: str | None = None
    missing_hint: str | None = None
    required: bool = False
    default: Any = None
    description: str | None = None
    location: Literal["query", "path"] = "query"
    arg: str = ""  # the handler's keyword for it; the name unless that would not do (``id``)
    not_before: str | None = None
    check: Check | None = None
    read: Callable[[str | None], Any] = field(init=False, repr=False, compare=False)  # raw value → handler's

    def __post_init__(self) -> None:
        if not self.arg:
            object.__setattr__(self, "arg", self.name)
        object.__setattr__(self, "read", _reader(self))

    @property
    def codes(self) -> tuple[str, ...]:
        """The 400 codes this parameter can answer: its operation must declare them."""
        refuses = self.convert is not None or self.required or self.check is not None
        return (("DCS.4800",) if refuses else ()) + (("DCS.4025",) if self.not_before else ())

    def openapi(self) -> dict[str, Any]:
        schema = dict(self.schema)
        if self.default is not None:
            schema["default"] = self.default
        spec: dict[str, Any] = {"name": self.name, "in": self.location,
                                "required": self.required or self.location == "path", "schema": schema}
        if self.description:
            spec["description"] = self.description
        return spec


def _reader(param: Param) -> Callable[[str | None], Any]:
    """How ``param`` is read, as one closure over what it needs: it runs for every parameter of every request."""
    name, convert, required, default = param.name, param.convert, param.required, param.default
    hint, missing_hint = param.hint, param.missing_hint or param.hint
    if convert is None and not required:
        return lambda raw: raw or default  # a free string: an empty one is an absent one

    def read(raw: str | None) -> Any:
        if not raw:
            if required:
                raise errors.InvalidParameter(name, missing_hint)
            return default
        if convert is None:
            return raw
        try:
            return convert(raw)
        except ValueError:
            raise errors.InvalidParameter(name, hint) from None
    return read


def integer(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None,
            allowed: tuple[int, ...] | None = None, description: str | None = None) -> Param:
    """ASCII digits within int32 (and the bounds): ``int()`` would also take "1_0", "+5", " 5", "٥"."""
    hint = _int_hint(name, minimum, maximum, allowed)

    def convert(raw: str) -> int:
        value = int(raw) if INTEGER.fullmatch(raw) and len(raw) <= 12 else None
        if value is None or value > MAX_INT or (minimum is not None and value < minimum) \
                or (maximum is not None and value > maximum) or (allowed is not None and value not in allowed):
            raise ValueError(raw)
        return value

    schema: dict[str, Any] = {"type": "integer"}
    if allowed is not None:
        schema["enum"] = list(allowed)
    else:
        if minimum is not None:
            schema["minimum"] = minimum
        schema["maximum"] = maximum if maximum is not None else MAX_INT
    return Param(name=name, convert=convert, schema=schema, hint=hint, default=default, description=description)


def _int_hint(name: str, minimum: int | None, maximum: int | None, allowed: tuple[int, ...] | None) -> str:
    if allowed is not None:
        return f"{name} must be one of {', '.join(map(str, allowed))}."
    low = minimum if minimum is not None else -MAX_INT - 1
    return f"{name} must be an integer from {low} to {maximum if maximum is not None else MAX_INT}."


def choice(name: str, allowed: tuple[str, ...], default: str | None = None, *,
           description: str | None = None) -> Param:
    """One of ``allowed``; required when there is no default."""
    def convert(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(raw)
        return raw

    words = ", ".join(allowed)
    return Param(name=name, convert=convert, schema={"type": "string", "enum": list(allowed)},
                 hint=f"{name} must be one of {words}.", missing_hint=f"{name} is required: one of {words}.",
                 required=default is None, default=default, description=description)


def text(name: str, *, pattern: re.Pattern[str] | None = None, convert: Callable[[str], Any] | None = None,
         hint: str | None = None, required: bool = False, schema_pattern: str | None = None,
         description: str | None = None, location: Literal["query", "path"] = "query", arg: str = "",
         not_before: str | None = None, check: Check | None = None) -> Param:
    """A string, ``pattern``-matched when given, then ``convert``-ed when given. The document shows
    ``pattern`` (or ``schema_pattern``, when ``convert`` is the real check)."""
    schema: dict[str, Any] = {"type": "string"}
    if schema_pattern is not None:
        schema["pattern"] = schema_pattern
    elif pattern is not None:
        schema["pattern"] = anchored(pattern.pattern)
    if location == "path":
        schema["minLength"] = 1  # aiohttp never matches an empty segment
    return Param(name=name, convert=_matching(pattern, convert) if pattern is not None else convert, schema=schema,
                 hint=hint, required=required, description=description, location=location, arg=arg,
                 not_before=not_before, check=check)


def _matching(pattern: re.Pattern[str], convert: Callable[[str], Any] | None) -> Callable[[str], Any]:
    def match(raw: str) -> Any:
        if not pattern.fullmatch(raw):
            raise ValueError(raw)
        return convert(raw) if convert is not None else raw
    return match


def epoch_ms(name: str, *, description: str, not_before: str | None = None, required: bool = True) -> Param:
    """Milliseconds since the epoch (UTC), as an int; required unless said otherwise."""
    hint = f"{name} is required: milliseconds since the epoch (UTC), e.g. 1764576000000." if required \
        else f"{name} must be milliseconds since the epoch (UTC), e.g. 1764576000000."
    return text(name, pattern=EPOCH_MS, convert=int, required=required, description=description,
                not_before=not_before, hint=hint)


def _compact_utc(raw: str) -> datetime:
    # Exactly yyyyMMddHHmmss: strptime alone also takes "202611270000" (12 digits).
    if len(raw) != 14 or not raw.isdigit():
        raise ValueError(raw)
    return datetime.strptime(raw, "%Y%m%d%H%M%S")


def compact_utc(name: str, *, description: str, not_before: str | None = None) -> Param:
    """An optional ``yyyyMMddHHmmss`` in UTC, as a naive datetime."""
    return text(name, convert=_compact_utc, schema_pattern=COMPACT_UTC, description=description,
                not_before=not_before, hint=f"{name} must be yyyyMMddHHmmss in UTC, e.g. 20261205143000.")


# -- declared once, used by every list ----------------------------------------------------------------------------

OFFSET = integer("offset", 0, minimum=0, description="items to skip (default 0)")
LIMIT = integer("limit", 10, minimum=1, maximum=1000, description="page size (default 10)")


_encode = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per response


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encode(body).encode(), headers={"Content-Type": JSON_CONTENT_TYPE})
