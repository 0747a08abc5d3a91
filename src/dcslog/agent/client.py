"""The service's half of ``dcslog agent``: fetch one day of a remote node's run log into a file."""

from __future__ import annotations

import os
from datetime import date
from urllib.parse import urlencode

import httpx

from dcslog.signing import sign_request

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
