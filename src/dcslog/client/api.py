"""A small client of the DCS v2 Log Management API over httpx, signed exactly as the official SDK signs.

Methods are named after the SDK's (``list_group_replication_info``,
``create_redislog``, …) and return the decoded JSON; dcslog's own extensions
(``list_redislog_records``, ``stream_redislog_records``) are named the same way. The signature comes from
:func:`dcslog.signing.sign_request`, the same code the server verifies with, so
the client and the verifier cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from dcslog.client.config import ClientConfig
from dcslog.command import EXIT_ERROR, EXIT_UNREACHABLE, CommandFailed
from dcslog.signing import sign_request

if TYPE_CHECKING:
    import httpx

USER_AGENT = "dcslog-client"
# dcslog takes up to 1000 a page; DCS documents no maximum, so ask for a modest one and page.
PAGE = 100
# Records (a dcslog extension): a page holds 1 to 1000; the NDJSON answer streams them all.
RECORDS_PAGE_MAX = 1000
NDJSON = "application/x-ndjson"
SOURCES_HEADER = "X-Dcslog-Sources"  # the NDJSON answer's `sources`, as JSON
EVENT_STREAM = "text/event-stream"
# The follow sends a heartbeat after 15 s without a record: silence for three of them is a dead connection.
FOLLOW_SILENCE = 45.0


class ApiError(CommandFailed):
    """The endpoint answered with a DCS error envelope (or something that is not one): exit status 1."""

    exit_status = EXIT_ERROR
    hint: str | None = None  # what the user might do about it, added by the command that knows

    def __init__(self, status: int, error_code: str | None, error_msg: str, error_ext_msg: str | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(error_msg)
        self.status, self.error_code, self.error_msg = status, error_code, error_msg
        self.error_ext_msg, self.request_id = error_ext_msg, request_id

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        request_id = response.headers.get("X-Request-Id")
        try:
            body = json.loads(response.read() or b"null")
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("error_code"):
            return cls(response.status_code, str(body["error_code"]), str(body.get("error_msg") or ""),
                       body.get("error_ext_msg"), request_id)
        text = response.text.strip()[:200]
        return cls(response.status_code, None, text or response.reason_phrase or "unexpected response",
                   None, request_id)

    def as_dict(self) -> dict:
        return {"status": self.status, "error_code": self.error_code, "error_msg": self.error_msg,
                "error_ext_msg": self.error_ext_msg, "request_id": self.request_id}

    def __str__(self) -> str:
        code = f"{self.error_code}: " if self.error_code else ""
        ext = f" ({self.error_ext_msg})" if self.error_ext_msg else ""
        return f"{code}{self.error_msg}{ext} [HTTP {self.status}]"

    def describe(self) -> str:
        """With the request id, to quote to whoever runs the endpoint."""
        request = f", request id {self.request_id}" if self.request_id else ""
        ext = f" ({self.error_ext_msg})" if self.error_ext_msg else ""
        return f"{self.error_code or 'HTTP ' + str(self.status)}: {self.error_msg}{ext} [HTTP {self.status}{request}]"

    def notes(self) -> list[str]:
        return [f"hint: {self.hint}"] if self.hint else []

    def error_fields(self) -> dict:
        return self.as_dict()


class EndpointUnreachable(CommandFailed):
    """No HTTP answer at all: connection refused, DNS, TLS, timeout: exit status 5."""

    exit_status = EXIT_UNREACHABLE


def _path(value: str) -> str:
    return quote(value, safe="")


class DcsApi:
    """One project on one endpoint. Use as a context manager, or call :meth:`close`."""

    def __init__(self, config: ClientConfig, timeout: float = 30.0, transport: httpx.BaseTransport | None = None):
        # httpx is imported where it is used: `dcslog serve` builds the whole command line, client
        # commands included, and should not carry httpx's (and its CLI's) modules in memory.
        import httpx

        self.config = config
        self.http = httpx.Client(timeout=timeout, transport=transport, headers={"User-Agent": USER_AGENT},
                                 follow_redirects=False)

    def __enter__(self) -> DcsApi:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- the wire ---------------------------------------------------------------------------------

    def _prepare(self, method: str, path: str, query: dict[str, Any] | None,
                 extra_headers: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
        """The URL and the (signed) headers of ``method`` on ``/v2/{project_id}{path}``."""
        url = f"{self.config.endpoint}/v2/{_path(self.config.project_id)}{path}"
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urlencode(params, quote_via=quote)
        headers = {"Content-Type": "application/json", "X-Project-Id": self.config.project_id, **(extra_headers or {})}
        if self.config.ak and self.config.sk:
            # The signer sees the URL exactly as it goes on the wire (httpx keeps an already-encoded URL).
            headers = sign_request(self.config.ak, self.config.sk, method, url, headers, b"")
        else:
            headers["X-Auth-Token"] = self.config.token or ""
        return url, headers

    def _unreachable(self, exc: httpx.TransportError) -> EndpointUnreachable:
        return EndpointUnreachable(f"cannot reach {self.config.endpoint}: {exc or type(exc).__name__}")

    def request(self, method: str, path: str, query: dict[str, Any] | None = None) -> httpx.Response:
        """Send ``method`` on ``/v2/{project_id}{path}``; returns the 2xx response or raises ApiError."""
        import httpx

        url, headers = self._prepare(method, path, query)
        try:
            response = self.http.request(method, url, headers=headers)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        return response

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(response.status_code, None, "the endpoint answered with something that is not JSON",
                           None, response.headers.get("X-Request-Id")) from None

    # -- operations, named as in the SDK ----------------------------------------------------------

    def show_instance(self, instance_id: str) -> dict:
        return self._json(self.request("GET", f"/instances/{_path(instance_id)}"))

    def list_group_replication_info(self, instance_id: str) -> dict:
        return self._json(self.request("GET", f"/instance/{_path(instance_id)}/groups")) or {"group_list": []}

    def create_redislog(self, instance_id: str, query_time: int, replication_id: str | None) -> None:
        self.request("POST", f"/instances/{_path(instance_id)}/redislog",
                     {"log_type": "run", "query_time": query_time, "replication_id": replication_id})

    def list_redislog(self, instance_id: str, offset: int = 0, limit: int = PAGE) -> dict:
        """One page; ``{"total_num": 0, "file_list": []}`` for the API's 204."""
        body = self._json(self.request("GET", f"/instances/{_path(instance_id)}/redislog",
                                       {"log_type": "run", "offset": offset, "limit": limit}))
        return body or {"total_num": 0, "file_list": []}

    def iter_redislog(self, instance_id: str) -> Iterator[dict]:
        offset = 0
        while True:
            page = self.list_redislog(instance_id, offset, PAGE)
            files = page.get("file_list") or []
            yield from files
            offset += len(files)
            if not files or offset >= int(page.get("total_num") or 0):
                return

    def create_redislog_download_link(self, instance_id: str, file_id: str, format: str | None = None) -> dict:
        """DCS's link; with ``format="ndjson"`` (a dcslog extension), a link to the file's records."""
        return self._json(self.request("POST", f"/instances/{_path(instance_id)}/redislog/{_path(file_id)}/links",
                                       {"format": format}))

    def list_slowlog(self, instance_id: str, start_time: int, end_time: int, **query: Any) -> dict:
        return self._json(self.request("GET", f"/instances/{_path(instance_id)}/slowlog",
                                       {"start_time": start_time, "end_time": end_time, **query})) or {}

    # -- dcslog extensions (docs/api.md) ----------------------------------------------------------

    def list_slowlog_top(self, instance_id: str, **query: Any) -> dict:
        """The window's slow log grouped: ``{total_num, groups, start_time, end_time}``."""
        return self._json(self.request("GET", f"/instances/{_path(instance_id)}/slowlog/top", query)) or {}

    def list_events(self, instance_id: str, **query: Any) -> dict:
        """One page of the instance's events, newest first: ``{total_num, events}``."""
        return self._json(self.request("GET", f"/instances/{_path(instance_id)}/events", query)) or {}

    def list_timeline(self, instance_id: str, query: dict[str, Any]) -> dict:
        """One page of the cluster timeline: ``{items, next_cursor, sources}``. A page may hold fewer
        than ``limit`` items, none even, while ``next_cursor`` is not null (as records' pages)."""
        body = self._json(self.request("GET", f"/instances/{_path(instance_id)}/timeline", query))
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ApiError(200, None, "the endpoint answered a timeline query without an items list")
        return body

    # -- dcslog extensions: run logs as records (docs/api.md) -------------------------------------

    def list_redislog_records(self, instance_id: str, query: dict[str, Any]) -> dict:
        """One page of records: ``{records, next_cursor, scanned_bytes, sources}``. A page may hold
        fewer than ``limit`` records, none even, while ``next_cursor`` is not null: the endpoint
        bounds the bytes one request scans."""
        body = self._json(self.request("GET", f"/instances/{_path(instance_id)}/redislog/records", query))
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise ApiError(200, None, "the endpoint answered a records query without a records list")
        return body

    @contextmanager
    def stream_redislog_records(self, instance_id: str, query: dict[str, Any]
                                ) -> Iterator[tuple[list[dict] | None, Iterator[dict]]]:
        """Every record of ``query`` as the endpoint streams them (NDJSON, no paging; ``limit`` is
        ignored and ``cursor`` is where it starts): ``(sources, records)``, the sources from the
        ``X-Dcslog-Sources`` header (None without one). Records are read as the caller iterates;
        a stream that breaks off raises EndpointUnreachable."""
        with self._stream(f"/instances/{_path(instance_id)}/redislog/records", query, NDJSON) as response:
            yield _sources_header(response), _ndjson(response)

    @contextmanager
    def follow_redislog_records(self, instance_id: str, query: dict[str, Any], last_event_id: str | None = None
                                ) -> Iterator[Iterator[tuple[str, Any]]]:
        """The endpoint's follow of ``query`` (``follow=true``, Server-Sent Events), strictly after
        the record ``last_event_id`` when given: ``(event, data)`` pairs as they come, ``data``
        decoded (``("record", {…})``, ``("sources", […])``); heartbeats are skipped. An ``event:
        error`` (the caller's token or key revoked, or expired, while following) raises its
        ApiError. The iterator ends when the endpoint ends the stream; one that breaks off, or
        stays silent past three heartbeats, raises EndpointUnreachable. Each call signs afresh."""
        import httpx

        extra = {"Last-Event-ID": last_event_id} if last_event_id else None
        timeout = httpx.Timeout(FOLLOW_SILENCE, connect=self.http.timeout.connect)
        with self._stream(f"/instances/{_path(instance_id)}/redislog/records", {**query, "follow": "true"},
                          EVENT_STREAM, extra, timeout) as response:
            yield _follow_events(response)

    @contextmanager
    def _stream(self, path: str, query: dict[str, Any], kind: str, extra_headers: dict[str, str] | None = None,
                timeout: httpx.Timeout | None = None) -> Iterator[httpx.Response]:
        """A GET answered as ``kind`` (its Accept), read as the caller goes: an error answer raises
        ApiError, no answer or a stream that breaks off EndpointUnreachable."""
        import httpx

        url, headers = self._prepare("GET", path, query, {"Accept": kind, **(extra_headers or {})})
        streaming = False
        try:
            with self.http.stream("GET", url, headers=headers,
                                  timeout=timeout or self.http.timeout) as response:
                if response.status_code >= 400:
                    raise ApiError.from_response(response)
                answered = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if answered != kind:
                    raise ApiError(response.status_code, None, f"the endpoint answered {answered or 'no content type'} "
                                   f"where {kind} was asked for", None, response.headers.get("X-Request-Id"))
                streaming = True
                yield response
        except httpx.TransportError as exc:
            if streaming:
                raise EndpointUnreachable(f"the record stream from {self.config.endpoint} broke off: "
                                          f"{exc or type(exc).__name__}") from None
            raise self._unreachable(exc) from None


def _sources_header(response: httpx.Response) -> list[dict] | None:
    value = response.headers.get(SOURCES_HEADER)
    if not value:
        return None
    try:
        sources = json.loads(value)
    except ValueError:
        return None  # what was read is still an answer; only the report of what was not is lost
    return sources if isinstance(sources, list) else None


def _ndjson(response: httpx.Response) -> Iterator[dict]:
    for line in response.iter_lines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise ApiError(response.status_code, None, "the endpoint's record stream holds a line that is not JSON",
                           None, response.headers.get("X-Request-Id")) from None
        yield record


def _follow_events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """The Server-Sent Events of a follow, as ``(event, data)``. An event is taken at the blank line
    that ends it, so one cut off by a broken connection is never taken half."""
    request_id = response.headers.get("X-Request-Id")
    event, data = "message", []
    for line in response.iter_lines():
        if line.startswith(":"):
            continue  # a comment: the heartbeat
        if line:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            continue  # `id:` is the record's own id, which its data holds too
        if data:
            try:
                decoded = json.loads("\n".join(data))
            except ValueError:
                raise ApiError(response.status_code, None, f"the endpoint's follow sent an {event} event that is "
                               "not JSON", None, request_id) from None
            if event == "error":
                # What a new request would get: the 401 envelope (docs/api.md, "Follow").
                body = decoded if isinstance(decoded, dict) else {}
                raise ApiError(401, str(body.get("error_code") or "") or None,
                               str(body.get("error_msg") or "the endpoint ended the follow with an error"),
                               body.get("error_ext_msg"), request_id)
            yield event, decoded
        event, data = "message", []
