"""The service's half of ``dcslog agent``: fetch one day of a remote node's run log into a file, or its records."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from dcslog.runlog.records import Checkpoint, Record, record_from_wire
from dcslog.signing import sign_request

if TYPE_CHECKING:
    import httpx

AGENT_ACCESS_KEY = "dcslog-agent"


class AgentError(Exception):
    """The agent answered with an error, or could not be reached; the message says which, for users."""


class AgentStreamCut(AgentError):
    """The agent began the day and the stream broke before its end (the log shrank under a
    copytruncate rotation, the agent or the network died): asking again may well succeed."""


def fetch_day(agent_url: str, key: str, log_file: str, day: date, out_fd: int, tz: str = "UTC",
              timeout: float = 30.0) -> int:
    """Stream the day (in the IANA zone ``tz``) from the agent into ``out_fd``; returns the bytes written.

    A stream cut short (the agent or the network died) raises instead of
    returning a short count: the chunked encoding must end properly.
    """
    import httpx  # imported on first use: a server whose nodes are all local never loads it

    query = urlencode({"log_file": log_file, "day": day.isoformat(), "tz": tz})
    url = f"{agent_url.rstrip('/')}/v1/runlog/day?{query}"
    headers = sign_request(AGENT_ACCESS_KEY, key, "GET", url)
    written = 0
    began = False
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout, verify=True) as response:
            if response.status_code != 200:
                response.read()
                try:
                    message = response.json().get("error_msg") or response.text
                except ValueError:
                    message = response.text[:200]
                raise AgentError(f"agent {agent_url} answered {response.status_code}: {message}")
            began = True
            for chunk in response.iter_bytes(1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out_fd, view):]
                written += len(chunk)
    except httpx.HTTPError as exc:
        error = AgentStreamCut if began else AgentError
        raise error(f"agent {agent_url} failed: {exc or type(exc).__name__}") from None
    return written


def stream_records(agent_url: str, key: str, log_file: str, *, tz: str, start_ms: int, end_ms: int | None,
                   after: tuple[int, int] | None, descending: bool, keyword: str | None, insensitive: bool,
                   level: str | None, role: str | None, want_first: bool, on_scanned: Callable[[int], None],
                   timeout: float = 30.0) -> tuple[int | None, _RecordStream]:
    """Ask the agent for a node's records (the agent filters where the data is): (the time of the
    host's first entry when ``want_first``, else None, or None when it holds none; the records
    and checkpoints, in order).
    ``on_scanned`` hears how many bytes the agent read. A stream that breaks before its end
    marker raises AgentStreamCut: a cut stream is never taken for the end of the window."""
    import httpx

    query: dict[str, Any] = {"log_file": log_file, "tz": tz, "start_ms": start_ms}
    optional = {"end_ms": end_ms, "after": f"{after[0]}_{after[1]}" if after else None,
                "sort_dir": "desc" if descending else None, "keyword": keyword,
                "case": "insensitive" if insensitive else None, "level": level, "role": role,
                "first": "1" if want_first else None}
    query.update({k: v for k, v in optional.items() if v is not None})
    url = f"{agent_url.rstrip('/')}/v1/runlog/records?{urlencode(query)}"
    headers = sign_request(AGENT_ACCESS_KEY, key, "GET", url)
    client = _client(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    try:
        response = client.send(client.build_request("GET", url, headers=headers, timeout=timeout), stream=True)
    except httpx.HTTPError as exc:
        raise AgentError(f"agent {agent_url} failed: {exc or type(exc).__name__}") from None
    if response.status_code != 200:
        response.read()
        response.close()
        try:
            message = response.json().get("error_msg") or response.text
        except ValueError:
            message = response.text[:200]
        raise AgentError(f"agent {agent_url} answered {response.status_code}: {message}")
    first = response.headers.get("X-Dcslog-First-Ms")
    return (int(first) if first else None), _RecordStream(agent_url, response, on_scanned)


@functools.lru_cache(maxsize=4)
def _client(ssl_cert_file: str | None, ssl_cert_dir: str | None) -> httpx.Client:
    """One pooled client for the agents' records (a follow asks every agent four times a second;
    a new client costs ~40 ms of TLS set-up), per trust store the environment names."""
    import httpx

    return httpx.Client(verify=True, limits=httpx.Limits(max_keepalive_connections=32))


class _RecordStream:
    """The agent's NDJSON lines as ``Record`` and ``Checkpoint`` objects."""

    def __init__(self, agent_url: str, response: httpx.Response, on_scanned: Callable[[int], None]):
        self.agent_url, self.response, self.on_scanned = agent_url, response, on_scanned
        self._lines = response.iter_lines()

    def __iter__(self) -> Iterator[Record | Checkpoint]:
        return self

    def __next__(self) -> Record | Checkpoint:
        import httpx

        try:
            line = next(self._lines)
            while not line:
                line = next(self._lines)
        except StopIteration:
            self.close()
            raise AgentStreamCut(f"agent {self.agent_url}: the records stream ended without its end mark") from None
        except httpx.HTTPError as exc:
            self.close()
            raise AgentStreamCut(f"agent {self.agent_url} failed: {exc or type(exc).__name__}") from None
        item = json.loads(line)
        if "scanned" in item:
            self.on_scanned(item["scanned"])
        if "end" in item:
            self.close()
            raise StopIteration
        if "checkpoint" in item:
            return Checkpoint((int(item["checkpoint"][0]), int(item["checkpoint"][1])))
        return record_from_wire(item)

    def close(self) -> None:
        self.response.close()
